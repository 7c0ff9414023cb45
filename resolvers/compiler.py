"""The read compiler (issue 15): a query over persons compiled into one SQL statement per root
field that builds the response's JSON inside PostgreSQL, with the caller's row rules and masks
in SQL, instead of resolving field by field.

What it covers (anything else is "not covered": :func:`compile_plan` or :func:`run` return
``None`` and the resolvers answer as before):

- a query operation (no directives, no fragments) whose root fields are ``beneficiary(id:)`` /
  ``beneficiary(idNumber:)``, ``beneficiaries(regionPrefix:, category:, first:, after:)``,
  ``claim(claimNumber:)`` and ``claims(year:, orderBy:, first:, after:)``;
- below them the column fields of ``Beneficiary`` (and ``birthYear``), ``identities``,
  ``monitoringFlags``, ``enrollments`` (with ``subsidy``) and ``claims(year:, first:, after:)``
  (edges, cursors, pageInfo, totalCount) with each claim's column fields and ``settlement``
  (its policy, category and the six amounts), ``__typename`` anywhere below the root;
- the departments' masks whose kind has an SQL form (:data:`SQL_MASKS`) and the row rules of
  :mod:`resolvers.rows` (region, carrier, carried_persons, hospital).

Argument values are checked in Python with the resolvers' own checks before any SQL is sent; a
value they would refuse (a bad cursor, a page size out of range, a region outside the token,
both or neither of id and idNumber, a value :mod:`gateway.arguments` refuses) makes the request
"not covered", so the resolvers give their usual error.

The answer (:class:`Answer`) carries the data, in the shape and order graphql-core gives it,
and what the read audit needs: the operation label, the beneficiary ids the statements returned
and the field paths (the schema's names) that the resolvers would have noted, i.e. those of
personal fields whose parent object occurs in the response (ACCESS.md).
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import graphql
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values

from gateway.errors import BadInput
from gateway.storage.database import CUSTOM_PLAN
from policies.access.policy import AccessPolicies, DepartmentPolicy
from policies.errors import InvalidInput
from policies.vocabulary import Category, Payer
from resolvers import beneficiaries
from resolvers.context import Context
from resolvers.inputs import check_in_token, check_region_prefix
from resolvers.pages import DATE_AND_ID, ROW_ID, UUID_KEY, cursor_parts
from resolvers.rows import KNOWN

ROOTS = frozenset({"beneficiary", "beneficiaries", "claim", "claims"})

SQL_MASKS: Mapping[str, Callable[[str], str]] = {
    # policies/access/masks.py, in SQL (char_length counts characters as len() does).
    "name": lambda v: f"(left({v}, 1) || repeat('*', char_length({v}) - 1))",
    "id_number": lambda v: (
        f"(CASE WHEN char_length({v}) <= 12 THEN repeat('*', char_length({v})) "
        f"ELSE left({v}, 4) || repeat('*', char_length({v}) - 8) || right({v}, 4) END)"
    ),
}
"""The mask kinds of policies/access/masks.py the compiler reproduces, as SQL of a text value."""

_NAME = re.compile(r"\A[_A-Za-z][_0-9A-Za-z]*\Z")
OPERATION_LENGTH = 120
"""The audit_log.operation column (as gateway.access labels operations)."""


class NotCovered(Exception):
    """The request is not one the compiler answers: the resolvers do."""


# -- the compiled selection -----------------------------------------------------------------------


@dataclass(frozen=True)
class Selected:
    """One selected field: response key, schema name, the type it is selected on, its
    arguments (as written), what it selects, and whether it is personal or masked."""

    key: str
    name: str
    parent: str
    node: graphql.FieldNode
    definition: graphql.GraphQLField
    type_name: str
    children: tuple[Selected, ...]
    personal: bool
    mask: str | None
    lookups: tuple[str, ...]
    """Arguments that look persons up by personal data (noted as ``path(argument)``)."""


@dataclass(frozen=True)
class Plan:
    """A compiled operation of one department: its root fields and its audit label."""

    operation: graphql.OperationDefinitionNode
    label: str
    roots: tuple[Selected, ...]
    rows: frozenset[str]


@dataclass
class Answer:
    """What the compiled statements returned: the data and the read trail's contents."""

    data: dict[str, Any]
    operation: str
    beneficiary_ids: set[uuid.UUID] = field(default_factory=set)
    field_paths: set[str] = field(default_factory=set)
    statements: int = 0
    """SQL statements sent (one per root field)."""
    text_size: int = 0
    """The characters of the JSON the statements returned (about those of ``data`` encoded:
    PostgreSQL writes ``"key" : value`` where Python writes ``"key": value``)."""


# Fields by (type, field): SQL of a column expression on the row alias ``{a}``. Enum values are
# stored as their GraphQL names (NULLIF: the resolvers read an empty string as null); money as
# text (strawberry's Decimal is str(value): numeric(14, 2) prints alike); dates by json's ISO
# form; a timestamp as datetime.isoformat() prints it (UTC, microseconds only when not zero).
_RECORDED = (
    "to_char({a}.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
    "CASE WHEN extract(microseconds FROM {a}.recorded_at)::int % 1000000 = 0 THEN '' "
    "ELSE to_char({a}.recorded_at AT TIME ZONE 'UTC', '.US') END || '+00:00'"
)
_CATEGORY_RECORD = {
    "id": "{a}.id::text",
    "category": "{a}.category",
    "validFrom": "{a}.valid_from",
    "validTo": "{a}.valid_to",
    "reference": "{a}.reference",
    "decidedOn": "{a}.decided_on",
    "department": "{a}.department",
    "org": "{a}.org",
    "recordedAt": _RECORDED,
}
COLUMNS: Mapping[str, Mapping[str, str]] = {
    "Beneficiary": {
        "id": "{a}.id::text",
        "idNumber": "{a}.id_number",
        "name": "{a}.name",
        "gender": "{a}.gender",
        "birthDate": "{a}.birth_date",
        "birthYear": "extract(year FROM {a}.birth_date)::int",
        "regionCode": "{a}.region_code",
    },
    "Identity": _CATEGORY_RECORD,
    "MonitoringFlag": _CATEGORY_RECORD,
    "Enrollment": {
        "year": "{a}.year",
        "scheme": "{a}.scheme",
        "contribution": "{a}.contribution::text",
        "inclusiveCommercial": "{a}.inclusive_commercial",
        "enrolledOn": "{a}.enrolled_on",
    },
    "SubsidySplit": {
        "policy": "{a}.subsidy_policy",
        "category": "NULLIF({a}.subsidy_category, '')",
        "assistanceFund": "{a}.subsidy_assistance_fund::text",
        "finance": "{a}.subsidy_finance::text",
        "individual": "{a}.subsidy_individual::text",
    },
    "Claim": {
        "claimNumber": "{a}.claim_number",
        "year": "{a}.year",
        "type": "{a}.type",
        "hospitalLevel": "NULLIF({a}.hospital_level, '')",
        "hospitalCode": "{a}.hospital_code",
        "admissionDate": "{a}.admission_date",
        "dischargeDate": "{a}.discharge_date",
        "totalCost": "{a}.total_cost::text",
        "policyScopeCost": "{a}.policy_scope_cost::text",
        "referralCompliant": "{a}.referral_compliant",
        "inProvince": "{a}.in_province",
        "diagnosis": "{a}.diagnosis",
        "specialTreatmentHospital": "{a}.special_treatment_hospital",
        "carrier": "{a}.carrier",
        "reversed": "({a}.reversed_at IS NOT NULL)",
        "acknowledged": "({a}.acknowledged_at IS NOT NULL)",
    },
}
"""The column fields the compiler reads, by GraphQL type and field."""

_SETTLEMENT_FIELDS = frozenset(
    {"claimNumber", "policy", "category", "outOfPocket", *(p.value for p in Payer)}
)
OBJECTS: Mapping[tuple[str, str], str] = {
    ("Query", "beneficiary"): "Beneficiary",
    ("Query", "beneficiaries"): "BeneficiaryConnection",
    ("Query", "claim"): "Claim",
    ("Query", "claims"): "ClaimConnection",
    ("BeneficiaryConnection", "edges"): "BeneficiaryEdge",
    ("BeneficiaryConnection", "pageInfo"): "PageInfo",
    ("BeneficiaryEdge", "node"): "Beneficiary",
    ("Beneficiary", "identities"): "Identity",
    ("Beneficiary", "monitoringFlags"): "MonitoringFlag",
    ("Beneficiary", "enrollments"): "Enrollment",
    ("Beneficiary", "claims"): "ClaimConnection",
    ("Enrollment", "subsidy"): "SubsidySplit",
    ("ClaimConnection", "edges"): "ClaimEdge",
    ("ClaimConnection", "pageInfo"): "PageInfo",
    ("ClaimEdge", "node"): "Claim",
    ("Claim", "settlement"): "Settlement",
}
"""The object fields the compiler follows, and the type each returns (checked on the schema)."""
SCALARS: Mapping[str, frozenset[str]] = {
    **{t: frozenset(c) for t, c in COLUMNS.items()},
    "BeneficiaryConnection": frozenset({"totalCount"}),
    "ClaimConnection": frozenset({"totalCount"}),
    "BeneficiaryEdge": frozenset({"cursor"}),
    "ClaimEdge": frozenset({"cursor"}),
    "PageInfo": frozenset({"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}),
    "Settlement": _SETTLEMENT_FIELDS,
}


# -- compiling a document -------------------------------------------------------------------------


def operation_label(operation: graphql.OperationDefinitionNode) -> str:
    """As :func:`gateway.access._operation`: ``query Name``, or for an anonymous operation its
    type and root fields (the compiler covers only plain fields at the root)."""
    if operation.name is not None:
        name = operation.name.value
    else:
        selections = operation.selection_set.selections
        fields = [s.name.value for s in selections if isinstance(s, graphql.FieldNode)]
        name = ",".join(dict.fromkeys(fields))
    label = f"{operation.operation.value} {name}"
    if len(label) > OPERATION_LENGTH:
        label = label[: OPERATION_LENGTH - 1] + "…"
    return label


def compile_plan(
    document: graphql.DocumentNode,
    operation_name: str | None,
    schema: graphql.GraphQLSchema,
    policy: DepartmentPolicy,
    access: AccessPolicies,
) -> Plan | None:
    """The plan of the operation, or None when the compiler does not cover it."""
    try:
        operation = graphql.get_operation_ast(document, operation_name)
        if (
            operation is None
            or operation.operation is not graphql.OperationType.QUERY
            or operation.directives
            or not set(policy.rows) <= KNOWN
        ):
            return None
        query_type = schema.query_type
        if query_type is None:
            return None
        roots = _selections(operation.selection_set, query_type, schema, policy, access, True)
        return Plan(operation, operation_label(operation), roots, frozenset(policy.rows))
    except NotCovered:
        return None


def _selections(
    selection_set: graphql.SelectionSetNode | None,
    parent: graphql.GraphQLObjectType,
    schema: graphql.GraphQLSchema,
    policy: DepartmentPolicy,
    access: AccessPolicies,
    root: bool = False,
) -> tuple[Selected, ...]:
    if selection_set is None:
        raise NotCovered("no selection")
    found: list[Selected] = []
    keys: set[str] = set()
    for node in selection_set.selections:
        if not isinstance(node, graphql.FieldNode) or node.directives:
            raise NotCovered("fragment or directive")
        name = node.name.value
        key = (node.alias or node.name).value
        if not _NAME.match(key):  # GraphQL names only: keys are inlined in the SQL text
            raise NotCovered(f"response key {key!r}")
        if key in keys:
            raise NotCovered("a response key selected twice (merged by graphql-core)")
        keys.add(key)
        if name == "__typename":
            if root or node.arguments or node.selection_set:
                raise NotCovered("__typename at the root")
            found.append(_typename(key, parent))
            continue
        if root and name not in ROOTS:
            raise NotCovered(name)
        definition = parent.fields.get(name)
        if definition is None:
            raise NotCovered(name)
        named = graphql.get_named_type(definition.type)
        expected = OBJECTS.get((parent.name, name))
        if expected is not None:
            if named.name != expected or not isinstance(named, graphql.GraphQLObjectType):
                raise NotCovered(f"{parent.name}.{name} returns {named.name}")
            children = _selections(node.selection_set, named, schema, policy, access)
        elif name in SCALARS.get(parent.name, ()):
            if node.selection_set is not None:
                raise NotCovered(name)
            children = ()
        else:
            raise NotCovered(f"{parent.name}.{name}")
        if node.arguments and name not in {"beneficiary", "beneficiaries", "claim", "claims"}:
            raise NotCovered(f"arguments of {name}")
        mode = policy.mode(parent.name, name)
        if mode is None:
            raise NotCovered(f"{parent.name}.{name} is not granted")
        mask = None
        if mode == "masked":
            mask = access.masks.get((parent.name, name))
            if mask not in SQL_MASKS:
                raise NotCovered(f"mask of {parent.name}.{name}")
        lookups = tuple(
            argument
            for argument in definition.args
            if any(
                access.is_personal(*t)
                for t in policy.filters.get((parent.name, name, argument), ())
            )
        )
        found.append(
            Selected(
                key=key,
                name=name,
                parent=parent.name,
                node=node,
                definition=definition,
                type_name=named.name,
                children=children,
                personal=access.is_personal(parent.name, name),
                mask=mask,
                lookups=lookups,
            )
        )
    return tuple(found)


def _typename(key: str, parent: graphql.GraphQLObjectType) -> Selected:
    node = graphql.FieldNode(name=graphql.NameNode(value="__typename"))
    return Selected(
        key=key,
        name="__typename",
        parent=parent.name,
        node=node,
        definition=graphql.type.introspection.TypeNameMetaFieldDef,
        type_name="String",
        children=(),
        personal=False,
        mask=None,
        lookups=(),
    )


# -- arguments ------------------------------------------------------------------------------------

Arguments = dict[int, dict[str, Any]]
"""The coerced argument values of each selected field with arguments, by ``id(node)``."""
Check = Callable[[str, object], None]
"""The edge's check of one argument value (gateway.arguments.check_value, by GraphQL name)."""


def _cursor_key(kind: str, cursor: str, pattern: re.Pattern[str]) -> str:
    """The key of a cursor of ``kind`` (as schema.pagination.decode_cursor reads it), or
    NotCovered: the resolvers then give their error."""
    found, key = cursor_parts(cursor)
    if found != kind or not pattern.match(key):
        raise NotCovered("cursor")
    return key


def _page_size(value: object, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise NotCovered("first")
    return value


def _arguments(
    selected: Sequence[Selected], variables: VariableValues, check: Check, into: Arguments
) -> None:
    for s in selected:
        if s.node.arguments or s.definition.args:
            values = get_argument_values(s.definition, s.node, variables)
            for name, value in values.items():
                check(name, value)
            into[id(s.node)] = values
        _arguments(s.children, variables, check, into)


# -- SQL ------------------------------------------------------------------------------------------


def _cursor(kind: str, key_sql: str) -> str:
    """schema.pagination.encode_cursor in SQL: URL-safe base64 of ``kind:key`` (no line breaks)."""
    return (
        f"translate(encode(convert_to('{kind}:' || ({key_sql})::text, 'UTF8'), 'base64'), "
        "E'+/\\n', '-_')"
    )


@dataclass
class _Sql:
    """One statement being built: its parameters (``$n`` with a cast) and row aliases."""

    ctx: Context
    arguments: Arguments
    params: list[Any] = field(default_factory=list)
    aliases: int = 0
    org_param: str | None = None

    def param(self, value: Any, cast: str) -> str:
        self.params.append(value)
        return f"${len(self.params)}::{cast}"

    def alias(self, stem: str) -> str:
        self.aliases += 1
        return f"{stem}{self.aliases}"

    def args(self, s: Selected) -> dict[str, Any]:
        return self.arguments.get(id(s.node), {})

    # -- row rules (resolvers/rows.py) --

    def persons(self, b: str) -> list[str]:
        principal = self.ctx.principal
        if not principal.regions:
            raise NotCovered("a token without regions")
        patterns = [f"{prefix}%" for prefix in principal.regions]
        conditions = [f"{b}.region_code LIKE ANY ({self.param(patterns, 'text[]')})"]
        rules = self.ctx.rows.rules
        for rule, column in (("carried_persons", "carrier"), ("hospital", "hospital_code")):
            if rule in rules:
                conditions.append(
                    f"EXISTS (SELECT 1 FROM claims rc WHERE rc.beneficiary_id = {b}.id "
                    f"AND rc.{column} = {self.org()})"
                )
        return conditions

    def org(self) -> str:
        """The token's organisation, one parameter for every row rule that names it."""
        if self.org_param is None:
            self.org_param = self.param(self.ctx.principal.org, "text")
        return self.org_param

    def claims(self, c: str) -> list[str]:
        rules = self.ctx.rows.rules
        conditions = []
        if "carrier" in rules:
            conditions.append(f"{c}.carrier = {self.org()}")
        if "hospital" in rules:
            conditions.append(f"{c}.hospital_code = {self.org()}")
        return conditions

    # -- objects --

    def obj(self, type_name: str, selected: Sequence[Selected], a: str) -> str:
        """``json_build_object`` of ``selected`` on the row alias ``a`` of ``type_name``."""
        parts: list[str] = []
        for s in selected:
            parts.append(f"'{s.key}'")
            parts.append(self.value(type_name, s, a))
        return f"json_build_object({', '.join(parts)})"

    def value(self, type_name: str, s: Selected, a: str) -> str:
        if s.name == "__typename":
            return f"'{type_name}'::text"
        column = COLUMNS.get(type_name, {}).get(s.name)
        if column is not None:
            sql = column.format(a=a)
            return SQL_MASKS[s.mask](sql) if s.mask else sql
        if type_name == "Beneficiary":
            return self.beneficiary_link(s, a)
        if (type_name, s.name) == ("Enrollment", "subsidy"):
            return self.obj("SubsidySplit", s.children, a)
        if (type_name, s.name) == ("Claim", "settlement"):
            return self.settlement(s, a)
        raise NotCovered(f"{type_name}.{s.name}")

    def beneficiary_link(self, s: Selected, b: str) -> str:
        lists = {
            "identities": ("identities", "{a}.valid_from, {a}.id"),
            "monitoringFlags": ("monitoring_flags", "{a}.valid_from, {a}.id"),
            "enrollments": ("enrollments", "{a}.year"),
        }
        if s.name in lists:
            table, order = lists[s.name]
            r = self.alias("r")
            node = self.obj(s.type_name, s.children, r)
            return (
                f"(SELECT coalesce(json_agg({node} ORDER BY {order.format(a=r)}), '[]'::json) "
                f"FROM {table} {r} WHERE {r}.beneficiary_id = {b}.id)"
            )
        if s.name == "claims":
            return self.claim_connection(s, b)
        raise NotCovered(f"Beneficiary.{s.name}")

    def claim_connection(self, s: Selected, b: str) -> str:
        args = self.args(s)
        first = _page_size(args.get("first"), self.ctx.settings.max_page_size)
        after_text = args.get("after")
        after = None if after_text is None else int(_cursor_key("claim", after_text, ROW_ID))
        year = args.get("year")
        c, k = self.alias("c"), self.alias("k")
        filters = [f"{c}.beneficiary_id = {b}.id"]
        counted = [f"{k}.beneficiary_id = {b}.id"]
        year_param = None if year is None else self.param(year, "int")
        if year_param is not None:
            filters.append(f"{c}.year = {year_param}")
            counted.append(f"{k}.year = {year_param}")
        if after is not None:
            filters.append(f"{c}.id > {self.param(after, 'bigint')}")
        filters += self.claims(c)
        counted += self.claims(k)  # each parameter used by the statement (asyncpg types them)
        n = self.param(first, "int")
        shown = f"FILTER (WHERE {c}.n <= {n})"
        fields = self.connection(
            s,
            count=f"(SELECT count(*) FROM claims {k} WHERE {' AND '.join(counted)})",
            page={
                "has_next": f"count(*) > {n}",
                "after": after is not None,
                "start": _cursor("claim", f"min({c}.id) {shown}"),
                "end": _cursor("claim", f"max({c}.id) {shown}"),
            },
            cursor=_cursor("claim", f"{c}.id"),
            node=("Claim", c),
            edges=lambda edge: f"coalesce(json_agg({edge} ORDER BY {c}.id) {shown}, '[]'::json)",
        )
        return (
            f"(SELECT json_build_object({', '.join(fields)}) FROM (SELECT {c}.*, row_number() "
            f"OVER (ORDER BY {c}.id) AS n FROM claims {c} WHERE {' AND '.join(filters)} "
            f"ORDER BY {c}.id LIMIT {n} + 1) {c} HAVING true)"  # one row, even of no claims
        )

    def connection(
        self,
        s: Selected,
        *,
        count: str,
        page: dict[str, Any],
        cursor: str,
        node: tuple[str, str],
        edges: Callable[[str], str],
    ) -> list[str]:
        """The ``json_build_object`` arguments of a connection's selected fields (both kinds:
        a person's claims and the root pages): ``__typename``, ``totalCount`` (``count``),
        ``pageInfo`` (:meth:`page_info` with ``page``), and ``edges``, each edge's object
        (its cursor ``cursor``, its node of type ``node[0]`` on the row alias ``node[1]``)
        aggregated by ``edges``."""
        fields: list[str] = []
        for f in s.children:
            fields.append(f"'{f.key}'")
            if f.name == "__typename":
                fields.append(f"'{s.type_name}'::text")
            elif f.name == "totalCount":
                fields.append(count)
            elif f.name == "pageInfo":
                fields.append(self.page_info(f, **page))
            else:  # edges
                edge: list[str] = []
                for e in f.children:
                    edge.append(f"'{e.key}'")
                    if e.name == "__typename":
                        edge.append(f"'{f.type_name}'::text")
                    elif e.name == "cursor":
                        edge.append(cursor)
                    else:  # node
                        edge.append(self.obj(node[0], e.children, node[1]))
                fields.append(edges(f"json_build_object({', '.join(edge)})"))
        return fields

    def page_info(self, s: Selected, *, has_next: str, after: bool, start: str, end: str) -> str:
        values = {
            "__typename": "'PageInfo'::text",
            "hasNextPage": has_next,
            "hasPreviousPage": "true" if after else "false",
            "startCursor": start,
            "endCursor": end,
        }
        parts = [x for f in s.children for x in (f"'{f.key}'", values[f.name])]
        return f"json_build_object({', '.join(parts)})"

    def settlement(self, s: Selected, c: str) -> str:
        """Null before settlement; else the sums over the claim's events and their lines
        (resolvers.settlement.totals) and the policy and category of the newest event that is
        not a reversal (schema.settlement.Settlement.of)."""
        e, d, line, t, p = (self.alias(x) for x in ("e", "d", "l", "t", "p"))

        def of_claim(x: str) -> str:
            # The claim's events: its key, with the year and person its events share (their
            # foreign key), so that only the partition of the year is read.
            return (
                f"{x}.claim_id = {c}.id AND {x}.year = {c}.year "
                f"AND {x}.beneficiary_id = {c}.beneficiary_id"
            )

        decisive = (
            f"FROM settlements {d} WHERE {of_claim(d)} AND {d}.kind <> 'REVERSAL' "
            f"ORDER BY {d}.id DESC LIMIT 1"
        )
        payers = [f.name for f in s.children if f.name in {p.value for p in Payer}]
        parts: list[str] = []
        for f in s.children:
            parts.append(f"'{f.key}'")
            if f.name == "__typename":
                parts.append("'Settlement'::text")
            elif f.name == "claimNumber":
                parts.append(f"{c}.claim_number")
            elif f.name == "policy":
                parts.append(f"coalesce((SELECT {d}.policy {decisive}), '')")
            elif f.name == "category":
                parts.append(f"(SELECT NULLIF({d}.category, '') {decisive})")
            elif f.name == "outOfPocket":
                parts.append(f"(0.00 + {t}.out_of_pocket)::text")
            else:
                parts.append(f"(0.00 + coalesce({p}.p{payers.index(f.name)}, 0.00))::text")
        lines = ""
        if payers:
            sums = ", ".join(
                f"sum({line}.amount) FILTER (WHERE {line}.payer = '{Payer(name).value}') AS p{n}"
                for n, name in enumerate(payers)
            )
            lines = (
                # Each event's lines by the event's key (OFFSET 0 keeps the lines a subquery
                # the event parameterises: read by their key's index in the event's partition,
                # whatever the planner guesses of a partition not analysed yet).
                f" CROSS JOIN LATERAL (SELECT {sums} FROM settlements {e} CROSS JOIN LATERAL "
                f"(SELECT * FROM settlement_lines {line} WHERE {line}.settlement_id = {e}.id "
                f"AND {line}.year = {e}.year AND {line}.beneficiary_id = {e}.beneficiary_id "
                f"OFFSET 0) {line} WHERE {of_claim(e)}) {p}"
            )
        return (
            f"(SELECT CASE WHEN {t}.events = 0 THEN NULL "
            f"ELSE json_build_object({', '.join(parts)}) END "
            f"FROM (SELECT count(*) AS events, sum({e}.out_of_pocket) AS out_of_pocket "
            f"FROM settlements {e} WHERE {of_claim(e)}) {t}{lines})"
        )

    # -- root fields --

    def beneficiary(self, s: Selected, column: str, value: uuid.UUID | str) -> str:
        """The statement of ``beneficiary(id:|idNumber:)`` once :func:`beneficiaries.lookup`
        has named the column and value: one row (``[id]``, JSON) or none."""
        b = self.alias("b")
        if column == "id":
            condition = f"{b}.id = {self.param(value, 'uuid')}"
        elif column == "id_number":
            condition = f"{b}.id_number = {self.param(value, 'text')}"
        else:
            raise NotCovered(column)
        conditions = [condition, *self.persons(b)]
        return (
            f"SELECT ARRAY[{b}.id], {self.obj('Beneficiary', s.children, b)}::text "
            f"FROM beneficiaries {b} WHERE {' AND '.join(conditions)}"
        )

    def claim(self, s: Selected) -> str:
        """The statement of ``claim(claimNumber:)`` (resolvers.claims.find): one row (the
        claim's person, JSON) or none, under the row rules of claims and of their persons."""
        number = self.args(s).get("claimNumber")
        if not isinstance(number, str):
            raise NotCovered("claimNumber")
        c, person = self.alias("c"), self.alias("pb")
        conditions = [
            f"{c}.claim_number = {self.param(number.strip(), 'text')}",
            f"EXISTS (SELECT 1 FROM beneficiaries {person} WHERE {person}.id = {c}.beneficiary_id "
            f"AND {' AND '.join(self.persons(person))})",
            *self.claims(c),
        ]
        return (
            f"SELECT ARRAY[{c}.beneficiary_id], {self.obj('Claim', s.children, c)}::text "
            f"FROM claims {c} WHERE {' AND '.join(conditions)}"
        )

    def beneficiaries(self, s: Selected) -> str:
        """The statement of ``beneficiaries(...)``: one row (ids of the page, JSON)."""
        args = self.args(s)
        first = _page_size(args.get("first"), self.ctx.settings.max_page_size)
        after_text = args.get("after")
        if after_text == "":
            raise NotCovered("an empty cursor")
        after = (
            None
            if after_text is None
            else uuid.UUID(_cursor_key("beneficiary", after_text, UUID_KEY))
        )
        b = self.alias("b")
        conditions = self.persons(b)
        prefix = args.get("regionPrefix")
        if prefix is not None:
            try:
                check_in_token(self.ctx.principal, "regionPrefix", check_region_prefix(prefix))
            except Exception:
                raise NotCovered("regionPrefix") from None
            conditions.append(f"{b}.region_code LIKE {self.param(prefix + '%', 'text')}")
        category = args.get("category")
        if category is not None:
            held = Category(category)
            table = "monitoring_flags" if held.is_monitoring_flag else "identities"
            today = self.param(self.ctx.settings.today(), "date")
            conditions.append(
                f"EXISTS (SELECT 1 FROM {table} h WHERE h.beneficiary_id = {b}.id "
                f"AND h.category = {self.param(held.value, 'text')} AND h.valid_from <= {today} "
                f"AND (h.valid_to IS NULL OR h.valid_to >= {today}))"
            )
        keyset = f"{b}.id > {self.param(after, 'uuid')}" if after is not None else None
        return self.page(
            s,
            table="beneficiaries",
            a=b,
            conditions=conditions,
            keyset=keyset,
            first=first,
            order=f"{b}.id",
            reverse=f"{b}.id DESC",
            cursor=_cursor("beneficiary", f"{b}.id"),
            node="Beneficiary",
            person=f"{b}.id",
        )

    def claims_root(self, s: Selected) -> str:
        """The statement of ``claims(year:, orderBy:, first:, after:)`` (resolvers.claims.page):
        one row (the persons of the page's claims, JSON)."""
        args = self.args(s)
        first = _page_size(args.get("first"), self.ctx.settings.max_page_size)
        order_by = args.get("orderBy")
        name = None if order_by is None else str(getattr(order_by, "value", order_by))
        c = self.alias("c")
        after_text = args.get("after")
        if name is None or name == "ID":
            kind, order, reverse = "claim", f"{c}.id", f"{c}.id DESC"
            key = f"{c}.id"
            keyset = (
                None
                if after_text is None
                else f"{c}.id > {self.param(int(_cursor_key(kind, after_text, ROW_ID)), 'bigint')}"
            )
        elif name in ("ADMISSION_DATE_ASC", "ADMISSION_DATE_DESC"):
            kind = f"claim by {name}"
            ascending = f"{c}.admission_date, {c}.id"
            descending = f"{c}.admission_date DESC, {c}.id DESC"
            order, reverse = (
                (ascending, descending) if name.endswith("ASC") else (descending, ascending)
            )
            key = f"to_char({c}.admission_date, 'YYYY-MM-DD') || ',' || {c}.id"
            keyset = None
            if after_text is not None:
                day, _, row = _cursor_key(kind, after_text, DATE_AND_ID).partition(",")
                try:
                    on = date.fromisoformat(day)
                except ValueError:
                    raise NotCovered("after") from None
                compare = ">" if name.endswith("ASC") else "<"
                keyset = (
                    f"({c}.admission_date, {c}.id) {compare} "
                    f"({self.param(on, 'date')}, {self.param(int(row), 'bigint')})"
                )
        else:
            raise NotCovered(f"orderBy {name}")
        person = self.alias("pb")
        conditions = [
            f"EXISTS (SELECT 1 FROM beneficiaries {person} WHERE {person}.id = {c}.beneficiary_id "
            f"AND {' AND '.join(self.persons(person))})",
            *self.claims(c),
        ]
        year = args.get("year")
        if year is not None:
            conditions.append(f"{c}.year = {self.param(year, 'int')}")
        return self.page(
            s,
            table="claims",
            a=c,
            conditions=conditions,
            keyset=keyset,
            first=first,
            order=order,
            reverse=reverse,
            cursor=_cursor(kind, key),
            node="Claim",
            person=f"{c}.beneficiary_id",
        )

    def page(
        self,
        s: Selected,
        *,
        table: str,
        a: str,
        conditions: list[str],
        keyset: str | None,
        first: int,
        order: str,
        reverse: str,
        cursor: str,
        node: str,
        person: str,
    ) -> str:
        """A root connection (resolvers.pages.fetch_page and schema.pagination.connection):
        ``first + 1`` rows of ``table`` (alias ``a``) under ``conditions`` after ``keyset`` in
        ``order`` (``reverse`` the other way), the ``first`` shown, their persons
        (``person``, for the audit), cursors, pageInfo and the COUNT without the keyset."""
        where = " AND ".join(conditions)
        n = self.param(first, "int")
        after = f" AND {keyset}" if keyset is not None else ""
        fields = self.connection(
            s,
            count=f"(SELECT count(*) FROM {table} {a} WHERE {where})",
            page={
                "has_next": f"(SELECT count(*) FROM page) > {n}",
                "after": keyset is not None,
                "start": f"(SELECT {cursor} FROM shown {a} ORDER BY {order} LIMIT 1)",
                "end": f"(SELECT {cursor} FROM shown {a} ORDER BY {reverse} LIMIT 1)",
            },
            cursor=cursor,
            node=(node, a),
            edges=lambda edge: (
                f"(SELECT coalesce(json_agg({edge} ORDER BY {order}), '[]'::json) FROM shown {a})"
            ),
        )
        return (
            f"WITH page AS MATERIALIZED (SELECT {a}.* FROM {table} {a} WHERE {where}{after} "
            f"ORDER BY {order} LIMIT {n} + 1), "
            f"shown AS MATERIALIZED (SELECT {a}.* FROM page {a} ORDER BY {order} LIMIT {n}) "
            f"SELECT (SELECT coalesce(array_agg(DISTINCT {person}), '{{}}') FROM shown {a}), "
            f"json_build_object({', '.join(fields)})::text"
        )


# -- running a plan -------------------------------------------------------------------------------


async def run(
    plan: Plan,
    ctx: Context,
    schema: graphql.GraphQLSchema,
    variables: Mapping[str, Any] | None,
    check: Check,
) -> Answer | None:
    """The answer of ``plan`` from one statement per root field, or None when the request is not
    covered after all (its argument values): nothing has been sent to the database then."""
    if plan.rows != ctx.rows.rules:
        return None
    coerced = get_variable_values(
        schema, plan.operation.variable_definitions or (), dict(variables or {})
    )
    if isinstance(coerced, list):  # errors: graphql-core reports them
        return None
    arguments: Arguments = {}
    pages: dict[int, tuple[str, list[Any], bool]] = {}
    looked_up: dict[int, tuple[str, uuid.UUID | str, str, list[Any]]] = {}
    try:
        _arguments(plan.roots, coerced, check, arguments)
        for root in plan.roots:
            if root.name == "beneficiary":
                given = arguments.get(id(root.node), {})
                column, value = beneficiaries.lookup(given.get("id"), given.get("idNumber"))
                sql = _Sql(ctx, arguments)  # its arguments, or fall back
                text = sql.beneficiary(root, column, value)
                looked_up[id(root.node)] = (column, value, text, sql.params)
            else:
                sql = _Sql(ctx, arguments)
                # (the statement's builder, whether it reads a set: planned for its values)
                build, over_a_set = {
                    "claim": (sql.claim, False),  # by its number: keeps its plan
                    "claims": (sql.claims_root, True),
                }.get(root.name, (sql.beneficiaries, True))
                text = build(root)
                pages[id(root.node)] = (text, sql.params, over_a_set)
    except (NotCovered, InvalidInput, BadInput, graphql.GraphQLError, ValueError, TypeError):
        return None
    answer = Answer(data={}, operation=plan.label)
    found: list[list[uuid.UUID]] = []
    for root in plan.roots:
        if root.name == "beneficiary":
            given = arguments.get(id(root.node), {})
            built = looked_up[id(root.node)]

            async def read(
                column: str,
                value: uuid.UUID | str,
                root: Selected = root,
                built: tuple[str, uuid.UUID | str, str, list[Any]] = built,
            ) -> Any:
                # beneficiaries.find looks the person up as above (lookup): the statement built
                # then, unless it names another column or value.
                text, params = built[2], built[3]
                if (column, value) != built[:2]:
                    sql = _Sql(ctx, arguments)
                    text, params = sql.beneficiary(root, column, value), sql.params
                return await _fetchrow(ctx, text, params)

            row = await beneficiaries.find(
                ctx, id=given.get("id"), id_number=given.get("idNumber"), read=read
            )
        else:
            text, params, over_a_set = pages[id(root.node)]
            row = await _fetchrow(ctx, text, params, custom_plan=over_a_set)
        answer.statements += 1
        if row is None:
            answer.data[root.key] = None
            found.append([])
        else:
            answer.data[root.key] = json.loads(row[1])
            answer.text_size += len(row[1])
            found.append(list(row[0]))
    for root, ids in zip(plan.roots, found, strict=True):
        _trail(answer, lambda: iter((answer.data,)), (root,), "", ids, arguments)
    return answer


async def _fetchrow(
    ctx: Context, text: str, params: Sequence[Any], *, custom_plan: bool = False
) -> Any:
    """One row of a compiled statement, or None: on the request's read session's connection
    (asyncpg, no ORM) when it has one, else on a bare connection (:meth:`Context.read`).
    ``custom_plan`` (a page): planned for its values (:data:`gateway.storage.database.
    CUSTOM_PLAN`), in a transaction of its own (a savepoint inside the session's)."""

    async def run(driver: Any) -> Any:
        if custom_plan:
            await driver.execute(CUSTOM_PLAN)
        return await driver.fetchrow(text, *params)

    async def bare(driver: Any) -> Any:
        if not custom_plan:
            return await run(driver)
        async with driver.transaction():
            return await run(driver)

    async def work(session: Any) -> Any:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        if driver.is_in_transaction():
            # Inside the session's transaction (an earlier operation of a batch): a savepoint,
            # so that a statement that fails leaves the transaction usable by the resolvers.
            async with driver.transaction():
                return await run(driver)
        return await bare(driver)

    return await ctx.read(work, bare)


def _trail(
    answer: Answer,
    instances: Callable[[], Iterator[dict[str, Any]]],
    selected: Sequence[Selected],
    prefix: str,
    ids: list[uuid.UUID],
    arguments: Arguments,
) -> None:
    """What :class:`gateway.access.FieldAccess` notes: each personal field (and each personal
    lookup given) whose parent object occurs in the response, with the persons the statement
    returned where the parent is a person. ``instances`` gives the parent objects lazily: only
    the first one is needed to know that the parent occurs."""
    if next(instances(), None) is None:
        return
    for s in selected:
        path = f"{prefix}{s.name}"
        if s.personal:
            answer.field_paths.add(path)
            if s.parent in ("Beneficiary", "Claim"):  # the person, or the claim's person
                answer.beneficiary_ids.update(ids)
        given = arguments.get(id(s.node), {})
        for name in s.lookups:
            if given.get(name) is not None:
                answer.field_paths.add(f"{path}({name})")
                if s.type_name == "Beneficiary":
                    answer.beneficiary_ids.update(ids)
        if s.children:
            _trail(
                answer,
                functools.partial(_below_of, instances, s.key),
                s.children,
                f"{path}.",
                ids,
                arguments,
            )


def _below_of(
    instances: Callable[[], Iterator[dict[str, Any]]], key: str
) -> Iterator[dict[str, Any]]:
    return _below(instances(), key)


def _below(instances: Iterator[dict[str, Any]], key: str) -> Iterator[dict[str, Any]]:
    for instance in instances:
        value = instance[key]
        if isinstance(value, list):
            yield from value
        elif value is not None:
            yield value
