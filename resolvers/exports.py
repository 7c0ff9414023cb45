"""Exports (issue 11): whole lists for other departments' systems, built in SQL and streamed
row by row from a server-side cursor, each an audited read under the caller's access policy.

Three kinds, each the rows of one GraphQL read written as a table:

- ``subsidies`` (资助参保名单): a year's enrollments and who pays their contribution (assistance
  fund, finance, the person), per region and optionally per fund: the read
  ``beneficiaries { edges { node { … enrollments { … subsidy { … } } } } }`` of that year;
- ``alerts`` (主动发现 high-cost list): ``highCostAlerts(year:) { edges { node { … beneficiary
  { … } } } }``;
- ``settlements`` (per hospital and month): ``claims(year:) { edges { node { … beneficiary { … }
  settlement { the five payers, outOfPocket } settlements { kind assistance
  secondaryAssistance } } } }``, the events giving the adjustments (追溯调整) and recoveries (追回).

Each column is tied to the schema field path(s) it is read from, so the access policy decides
with its own machinery (:func:`policies.access.forbidden_paths`, :func:`gateway.access.refusal`,
:meth:`AccessPolicies.mask`), never a second copy of the rules: a department gets the columns
it may read (an insurer's settlements have no assistance lines, its names and ID numbers are
masked as in its queries); naming a column it may not read, or a kind whose key columns it may
not read, is FORBIDDEN naming them; a token without the purpose its personal fields need is
FORBIDDEN too. Rows follow the row rules of :class:`resolvers.rows.RowRules`.

The audit record is the one the GraphQL read would write (same writer, the schema's field paths
of the personal columns, operation ``query ExportSubsidies`` and the equivalent document as
query text), written before the first row leaves: the beneficiary ids are read first in the same
REPEATABLE READ snapshot the rows then stream from, so the record names exactly the persons sent.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any

import graphql
from sqlalchemy import Select, String, case, cast, extract, func, null, select, text, true
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, join

from gateway.access import looks_up_personal, refusal
from gateway.arguments import YEARS, check_value
from gateway.auth import Principal
from gateway.errors import Forbidden
from gateway.storage import audit, models
from gateway.storage.database import CUSTOM_PLAN, Database
from gateway.tables import Column, Kind, Row
from policies.access.policy import AccessPolicies, DepartmentPolicy, Mode
from policies.access.walker import forbidden_paths
from policies.errors import InvalidInput
from policies.funds import AccountKind
from policies.vocabulary import Payer
from resolvers import payments, statements
from resolvers.inputs import check_in_token, check_region_prefix
from resolvers.rows import RowRules

FETCH_ROWS = 500
"""Rows per fetch from the server-side cursor."""
_PERSON = "_beneficiary"
"""The label of the hidden column carrying each row's beneficiary id (for the audit)."""


class ExportKind(StrEnum):
    SUBSIDIES = "subsidies"
    ALERTS = "alerts"
    SETTLEMENTS = "settlements"
    PAYMENTS = "payments"
    STATEMENTS = "statements"


class Fund(StrEnum):
    """Who pays a share of a subsidised contribution (the ``fund`` filter of subsidies)."""

    ASSISTANCE_FUND = "assistanceFund"
    FINANCE = "finance"


@dataclass(frozen=True)
class Field:
    """A column of an export and the schema field paths, below the export's root field, that
    its value is read from (``("edges.node.name",)``)."""

    column: Column
    paths: tuple[str, ...]
    key: bool = False
    """A key column: a department that may not read it may not run the export at all."""


def _field(name: str, title: str, path: str, kind: Kind = Kind.TEXT, key: bool = False) -> Field:
    return Field(Column(name, title, kind), (path,), key)


def _person(node: str) -> list[Field]:
    """The person's columns, ``node`` being the path of the Beneficiary."""
    return [
        _field("beneficiaryId", "受助人编号", f"{node}.id"),
        _field("idNumber", "身份证号", f"{node}.idNumber"),
        _field("name", "姓名", f"{node}.name"),
        _field("regionCode", "区划代码", f"{node}.regionCode", key=True),
    ]


_EVENTS = ("kind", "assistance", "secondaryAssistance")
FIELDS: Mapping[ExportKind, tuple[str, tuple[Field, ...]]] = {
    ExportKind.SUBSIDIES: (
        "beneficiaries",
        (
            *_person("edges.node"),
            _field("year", "年度", "edges.node.enrollments.year", Kind.INTEGER, key=True),
            _field("scheme", "参保类型", "edges.node.enrollments.scheme"),
            _field("enrolledOn", "参保日期", "edges.node.enrollments.enrolledOn", Kind.DATE),
            _field(
                "contribution", "个人缴费标准", "edges.node.enrollments.contribution", Kind.MONEY
            ),
            _field("policy", "政策", "edges.node.enrollments.subsidy.policy"),
            _field("category", "资助类别", "edges.node.enrollments.subsidy.category"),
            _field(
                "assistanceFund",
                "医疗救助基金",
                "edges.node.enrollments.subsidy.assistanceFund",
                Kind.MONEY,
                key=True,
            ),
            _field(
                "finance", "财政补贴", "edges.node.enrollments.subsidy.finance", Kind.MONEY, True
            ),
            _field(
                "individual",
                "个人缴费",
                "edges.node.enrollments.subsidy.individual",
                Kind.MONEY,
                key=True,
            ),
        ),
    ),
    ExportKind.ALERTS: (
        "highCostAlerts",
        (
            _field("alertId", "预警编号", "edges.node.id", key=True),
            _field("year", "年度", "edges.node.year", Kind.INTEGER, key=True),
            *_person("edges.node.beneficiary"),
            _field("outOfPocket", "个人自付", "edges.node.outOfPocket", Kind.MONEY, key=True),
            _field("threshold", "预警线", "edges.node.threshold", Kind.MONEY),
            _field("status", "状态", "edges.node.status"),
            _field("resolution", "处理结果", "edges.node.resolution"),
            _field("resolvedAt", "处理时间", "edges.node.resolvedAt", Kind.DATETIME),
        ),
    ),
    ExportKind.SETTLEMENTS: (
        "claims",
        (
            _field("claimNumber", "结算单号", "edges.node.claimNumber", key=True),
            _field("hospitalCode", "定点医疗机构编码", "edges.node.hospitalCode", key=True),
            _field("year", "结算年度", "edges.node.year", Kind.INTEGER, key=True),
            _field("type", "就诊类型", "edges.node.type"),
            _field("admissionDate", "入院日期", "edges.node.admissionDate", Kind.DATE, key=True),
            _field("dischargeDate", "出院日期", "edges.node.dischargeDate", Kind.DATE),
            *_person("edges.node.beneficiary"),
            _field("carrier", "大病保险承办机构", "edges.node.carrier"),
            _field("reversed", "已冲销", "edges.node.reversed", Kind.BOOLEAN),
            _field("totalCost", "总费用", "edges.node.totalCost", Kind.MONEY),
            _field("policyScopeCost", "政策范围内费用", "edges.node.policyScopeCost", Kind.MONEY),
            *(
                _field(
                    payer.value,
                    title,
                    f"edges.node.settlement.{payer.value}",
                    Kind.MONEY,
                    # Without the settlement it is no settlement list (health reads claims only).
                    key=payer is Payer.BASIC_INSURANCE,
                )
                for payer, title in (
                    (Payer.BASIC_INSURANCE, "基本医保"),
                    (Payer.CRITICAL_ILLNESS, "大病保险"),
                    (Payer.INCLUSIVE_COMMERCIAL, "普惠型商业健康保险"),
                    (Payer.ASSISTANCE, "医疗救助"),
                    (Payer.SECONDARY_ASSISTANCE, "倾斜救助/再救助"),
                )
            ),
            _field("outOfPocket", "个人自付", "edges.node.settlement.outOfPocket", Kind.MONEY),
            Field(
                Column("adjustments", "追溯调整", Kind.MONEY),
                tuple(f"edges.node.settlements.{name}" for name in _EVENTS),
            ),
            Field(
                Column("recoveries", "追回", Kind.MONEY),
                tuple(f"edges.node.settlements.{name}" for name in _EVENTS),
            ),
        ),
    ),
    # Issue 13: what the assistance fund owes each hospital and person (resolvers/payments.py),
    # from the fund ledgers; the GraphQL read it stands for is the claims' settlement events.
    ExportKind.PAYMENTS: (
        "claims",
        (
            _field("payee", "收款方类型", "edges.node.hospitalCode", key=True),
            _field("hospitalCode", "定点医疗机构编码", "edges.node.hospitalCode"),
            *_person("edges.node.beneficiary"),
            _field("periodStart", "起始日期", "edges.node.settlements.createdAt", Kind.DATE),
            _field("periodEnd", "截止日期", "edges.node.settlements.createdAt", Kind.DATE),
            Field(
                Column("amount", "应付医疗救助金额", Kind.MONEY),
                (
                    "edges.node.dischargeDate",
                    *(f"edges.node.settlements.{name}" for name in (*_EVENTS, "createdAt")),
                ),
                key=True,
            ),
        ),
    ),
    # Issue 13: a fund's statement (resolvers/statements.py), one row per line.
    ExportKind.STATEMENTS: (
        "fundStatement",
        (
            _field("fund", "基金账户", "fund", key=True),
            _field("party", "承办机构/医疗机构", "party"),
            _field("periodStart", "起始日期", "periodStart", Kind.DATE),
            _field("periodEnd", "截止日期", "periodEnd", Kind.DATE),
            _field("opening", "期初余额", "opening", Kind.MONEY),
            _field("kind", "业务类型", "lines.kind", key=True),
            _field("flow", "资金项目", "lines.flow"),
            _field("debit", "借方", "lines.debit", Kind.MONEY, key=True),
            _field("credit", "贷方", "lines.credit", Kind.MONEY, key=True),
            _field("closing", "期末余额", "closing", Kind.MONEY),
        ),
    ),
}
"""Every column of each kind, in order, under the root field of its GraphQL read. The
settlement's amounts are the sums of its events (original, adjustments, reversal, recoveries),
as ``Claim.settlement`` gives them; ``adjustments`` is the assistance and secondary-assistance
lines of its ADJUSTMENT events, ``recoveries`` those of its RECOVERY events (negative)."""


EXTRA_OPTIONS: Mapping[str, tuple[ExportKind, ...]] = {
    "month": (ExportKind.PAYMENTS, ExportKind.STATEMENTS),
    "quarter": (ExportKind.STATEMENTS,),
    "hospital": (ExportKind.STATEMENTS,),
    "fund": (ExportKind.STATEMENTS,),
}
"""Options of issue 13's kinds: a month (payments, statements), a quarter (statements: the
reconciliation with finance is quarterly, 鲁医保发〔2020〕79号 四(三)), a party (a statement's
hospital code or carrier, as ``hospital``) and the fund of a statement (an account kind)."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export; :meth:`checked` validates it (BAD_INPUT naming the option and value)."""

    kind: str
    year: int
    region: str | None = None
    month: int | None = None
    hospital: str | None = None
    quarter: int | None = None
    fund: str | None = None
    columns: Sequence[str] | None = None

    def checked(self, principal: Principal) -> ExportRequest:
        """This request with its values checked: ``kind`` one of :class:`ExportKind`, ``year`` in
        :data:`YEARS`, ``month`` 1–12 and ``hospital`` (settlements only), ``fund`` one of
        :class:`Fund` (subsidies only), ``region`` a prefix sharing a region with the token
        (FORBIDDEN otherwise, as ``regionPrefix``), ``columns`` names of the kind.

        :raises InvalidInput: naming the option and the value.
        :raises Forbidden: for a region outside the token's regions.
        """
        kinds = ", ".join(ExportKind)
        if self.kind not in set(ExportKind):
            raise InvalidInput("kind", self.kind, f"expected one of {kinds}")
        kind = ExportKind(self.kind)
        if self.year not in YEARS:
            raise InvalidInput("year", self.year, f"expected {YEARS.start} to {YEARS.stop - 1}")
        only = {"month": ExportKind.SETTLEMENTS, "hospital": ExportKind.SETTLEMENTS}
        only["fund"] = ExportKind.SUBSIDIES
        only["quarter"] = ExportKind.STATEMENTS
        for option, allowed in only.items():
            also = kind in EXTRA_OPTIONS.get(option, ())  # issue 13's kinds
            if getattr(self, option) is not None and kind is not allowed and not also:
                value = getattr(self, option)
                raise InvalidInput(option, value, f"applies to the {allowed} export only")
        if self.month is not None and not 1 <= self.month <= 12:
            raise InvalidInput("month", self.month, "expected 1 to 12")
        if self.quarter is not None and not 1 <= self.quarter <= 4:
            raise InvalidInput("quarter", self.quarter, "expected 1 to 4")
        if self.quarter is not None and self.month is not None:
            raise InvalidInput("quarter", self.quarter, "give a month or a quarter, not both")
        if self.hospital is not None:
            check_value("hospital", self.hospital)
            if not self.hospital.strip() or len(self.hospital) > 40:
                raise InvalidInput("hospital", self.hospital, "expected a hospital code")
        funds_of = AccountKind if kind is ExportKind.STATEMENTS else Fund
        if self.fund is not None and self.fund not in set(funds_of):
            raise InvalidInput("fund", self.fund, f"expected one of {', '.join(funds_of)}")
        if self.region is not None:
            check_in_token(principal, "region", check_region_prefix(self.region, "region"))
        names = [field.column.name for field in FIELDS[kind][1]]
        for name in self.columns or ():
            if name not in names:
                raise InvalidInput("columns", name, f"not a column of {kind}: {', '.join(names)}")
        return self


@dataclass(frozen=True)
class Plan:
    """An export the caller may run: its columns (in order), how each cell is masked, the
    personal field paths it reads (for the audit) and the equivalent GraphQL document."""

    request: ExportRequest
    kind: ExportKind
    fields: tuple[Field, ...]
    masks: tuple[Callable[[str], str] | None, ...]
    personal_paths: frozenset[str]
    document: str
    rows: frozenset[str]
    """The row rules of the caller's department."""

    @property
    def columns(self) -> list[Column]:
        return [field.column for field in self.fields]

    @property
    def operation(self) -> str:
        return f"query Export{self.kind.value.capitalize()}"


def _period(request: ExportRequest) -> tuple[str, int | None]:
    """A statement's period: the month, else the quarter, else the year."""
    if request.month:
        return "MONTH", request.month
    if request.quarter:
        return "QUARTER", request.quarter
    return "YEAR", None


def _arguments(request: ExportRequest, kind: ExportKind) -> str:
    """The root field's arguments in the GraphQL read (filters the schema has)."""
    if kind is ExportKind.STATEMENTS:
        given = {
            "fund": request.fund,
            "period": _period(request)[0],
            "number": _period(request)[1],
            "regionPrefix": f'"{request.region}"' if request.region else None,
            "party": f'"{request.hospital.strip()}"' if request.hospital else None,
        }
        more = "".join(f", {name}: {value}" for name, value in given.items() if value)
        return f"(year: {request.year}{more})"
    if kind is ExportKind.SUBSIDIES:
        return f'(regionPrefix: "{request.region}")' if request.region else ""
    return f"(year: {request.year})"


def document_of(request: ExportRequest, kind: ExportKind, fields: Sequence[Field]) -> str:
    """The GraphQL read an export is (what its audit record keeps as query text), with the
    export's parameters in a comment:

    >>> fields = [f for f in FIELDS[ExportKind.ALERTS][1] if f.column.name in ("alertId", "name")]
    >>> print(document_of(ExportRequest("alerts", 2026), ExportKind.ALERTS, fields))
    # medgw export alerts: year 2026
    query ExportAlerts {
      highCostAlerts(year: 2026) {
        edges {
          node {
            id
            beneficiary {
              name
            }
          }
        }
      }
    }
    """
    root, _ = FIELDS[kind]
    tree: dict[str, Any] = {}
    for field in fields:
        for path in field.paths:
            node = tree
            for name in path.split("."):
                node = node.setdefault(name, {})
    parameters = [
        f"{name} {value}"
        for name in ("year", "region", "month", "quarter", "hospital", "fund")
        if (value := getattr(request, name)) is not None
    ]

    def lines(node: Mapping[str, Any], depth: int) -> list[str]:
        out: list[str] = []
        for name, below in node.items():
            pad = "  " * depth
            if below:
                out += [f"{pad}{name} {{", *lines(below, depth + 1), f"{pad}}}"]
            else:
                out.append(f"{pad}{name}")
        return out

    body = lines(tree, 2)
    name = f"Export{kind.value.capitalize()}"
    return "\n".join(
        [
            f"# medgw export {kind}: {', '.join(parameters)}",
            f"query {name} {{",
            f"  {root}{_arguments(request, kind)} {{",
            *body,
            "  }",
            "}",
        ]
    )


def _steps(schema: graphql.GraphQLSchema, path: str) -> list[tuple[str, str, str]]:
    """``(type, field, path so far)`` of each field of a path from the query root."""
    steps: list[tuple[str, str, str]] = []
    current: graphql.GraphQLNamedType | None = schema.query_type
    names: list[str] = []
    for name in path.split("."):
        assert isinstance(current, graphql.GraphQLObjectType), path
        names.append(name)
        steps.append((current.name, name, ".".join(names)))
        current = graphql.get_named_type(current.fields[name].type)
    return steps


def plan(
    request: ExportRequest,
    principal: Principal,
    access: AccessPolicies,
    schema: graphql.GraphQLSchema,
) -> Plan:
    """What ``principal`` may export of ``request``, decided by its department's policy on the
    export's GraphQL read (``schema`` is the full schema).

    The columns are the ones asked for (all by default) that the department may read; a column
    asked for by name that it may not read, or a key column of the kind, is FORBIDDEN with
    ``forbidden`` listing the columns; so is a token lacking the purpose that personal fields
    need (:func:`gateway.access.refusal`).

    :raises InvalidInput: for a bad request value (see :meth:`ExportRequest.checked`).
    :raises Forbidden: naming the columns (``forbidden``) or the region (``field``, ``value``).
    """
    request = request.checked(principal)
    kind = ExportKind(request.kind)
    policy = access.departments[principal.department]
    root, every = FIELDS[kind]
    asked = [f for f in every if request.columns is None or f.column.name in request.columns]
    denied = _denied(every, root, request, kind, policy, schema)
    # A key column refuses the kind; another refuses the export only when asked for by name.
    named = request.columns is not None
    refused = [f for f in every if f in denied and (f.key or (named and f in asked))]
    if refused:
        names = [f.column.name for f in refused]
        what = "the key columns of" if any(f.key for f in refused) else "these columns of"
        raise Forbidden(
            f"{policy.department} may not export {what} {kind}: {', '.join(names)}",
            forbidden=names,
        )
    fields = tuple(f for f in asked if f not in denied)
    document = document_of(request, kind, fields)
    error = refusal(document, None, schema, access, policy, principal.purpose)
    if error is not None:
        paths = set((error.extensions or {}).get("forbidden", ()))
        names = [f.column.name for f in fields if any(_under(p, paths, root) for p in f.paths)]
        raise Forbidden(error.message, forbidden=names)
    masks: list[Callable[[str], str] | None] = []
    # A root argument that filters on personal data is a personal lookup, recorded as the
    # GraphQL read records it (``claims(year)``).
    personal = {
        f"{root}({argument})"
        for argument in _root_arguments(document)
        if looks_up_personal(policy, access, "Query", root, argument)
    }
    for field in fields:
        for path in field.paths:
            for type_name, name, so_far in _steps(schema, f"{root}.{path}"):
                if access.is_personal(type_name, name):
                    personal.add(so_far)
        type_name, name, _ = _steps(schema, f"{root}.{field.paths[0]}")[-1]
        masked = policy.mode(type_name, name) == Mode.MASKED
        masks.append(_masker(access, type_name, name) if masked else None)
    return Plan(request, kind, fields, tuple(masks), frozenset(personal), document, policy.rows)


def _root_arguments(document: str) -> list[str]:
    """The argument names of the root field of an export's document."""
    [operation] = graphql.parse(document).definitions
    assert isinstance(operation, graphql.OperationDefinitionNode)
    [root] = operation.selection_set.selections
    assert isinstance(root, graphql.FieldNode)
    return [argument.name.value for argument in root.arguments or ()]


def _masker(access: AccessPolicies, type_name: str, name: str) -> Callable[[str], str]:
    return lambda value: access.mask(type_name, name, value)


def _under(path: str, forbidden: set[str], root: str) -> bool:
    """Whether ``path`` (below ``root``) is, or lies below, one of the ``forbidden`` paths."""
    parts = f"{root}.{path}".split(".")
    return any(".".join(parts[:n]) in forbidden for n in range(1, len(parts) + 1))


def _denied(
    fields: Sequence[Field],
    root: str,
    request: ExportRequest,
    kind: ExportKind,
    policy: DepartmentPolicy,
    schema: graphql.GraphQLSchema,
) -> set[Field]:
    """The fields whose paths the department's grants refuse (the walker on the whole read);
    a refused argument of the root field refuses every field."""
    document = graphql.parse(document_of(request, kind, fields))
    forbidden = set(forbidden_paths(document, schema, policy))
    if any("(" in path for path in forbidden):
        return set(fields)
    return {f for f in fields if any(_under(p, forbidden, root) for p in f.paths)}


# --- the rows ------------------------------------------------------------------------------


def _money(column: Any, settled: Any) -> Any:
    """An amount of a settled claim (0 when no line), null when the claim has no event."""
    return case((settled > 0, func.coalesce(column, 0)), else_=None)


def statement(request: ExportRequest, rows: RowRules) -> Select[*tuple[Any, ...]]:
    """The SQL of an export: every column of its kind labelled by its name, and the hidden
    ``_beneficiary``; the row rules, filters and order applied."""
    kind = ExportKind(request.kind)
    person = models.Beneficiary
    personal = _personal(person)
    region = _region(person, request)
    if kind is ExportKind.SUBSIDIES:
        e = models.Enrollment
        stmt: Select[*tuple[Any, ...]] = (
            select(
                *personal,
                e.year.label("year"),
                e.scheme.label("scheme"),
                e.enrolled_on.label("enrolledOn"),
                e.contribution.label("contribution"),
                e.subsidy_policy.label("policy"),
                e.subsidy_category.label("category"),
                e.subsidy_assistance_fund.label("assistanceFund"),
                e.subsidy_finance.label("finance"),
                e.subsidy_individual.label("individual"),
                person.id.label(_PERSON),
            )
            .join(person, person.id == e.beneficiary_id)
            .where(e.year == request.year, *rows.persons(), *region)
            .order_by(person.region_code, person.id_number, e.id)
        )
        if request.fund is not None:
            shares = {
                Fund.ASSISTANCE_FUND: e.subsidy_assistance_fund,
                Fund.FINANCE: e.subsidy_finance,
            }
            stmt = stmt.where(shares[Fund(request.fund)] > 0)
        return stmt
    if kind is ExportKind.ALERTS:
        a = models.HighCostAlert
        alerts: Select[*tuple[Any, ...]] = (
            select(
                cast(a.id, String).label("alertId"),
                a.year.label("year"),
                *personal,
                a.out_of_pocket.label("outOfPocket"),
                a.threshold.label("threshold"),
                a.status.label("status"),
                a.resolution.label("resolution"),
                a.resolved_at.label("resolvedAt"),
                person.id.label(_PERSON),
            )
            .join(person, person.id == a.beneficiary_id)
            .where(a.year == request.year, *rows.persons(), *region)
            .order_by(a.id)
        )
        return alerts
    if kind is ExportKind.STATEMENTS:
        lines = statements.select_statement(
            rows, fund=request.fund, year=request.year,
            period=_period(request)[0], number=_period(request)[1],
            region_prefix=request.region, party=request.hospital,
        )  # fmt: skip
        return lines.add_columns(cast(null(), UUID).label(_PERSON))
    if kind is ExportKind.PAYMENTS:
        return payments.select_payments(request.year, request.month, request.region, rows, _PERSON)
    return _settlements(request, rows)


def _personal(person: Any) -> list[Any]:
    return [
        cast(person.id, String).label("beneficiaryId"),
        person.id_number.label("idNumber"),
        person.name.label("name"),
        person.region_code.label("regionCode"),
    ]


def _region(person: Any, request: ExportRequest) -> list[Any]:
    return [] if request.region is None else [person.region_code.like(f"{request.region}%")]


def _settlements(request: ExportRequest, rows: RowRules) -> Select[*tuple[Any, ...]]:
    c, s, line = models.Claim, models.Settlement, models.SettlementLine
    # The row rules of persons are EXISTS over beneficiaries (and, for an insurer, claims): the
    # person shown is joined under an alias so that those subqueries do not correlate to it.
    person = aliased(models.Beneficiary)
    events = (
        select(func.count().label("n"), func.sum(s.out_of_pocket).label("out_of_pocket"))
        .where(s.claim_id == c.id, s.year == c.year)  # the claim's partition, run-time pruned
        .correlate(c)
        .lateral("events")
    )
    assistance = line.payer.in_([Payer.ASSISTANCE.value, Payer.SECONDARY_ASSISTANCE.value])
    sums = [func.sum(line.amount).filter(line.payer == p.value).label(p.value) for p in Payer]
    lines = (
        select(
            *sums,
            func.sum(line.amount).filter(s.kind == "ADJUSTMENT", assistance).label("adjustments"),
            func.sum(line.amount).filter(s.kind == "RECOVERY", assistance).label("recoveries"),
        )
        .select_from(s)
        .join(line, (line.settlement_id == s.id) & (line.year == s.year))
        .where(s.claim_id == c.id, s.year == c.year)  # the claim's partition, run-time pruned
        .correlate(c)
        .lateral("lines")
    )
    settled = events.c.n
    stmt: Select[*tuple[Any, ...]] = (
        select(
            c.claim_number.label("claimNumber"),
            c.hospital_code.label("hospitalCode"),
            c.year.label("year"),
            c.type.label("type"),
            c.admission_date.label("admissionDate"),
            c.discharge_date.label("dischargeDate"),
            *_personal(person),
            c.carrier.label("carrier"),
            (c.reversed_at.is_not(None)).label("reversed"),
            c.total_cost.label("totalCost"),
            c.policy_scope_cost.label("policyScopeCost"),
            *(_money(lines.c[p.value], settled).label(p.value) for p in Payer),
            _money(events.c.out_of_pocket, settled).label("outOfPocket"),
            _money(lines.c.adjustments, settled).label("adjustments"),
            _money(lines.c.recoveries, settled).label("recoveries"),
            person.id.label(_PERSON),
        )
        .select_from(
            join(c, person, person.id == c.beneficiary_id).join(events, true()).join(lines, true())
        )
        .where(c.year == request.year, *rows.claims_with_persons(), *_region(person, request))
        .order_by(c.hospital_code.nulls_last(), c.admission_date, c.id)
    )
    if request.month is not None:
        stmt = stmt.where(extract("month", c.admission_date) == request.month)
    if request.hospital is not None:
        stmt = stmt.where(c.hospital_code == request.hospital.strip())
    return stmt


class Export:
    """A planned export being read: the audit record is written by :meth:`open`, then
    :meth:`rows` streams the rows; :meth:`close` (or ``async with``) gives the connection back::

        async with await Export.open(db, principal, plan) as export:
            async for chunk in stream_table(plan.columns, export.rows(), Format.CSV):
                ...
    """

    def __init__(self, plan: Plan, session: AsyncSession, stmt: Select[*tuple[Any, ...]]) -> None:
        self.plan = plan
        self.session = session
        self.stmt = stmt
        self.beneficiary_ids: list[uuid.UUID] = []
        self.has_rows = False

    @classmethod
    async def open(cls, db: Database, principal: Principal, plan: Plan) -> Export:
        """Open a REPEATABLE READ snapshot, read whose rows the export holds, and write the read
        audit record (committed) before any row is read; with no row, no record (as for the
        GraphQL read)."""
        full = statement(plan.request, RowRules.of(principal, plan.rows))
        by_name = {column.key: column for column in full.selected_columns}
        chosen = [*(field.column.name for field in plan.fields), _PERSON]
        stmt = full.with_only_columns(
            *(by_name[name] for name in chosen), maintain_column_froms=True
        )
        session = db.sessions()
        export = cls(plan, session, stmt)
        try:
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            await session.execute(text(CUSTOM_PLAN))  # an export reads whole regions
            listed = stmt.subquery().c[_PERSON]
            persons = select(listed).where(listed.is_not(None)).distinct()
            export.beneficiary_ids = list((await session.scalars(persons)).all())
            # A payment file may hold hospitals only: rows, but nobody's data to record.
            export.has_rows = bool(export.beneficiary_ids) or bool(
                await session.scalar(select(func.count()).select_from(stmt.subquery()))
            )
            if export.beneficiary_ids:
                async with db.transaction() as writing:
                    await audit.append(
                        writing,
                        principal,
                        action="READ",
                        operation=plan.operation,
                        query=plan.document,
                        beneficiary_ids=export.beneficiary_ids,
                        field_paths=plan.personal_paths,
                        detail={"export": plan.kind.value},
                    )
        except BaseException:
            await session.close()
            raise
        return export

    async def rows(self) -> AsyncIterator[Row]:
        """The rows, masked, one value per column of the plan, fetched :data:`FETCH_ROWS` at a
        time from a server-side cursor."""
        if not self.has_rows:
            return
        masks = self.plan.masks
        result = await self.session.stream(self.stmt.execution_options(yield_per=FETCH_ROWS))
        async for row in result:
            values = row[: len(masks)]
            yield [
                value if mask is None or value is None else mask(str(value))
                for mask, value in zip(masks, values, strict=True)
            ]

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> Export:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
