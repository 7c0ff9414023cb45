"""Department permissions through GraphQL (spec/ACCESS.md), driven by the policy files.

The matrix walk queries every field of every object type as every department and checks that
a granted field answers (with the stored value, or its mask), and that a field not granted is
refused as FORBIDDEN before anything runs: no SQL statement, no audit record, no data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any

import graphql
import httpx
import pytest
from sqlalchemy import text

import gateway.app
from gateway.access import looks_up_personal
from gateway.app import create_app, load_access_for_schema
from gateway.config import Settings
from gateway.storage import audit
from gateway.storage.database import Database
from policies.access.policy import DepartmentPolicy, Mode, catalog_of
from policies.benefits import PolicySet
from tests.conftest import GraphQLClient, StatementCounter, make_token
from tests.factories import category_document, id_number, recorder

FULL, ACCESS = load_access_for_schema()
CATALOG = catalog_of(FULL)
APPENDS = ("INSERT INTO AUDIT_LOG", audit.APPEND.upper())
"""How an audit record is written: an INSERT, or one statement of ``audit_append``."""
# What a writing mutation returns (Relay payloads): reached only by running the mutation, so the
# mutation walk checks these, not the read walk.
PAYLOADS = {
    target: name
    for name, target in CATALOG["Mutation"].items()
    if target is not None and target.endswith("Payload")
}
DEPARTMENTS = sorted(ACCESS.departments)
SUBSCRIPTION = "Subscription"  # walked over a WebSocket by tests/gateway/test_subscriptions.py

ID = "510402197001010013"  # 攀枝花东区, born 1970-01-01, male
# 南京, whose late news (a back-dated end of 低保) leaves a pending recovery in 2017 and is only
# listed for 2016, a closed year (SETTLEMENT.md §9.4, §9.5).
JIANGSU = "320102196502020010"
NAME = "张三丰"
CLAIM = "C-0001"
INSURER = "insurer-a"
HOSPITAL = "H-510402-01"  # the hospital code of the seeded claims
PAYERS = (
    "basicInsurance",
    "criticalIllness",
    "inclusiveCommercial",
    "assistance",
    "secondaryAssistance",
)
TABLES = (
    "beneficiaries",
    "identities",
    "monitoring_flags",
    "enrollments",
    "claims",
    "settlements",
    "settlement_lines",
    "ledgers",
    "high_cost_alerts",
    "assistance_applications",
    "recoveries",
    "settlement_year_closings",
    "late_news",
    "audit_log",
)

SIMULATION = (
    '(input: {person: {regionCode: "510402", birthDate: "1970-01-01", '
    'categories: [{category: MINIMUM_LIVING, validFrom: "2021-06-01", decidedOn: "2021-05-20"}]}, '
    'visits: [{id: "v1", type: INPATIENT, hospitalLevel: SECONDARY, '
    'admissionDate: "2023-03-01", totalCost: "100000.00", policyScopeCost: "40000.00", '
    'reported: {basicInsurance: "30000.00"}}]})'
)
SIMULATED = {
    "person": {
        "regionCode": "510402",
        "birthDate": "1970-01-01",
        "categories": [
            {"category": "MINIMUM_LIVING", "validFrom": "2021-06-01", "decidedOn": "2021-05-20"}
        ],
    },
    "visits": [
        {
            "id": "v1",
            "type": "INPATIENT",
            "hospitalLevel": "SECONDARY",
            "admissionDate": "2023-03-01",
            "totalCost": "100000.00",
            "policyScopeCost": "40000.00",
            "reported": {"basicInsurance": "30000.00"},
        }
    ],
}
# The arguments the walk passes; every required argument of the walked fields is here.
ARGUMENTS: dict[tuple[str, str], str] = {
    ("Query", "beneficiary"): f'(idNumber: "{ID}")',
    ("Query", "claim"): f'(claimNumber: "{CLAIM}")',
    ("Query", "statistics"): '(year: 2023, regionPrefix: "5104")',
    ("Query", "dashboard"): '(year: 2023, regionPrefix: "5104")',
    ("Query", "accessReport"): f'(idNumber: "{ID}")',
    ("Query", "depositWaiver"): f'(idNumber: "{ID}", on: "2023-03-01")',
    ("Beneficiary", "yearlySummary"): "(year: 2023)",
    ("Mutation", "simulateSettlement"): SIMULATION,
    ("Query", "fundStatement"): '(year: 2023, regionPrefix: "5104")',
    (
        "Query",
        "fundReconciliation",
    ): '(year: 2023, period: QUARTER, number: 1, regionPrefix: "5104")',
}
# Grants that no query can reach because the department may not use any field leading to the
# type: the auditor sees beneficiary ids only inside audit records (AuditRecord.beneficiaryIds),
# health reads claims through Query.claim(s), never through a person. Pinned here so that a new
# unreachable grant is noticed.
UNREACHABLE_GRANTS = {
    "auditor": {("Beneficiary", "id")},
    "health": {("Beneficiary", "claims")},
}

Step = tuple[str, str]


def token(department: str) -> dict[str, Any]:
    """The token of a department: the insurer carries INSURER's claims for claim handling."""
    if department == "insurer":
        return {"department": department, "org": INSURER, "purpose": "claim_handling"}
    if department == "hospital":
        return {"department": department, "org": HOSPITAL, "purpose": "treatment"}
    return {"department": department, "org": f"{department}-5104"}


def routes(may_use: Callable[[str, str], bool]) -> dict[str, tuple[Step, ...]]:
    """The shortest chain of usable fields from a root to each reachable object type.

    Query comes first; ``simulateSettlement`` (which stores nothing) is the only way into the
    simulation types, so it is the one mutation the walk goes through.
    """
    found: dict[str, tuple[Step, ...]] = {"Query": (), "Mutation": ()}
    queue = deque(["Query", "Mutation"])
    while queue:
        parent = queue.popleft()
        for name, target in CATALOG[parent].items():
            if parent == "Mutation" and name != "simulateSettlement":
                continue
            if target is None or target in found or not may_use(parent, name):
                continue
            found[target] = (*found[parent], (parent, name))
            queue.append(target)
    return found


def _anything(type_name: str, field: str) -> bool:
    return True


FULL_ROUTES = routes(_anything)


def selection(
    type_name: str | None, may_use: Callable[[str, str], bool], seen: frozenset[str] = frozenset()
) -> tuple[str, list[Step]]:
    """A sub-selection of ``type_name`` made of usable fields: a scalar if there is one, else an
    object field and its own sub-selection. Returns the text and the fields it selects."""
    if type_name is None:
        return "", []
    fields = CATALOG[type_name]
    for name, target in fields.items():
        if target is None and may_use(type_name, name):
            step = (type_name, name)
            return f" {{ {name}{ARGUMENTS.get(step, '')} }}", [step]
    for name, target in fields.items():
        if target is not None and target not in seen and may_use(type_name, name):
            step = (type_name, name)
            inner, steps = selection(target, may_use, seen | {type_name})
            return f" {{ {name}{ARGUMENTS.get(step, '')}{inner} }}", [step, *steps]
    raise AssertionError(f"{type_name}: no usable field to select")


@dataclass(frozen=True)
class Probe:
    """One request of the walk: its text, the response keys down to the probed field and every
    field it selects."""

    document: str
    names: list[str]
    fields: list[Step]


def probe(
    route: Sequence[Step],
    cell: Step,
    may_use: Callable[[str, str], bool],
    arguments: str | None = None,
) -> Probe:
    type_name, field = cell
    below, below_fields = selection(CATALOG[type_name][field], may_use)
    inner = f"{field}{ARGUMENTS.get(cell, '') if arguments is None else arguments}{below}"
    for step in reversed(route):
        inner = f"{step[1]}{ARGUMENTS.get(step, '')} {{ {inner} }}"
    kind = "mutation" if route and route[0][0] == "Mutation" else "query"
    return Probe(
        f"{kind} {{ {inner} }}",
        [name for _, name in route] + [field],
        [*route, cell, *below_fields],
    )


def values_at(data: Any, names: Sequence[str]) -> list[Any]:
    """The values of the last key of ``names`` under ``data``, through lists on the way."""
    current = [data]
    for depth, name in enumerate(names):
        found: list[Any] = []
        for item in current:
            if item is None:
                continue
            value = item[name]
            if isinstance(value, list) and depth < len(names) - 1:
                found.extend(value)
            else:
                found.append(value)
        current = found
    return current


def is_real(value: Any) -> bool:
    return value is not None and value != []


# --- seeding ---------------------------------------------------------------------------------

REGISTER = "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }"
ENROLL = "mutation($i: RecordEnrollmentInput!) { recordEnrollment(input: $i) { year } }"
IDENTITY = category_document("MINIMUM_LIVING")
FLAG = category_document("MONITORED")
SETTLE = """mutation($i: SettleClaimInput!) { settleClaim(input: $i) {
  claimNumber policy category preferentialTreatment basicInsurance criticalIllness
  inclusiveCommercial assistance secondaryAssistance outOfPocket } }"""


def category_input(number: str, category: str, valid_from: str) -> dict[str, Any]:
    return {
        "i": {
            "idNumber": number,
            "category": category,
            "validFrom": valid_from,
            "reference": f"{category}-{valid_from}",
        }
    }


def claim_input(number: str, total: str, scope: str, person: str = ID) -> dict[str, Any]:
    return {
        "i": {
            "claimNumber": number,
            "idNumber": person,
            "type": "INPATIENT",
            "hospitalLevel": "SECONDARY",
            "hospitalCode": HOSPITAL,
            "admissionDate": "2023-03-01",
            "dischargeDate": "2023-03-11",
            "totalCost": total,
            "policyScopeCost": scope,
            "diagnosis": "C34.9",
            "carrier": INSURER,
        }
    }


async def seed(gql: GraphQLClient) -> dict[Step, Any]:
    """One person of 510402 with an identity, a flag, an enrollment, a settled claim carried by
    INSURER whose out-of-pocket (> 21,000) opens an alert, write audit records and one read
    record. Returns the value each field must show for that person."""
    mi = {**token("medical_insurance"), "purpose": "seeding"}
    registered = await gql.data(
        REGISTER, {"i": {"idNumber": ID, "name": NAME, "regionCode": "510402"}}, **mi
    )
    identity_by, flag_by = recorder("MINIMUM_LIVING"), recorder("MONITORED")
    await gql.data(
        IDENTITY, category_input(ID, "MINIMUM_LIVING", "2021-06-01"), **token(identity_by)
    )
    # Enrolled after the recognition, so the contribution is subsidised (§7).
    enrollment = {"idNumber": ID, "year": 2023, "contribution": "380.00"}
    await gql.data(ENROLL, {"i": {**enrollment, "enrolledOn": "2022-12-01"}}, **mi)
    await gql.data(FLAG, category_input(ID, "MONITORED", "2021-01-01"), **token(flag_by))
    # Basic insurance as the core system reported it (the amount the policy file computes too).
    claim = claim_input(CLAIM, "100000.00", "40000.00")
    claim["i"]["reported"] = {"basicInsurance": "31680.00"}
    settled = (await gql.data(SETTLE, claim, **mi))["settleClaim"]
    await gql.data(f'{{ beneficiary(idNumber: "{ID}") {{ name }} }}', **mi)
    await seed_late_news(gql, mi)

    paid = {payer: settled[payer] for payer in PAYERS}
    totals = {**paid, "totalCost": "100000.00", "outOfPocket": settled["outOfPocket"]}
    person = registered["registerBeneficiary"]["id"]
    expected: dict[Step, Any] = {
        ("Beneficiary", "id"): person,
        ("Beneficiary", "idNumber"): ID,
        ("Beneficiary", "name"): NAME,
        ("Beneficiary", "gender"): "MALE",
        ("Beneficiary", "birthDate"): "1970-01-01",
        ("Beneficiary", "birthYear"): 1970,
        ("Beneficiary", "regionCode"): "510402",
        ("Beneficiary", "preferentialTreatment"): True,
        ("Enrollment", "year"): 2023,
        ("Enrollment", "contribution"): "380.00",
        ("Enrollment", "inclusiveCommercial"): False,
        ("Enrollment", "enrolledOn"): "2022-12-01",
        ("Claim", "claimNumber"): CLAIM,
        ("Claim", "year"): 2023,
        ("Claim", "type"): "INPATIENT",
        ("Claim", "hospitalLevel"): "SECONDARY",
        ("Claim", "hospitalCode"): HOSPITAL,
        ("Claim", "admissionDate"): "2023-03-01",
        ("Claim", "dischargeDate"): "2023-03-11",
        ("Claim", "totalCost"): "100000.00",
        ("Claim", "policyScopeCost"): "40000.00",
        ("Claim", "referralCompliant"): True,
        ("Claim", "inProvince"): True,
        ("Claim", "diagnosis"): "C34.9",
        ("Claim", "specialTreatmentHospital"): False,
        ("Claim", "carrier"): INSURER,
        ("Claim", "reversed"): False,
        ("Claim", "acknowledged"): False,
        ("Claim", "preferentialTreatment"): True,
        **{("Settlement", key): value for key, value in settled.items()},
        ("SettlementEvent", "kind"): "ORIGINAL",
        ("SettlementEvent", "reason"): None,
        ("SettlementEvent", "policy"): settled["policy"],
        ("SettlementEvent", "category"): "MINIMUM_LIVING",
        **{("SettlementEvent", key): value for key, value in totals.items() if key != "totalCost"},
        ("YearlySummary", "year"): 2023,
        ("YearlySummary", "visits"): 1,
        **{("YearlySummary", key): value for key, value in totals.items()},
        ("HighCostAlert", "year"): 2023,
        ("HighCostAlert", "outOfPocket"): settled["outOfPocket"],
        ("HighCostAlert", "threshold"): "21000.00",
        ("HighCostAlert", "status"): "OPEN",
        ("HighCostAlert", "resolution"): None,
        ("HighCostAlert", "resolvedAt"): None,
        ("HighCostAlert", "policy"): "510400-2023",
        ("HighCostAlert", "acknowledgedBy"): None,
        ("HighCostAlert", "acknowledgedAt"): None,
        ("HighCostAlert", "assessingDepartment"): None,
        ("HighCostAlert", "resolvedBy"): None,
        ("HighCostAlert", "identity"): None,
        ("HighCostAlert", "monitoringFlag"): None,
        **{("Application", name): None for name in APPLICATION_NULLS},
        ("Statistics", "regionPrefix"): "5104",
        ("Statistics", "year"): 2023,
        ("Statistics", "persons"): 1,
        ("Statistics", "claims"): 1,
        **{("Statistics", key): value for key, value in totals.items()},
        ("AccessReport", "idNumber"): ID,
        # 低保 in 攀枝花 on the admission date: 先诊疗后付费 (攀枝花 第十六条).
        ("DepositWaiver", "entitled"): True,
        ("DepositWaiver", "on"): "2023-03-01",
        ("AccessReport", "beneficiaryId"): person,
        # Every category record of the person (and of the simulated one) is still open.
        ("CategoryCandidate", "validTo"): None,
        # The seeded recovery is pending: nobody has decided it yet.
        ("Recovery", "status"): "PENDING",
        ("Recovery", "decidedBy"): None,
        ("Recovery", "decidedAt"): None,
        ("Recovery", "decisionReason"): None,
        ("Recovery", "claimNumber"): "C-J2017",
        ("LateNews", "year"): 2016,
        ("LateNews", "regionCode"): "320000",
        ("LateNews", "operation"): "endIdentity",
        ("SettlementYearClosing", "regionCode"): "320000",
        ("SettlementYearClosing", "year"): 2016,
    }
    for kind, category, valid_from, by in (
        ("Identity", "MINIMUM_LIVING", "2021-06-01", identity_by),
        ("MonitoringFlag", "MONITORED", "2021-01-01", flag_by),
    ):
        expected[(kind, "category")] = category
        expected[(kind, "validFrom")] = valid_from
        expected[(kind, "validTo")] = None
        expected[(kind, "reference")] = f"{category}-{valid_from}"
        expected[(kind, "department")] = by
        expected[(kind, "org")] = token(by)["org"]
    assert settled["category"] == "MINIMUM_LIVING"
    return expected


APPLICATION_NULLS = (
    "acknowledgedBy",
    "acknowledgedAt",
    "resolution",
    "resolvedBy",
    "resolvedAt",
    "identity",
    "monitoringFlag",
)
"""Fields of the seeded (undecided) applications that are null."""


async def seed_alert(db: Database) -> None:
    """The seeded person's 2023 alert, inserted: holding 低保 (a category 攀枝花 assists), the
    person is not discovered by settlement (resolvers/alerts.py); the walk reads its fields."""
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO high_cost_alerts (beneficiary_id, year, policy, out_of_pocket, "
                "threshold, status) SELECT beneficiary_id, year, '510400-2023', out_of_pocket, "
                "21000, 'OPEN' FROM ledgers WHERE year = 2023 AND beneficiary_id = (SELECT id "
                "FROM beneficiaries WHERE id_number = :n)"
            ),
            {"n": ID},
        )
        # and one application received at each window that reads them, routed to civil affairs
        for department in [
            d for d, p in ACCESS.departments.items() if p.can_use("Query", "applications")
        ]:
            await conn.execute(
                text(
                    "INSERT INTO assistance_applications (beneficiary_id, category, statement, "
                    "received_department, received_by, routed_to, status) SELECT id, 'ORPHAN', "
                    "'申请', :d, :w, 'civil_affairs', 'OPEN' FROM beneficiaries "
                    "WHERE id_number = :n"
                ),
                {"n": ID, "d": department, "w": f"{department}/x"},
            )
    await seed_changes(db)


WHSEC = "whsec_" + "a" * 44


def seeded_webhook(department: str, which: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"medgw-test:{department}:{which}")


def seeded_delivery(department: str) -> int:
    return DEPARTMENTS.index(department) + 1


async def seed_changes(db: Database) -> None:
    """The outbox rows of the alert and applications seed_alert inserts by SQL, and for each
    department that reads its webhooks two of them (one with a delivered delivery, one spare
    for deleteWebhook)."""
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO outbox_events (type, beneficiary_id, subject, detail) "
                "SELECT 'ALERT_CHANGED', beneficiary_id, id::text, '{}'::jsonb "
                "FROM high_cost_alerts UNION ALL "
                "SELECT 'APPLICATION_CHANGED', beneficiary_id, id::text, '{}'::jsonb "
                "FROM assistance_applications"
            )
        )
        event = await conn.scalar(text("SELECT min(id) FROM outbox_events"))
        for department, policy in ACCESS.departments.items():
            if not policy.can_use("Query", "webhooks"):
                continue
            for which in ("delivering", "spare"):
                await conn.execute(
                    text(
                        "INSERT INTO webhooks (id, department, org, subject, regions, url, "
                        "events, secret, since_txid, since_event) VALUES (:id, :d, :o, 'tester', "
                        "'{5104}', 'http://127.0.0.1:9/hook', '{CLAIM_CHANGED}', :s, 0, 0)"
                    ),
                    {
                        "id": seeded_webhook(department, which),
                        "d": department,
                        "o": token(department)["org"],
                        "s": WHSEC,
                    },
                )
            await conn.execute(
                text(
                    "INSERT INTO webhook_deliveries (id, webhook_id, event_id, status, attempts, "
                    "last_error, delivered_at) VALUES (:id, :w, :e, 'DELIVERED', 2, 'HTTP 503', "
                    "now())"
                ),
                {
                    "id": seeded_delivery(department),
                    "w": seeded_webhook(department, "delivering"),
                    "e": event,
                },
            )


async def seed_late_news(gql: GraphQLClient, mi: dict[str, Any]) -> None:
    """A Jiangsu person with claims in 2016 and 2017, 2016 closed, then 低保 ended back-dated:
    a pending recovery for the 2017 claim, late news listed for 2016."""
    await gql.data(
        REGISTER, {"i": {"idNumber": JIANGSU, "name": "王五", "regionCode": "320102"}}, **mi
    )
    by = token(recorder("MINIMUM_LIVING"))
    await gql.data(IDENTITY, category_input(JIANGSU, "MINIMUM_LIVING", "2015-01-01"), **by)
    for year in (2016, 2017):
        enrollment = {"idNumber": JIANGSU, "year": year, "contribution": "300.00"}
        await gql.data(ENROLL, {"i": {**enrollment, "enrolledOn": f"{year - 1}-12-01"}}, **mi)
        claim = claim_input(f"C-J{year}", "20000.00", "18000.00", person=JIANGSU)["i"]
        claim.update(admissionDate=f"{year}-03-01", dischargeDate=f"{year}-03-05", carrier=None)
        await gql.data(SETTLE, {"i": claim}, **mi)
    await gql.data(
        'mutation { closeSettlementYear(regionCode: "320000", year: 2016) { year } }', **mi
    )
    end = {"idNumber": JIANGSU, "category": "MINIMUM_LIVING", "validTo": "2015-12-31"}
    await gql.data(
        "mutation($i: EndCategoryInput!) { endIdentity(input: $i) { identity { validTo } } }",
        {"i": {**end, "decidedOn": "2015-12-31"}},
        **by,
    )


async def snapshot(db: Database) -> dict[str, str]:
    """Every stored row of every table, as a count and a digest per table."""
    async with db.engine.connect() as conn:
        return {
            table: str(
                await conn.scalar(
                    text(
                        f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' "
                        f"ORDER BY t::text)), '') FROM {table} t"
                    )
                )
            )
            for table in TABLES
        }


# A value for every filter argument of _fields.yaml; {person} is the seeded person's id.
FILTER_VALUES = {
    ("Query", "beneficiary", "idNumber"): f'"{ID}"',
    ("Query", "depositWaiver", "idNumber"): f'"{ID}"',
    ("Query", "beneficiaries", "regionPrefix"): '"5104"',
    ("Query", "beneficiaries", "category"): "MINIMUM_LIVING",
    ("Query", "claims", "year"): "2023",
    ("Query", "claims", "orderBy"): "ADMISSION_DATE_DESC",
    ("Query", "highCostAlerts", "status"): "OPEN",
    ("Query", "highCostAlerts", "year"): "2023",
    ("Query", "highCostAlerts", "orderBy"): "OUT_OF_POCKET_DESC",
    ("Query", "applications", "status"): "OPEN",
    ("Query", "auditLog", "department"): '"medical_insurance"',
    ("Query", "auditLog", "beneficiaryId"): '"{person}"',
    ("Query", "auditLog", "since"): '"2020-01-01T00:00:00+00:00"',
    ("Query", "auditLog", "until"): '"2100-01-01T00:00:00+00:00"',
    ("Beneficiary", "claims", "year"): "2023",
}


def test_every_filter_argument_has_a_value() -> None:
    for policy in ACCESS.departments.values():
        assert set(policy.filters) == set(FILTER_VALUES)


def found_something(value: Any) -> bool:
    """A person, or a page with at least one row."""
    return isinstance(value, dict) and all(is_real(v) for v in value.values())


# --- the matrix walk -------------------------------------------------------------------------


@dataclass
class Walk:
    gql: GraphQLClient
    statements: StatementCounter
    department: str
    expected: dict[Step, Any]
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def policy(self) -> DepartmentPolicy:
        return ACCESS.departments[self.department]

    async def send(self, document: str) -> tuple[dict[str, Any], int, int]:
        """The response, the SQL statements it ran and the audit records it inserted."""
        before = len(self.statements)
        body = await self.gql.post(document, **token(self.department))
        await asyncio.sleep(0)  # asyncpg calls its query loggers soon after the statement
        ran = self.statements.statements[before:]
        recorded = [s for s in ran if s.lstrip().upper().startswith(APPENDS)]
        return body, len(ran), len(recorded)

    def problem(self, cell: Step, what: str) -> None:
        self.problems.append(f"{self.department} {cell[0]}.{cell[1]}: {what}")

    async def granted(self, cell: Step, route: Sequence[Step], mode: Mode) -> None:
        request = probe(route, cell, self.policy.can_use)
        body, _, recorded = await self.send(request.document)
        if body.get("errors"):
            self.problem(cell, f"granted {mode} but {body['errors']} for {request.document}")
            return
        values = values_at(body["data"], request.names)
        personal = any(ACCESS.is_personal(*step) for step in request.fields) or any(
            looks_up_personal(self.policy, ACCESS, *step, argument)
            for step in request.fields
            for argument in re.findall(r"(\w+):", ARGUMENTS.get(step, ""))
        )
        if recorded != int(personal):
            self.problem(cell, f"{recorded} audit records for {request.document}")
        if not values:
            self.problem(cell, f"no value came back for {request.document}: {body['data']}")
        elif mode == Mode.MASKED:
            clear = self.expected[cell]
            masked = ACCESS.mask(*cell, str(clear))
            if masked == clear or values != [masked] * len(values):
                self.problem(cell, f"masked {values}, expected {masked!r} (clear {clear!r})")
        elif cell in self.expected:
            if values != [self.expected[cell]] * len(values):
                self.problem(cell, f"read {values}, expected {self.expected[cell]!r}")
        elif not any(is_real(value) for value in values):
            self.problem(cell, f"read only empty values {values} for {request.document}")

    async def forbidden(self, cell: Step) -> None:
        own = routes(self.policy.can_use)
        if cell[0] in own and not self.policy.can_use(*cell):
            route = own[cell[0]]
            refused = [name for _, name in route] + [cell[1]]
        else:
            # The department cannot reach the type at all: the first field of the way there
            # that it may not use is what gets refused.
            route = FULL_ROUTES[cell[0]]
            steps = [*route, cell]
            first = next(i for i, step in enumerate(steps) if not self.policy.can_use(*step))
            refused = [name for _, name in steps[: first + 1]]
        request = probe(route, cell, _anything)
        body, ran, recorded = await self.send(request.document)
        errors = body.get("errors") or []
        codes = [(e.get("extensions") or {}).get("code") for e in errors]
        listed = [(e.get("extensions") or {}).get("forbidden") for e in errors]
        wanted = ".".join(refused)
        if body.get("data") is not None or codes != ["FORBIDDEN"] or listed != [[wanted]]:
            self.problem(cell, f"expected FORBIDDEN [{wanted}], got {body}")
        if ran or recorded:
            self.problem(cell, f"refused but ran {ran} statements, wrote {recorded} records")

    async def filters(self) -> None:
        """Pass each filter argument to a field the department may use: it runs only when the
        department may read what the argument filters on."""
        policy, own = self.policy, routes(self.policy.can_use)
        for (type_name, field, argument), value in FILTER_VALUES.items():
            cell = (type_name, field)
            if not policy.can_use(*cell) or type_name not in own:
                continue  # the field itself is refused: the field walk checks that
            literal = value.format(person=self.expected[("Beneficiary", "id")])
            route = own[type_name]
            request = probe(route, cell, policy.can_use, f"({argument}: {literal})")
            body, ran, recorded = await self.send(request.document)
            targets = policy.filters[(type_name, field, argument)]
            if all(policy.can_use(*target) for target in targets):
                values = values_at(body.get("data"), request.names)
                if body.get("errors") or not values or not all(map(found_something, values)):
                    self.problem(cell, f"({argument}) may filter on {targets}, got {body}")
                continue
            wanted = ".".join([name for _, name in route] + [f"{field}({argument})"])
            refused = [(e.get("extensions") or {}).get("forbidden") for e in body["errors"]]
            if body["data"] is not None or refused != [[wanted]]:
                self.problem(cell, f"({argument}) not readable {targets}, got {body}")
            if ran or recorded:
                self.problem(cell, f"({argument}) refused but ran {ran}, recorded {recorded}")


@pytest.mark.parametrize("department", DEPARTMENTS)
async def test_every_field_and_filter_answers_or_is_refused_as_the_department_policy_says(
    gql: GraphQLClient,
    db: Database,
    settings: Settings,
    count_statements: Callable[[], StatementCounter],
    department: str,
) -> None:
    expected = await seed(gql)
    await seed_alert(db)
    await audit.checkpoint(db, settings.audit_key, settings.audit_checkpoints)
    policy = ACCESS.departments[department]
    own = routes(policy.can_use)
    walk = Walk(gql, count_statements(), department, expected)
    for type_name, fields in CATALOG.items():
        if type_name in ("Mutation", SUBSCRIPTION) or type_name in PAYLOADS:
            continue  # subscriptions: tests/gateway/test_subscriptions.py
        for field in fields:
            cell = (type_name, field)
            mode = policy.mode(*cell)
            if mode is not None and type_name in own:
                await walk.granted(cell, own[type_name], mode)
            else:
                await walk.forbidden(cell)
    await walk.filters()
    assert walk.problems == []


def test_every_grant_is_reachable_except_the_pinned_ones() -> None:
    unreachable = {}
    for department, policy in ACCESS.departments.items():
        own = routes(policy.can_use)
        cells = {cell for cell in policy.grants if cell[0] not in own and cell[0] != SUBSCRIPTION}
        # A payload's fields are reached by running its mutation.
        cells = {c for c in cells if not policy.can_use("Mutation", PAYLOADS.get(c[0], ""))}
        if cells:
            unreachable[department] = cells
    assert unreachable == UNREACHABLE_GRANTS


def test_the_walk_knows_every_required_argument() -> None:
    missing = []
    for type_name in FULL_ROUTES:
        definition = FULL.get_type(type_name)
        assert isinstance(definition, graphql.GraphQLObjectType)
        for name, field in definition.fields.items():
            if type_name == "Mutation" and name != "simulateSettlement":
                continue
            required = [a for a, arg in field.args.items() if graphql.is_required_argument(arg)]
            if required and (type_name, name) not in ARGUMENTS:
                missing.append(f"{type_name}.{name}({', '.join(required)})")
    assert missing == []
    assert set(FULL_ROUTES) == set(CATALOG) - set(PAYLOADS) - {SUBSCRIPTION}


# --- mutations -------------------------------------------------------------------------------

NEWCOMER = id_number("510402", date(1985, 5, 5), 7)


def _own(policy: DepartmentPolicy, flags: bool) -> str:
    """A category the department records that the seeded person does not hold yet."""
    return sorted(
        c.value
        for c in policy.write_categories
        if c.is_monitoring_flag == flags and c.value not in ("MINIMUM_LIVING", "MONITORED")
    )[0]


def mutation_request(
    name: str,
    policy: DepartmentPolicy,
    alert: int,
    recovery: int = 1,
    selected: str = "__typename",
) -> tuple[str, dict[str, Any]]:
    """A request of mutation ``name`` that would succeed for a department that may run it,
    selecting ``selected`` of what it returns."""
    records = policy.can_use("Mutation", "recordIdentity")
    identity = _own(policy, flags=False) if records else "MINIMUM_LIVING"
    flags = policy.can_use("Mutation", "recordMonitoringFlag")
    flag = _own(policy, flags=True) if flags else "MONITORED"
    category = {"idNumber": ID, "reference": "R-1", "validFrom": "2022-01-01"}
    requests: dict[str, tuple[str, str, dict[str, Any]]] = {
        "registerBeneficiary": (
            "RegisterBeneficiaryInput!",
            "input: $v",
            {"idNumber": NEWCOMER, "name": "李四", "regionCode": "510402"},
        ),
        "recordIdentity": ("RecordCategoryInput!", "input: $v", {**category, "category": identity}),
        "endIdentity": (
            "EndCategoryInput!",
            "input: $v",
            {"idNumber": ID, "category": identity, "validTo": "2023-12-31"},
        ),
        "recordMonitoringFlag": (
            "RecordCategoryInput!",
            "input: $v",
            {**category, "category": flag},
        ),
        "endMonitoringFlag": (
            "EndCategoryInput!",
            "input: $v",
            {"idNumber": ID, "category": flag, "validTo": "2023-12-31"},
        ),
        "recordEnrollment": (
            "RecordEnrollmentInput!",
            "input: $v",
            {"idNumber": ID, "year": 2024, "contribution": "400.00", "enrolledOn": "2023-12-01"},
        ),
        "settleClaim": ("SettleClaimInput!", "input: $v", claim_input("C-0002", "800", "700")["i"]),
        "reverseSettlement": (
            "String!",
            'claimNumber: $v, reason: "refund"',
            "C-0002" if policy.can_use("Mutation", "settleClaim") else CLAIM,
        ),
        "simulateSettlement": ("SimulateSettlementInput!", "input: $v", SIMULATED),
        "acknowledgeClaim": ("String!", "claimNumber: $v", CLAIM),
        "resolveAlert": ("ID!", 'id: $v, resolution: "assistance granted"', str(alert)),
        # the lifecycle needs a state for each: set by PREPARED before the request
        "acknowledgeAlert": ("ID!", "id: $v", str(alert)),
        "recogniseAlert": ("ID!", "id: $v, identityId: 1", str(alert)),
        "rejectAlert": ("ID!", 'id: $v, reason: "不符合"', str(alert)),
        "submitApplication": (
            "SubmitApplicationInput!",
            "input: $v",
            {"idNumber": ID, "category": "ILLNESS_IMPOVERISHED", "statement": "申请"},
        ),
        "acknowledgeApplication": ("ID!", "id: $v", "1"),
        "recogniseApplication": ("ID!", "id: $v, identityId: 1", "1"),
        "rejectApplication": ("ID!", 'id: $v, reason: "不符合"', "1"),
        "decideRecovery": ("ID!", 'id: $v, decision: WAIVE, reason: "hardship"', str(recovery)),
        "closeSettlementYear": ("Int!", 'regionCode: "320000", year: $v', 2017),
        "registerWebhook": (
            "RegisterWebhookInput!",
            "input: $v",
            # a public https receiver: the shared app's egress rules refuse local ones
            {
                "url": "https://93.184.216.34/hook",
                "events": [
                    "CLAIM_CHANGED" if policy.can_use("Change", "claim") else "ALERT_CHANGED"
                ],
                "secret": WHSEC,
            },
        ),
        "deleteWebhook": ("ID!", "id: $v", str(seeded_webhook(policy.department, "spare"))),
        "redeliverWebhook": ("ID!", "id: $v", str(seeded_delivery(policy.department))),
    }
    variable_type, arguments, value = requests[name]
    document = f"mutation($v: {variable_type}) {{ {name}({arguments}) {{ {selected} }} }}"
    return document, {"v": value}


def payload_selection(name: str, may_use: Callable[[str, str], bool]) -> str:
    """``__typename`` and every field of mutation ``name``'s payload that ``may_use`` allows
    (with a sub-selection of usable fields); only ``__typename`` when it returns no payload."""
    payload = CATALOG["Mutation"][name]
    if payload not in PAYLOADS:
        return "__typename"
    fields = [
        f"{field}{selection(target, may_use)[0]}"
        for field, target in CATALOG[payload].items()
        if may_use(payload, field)
    ]
    return " ".join(["__typename", *fields])


PREPARED = {
    "acknowledgeAlert": "UPDATE high_cost_alerts SET status = 'OPEN'",
    "resolveAlert": "UPDATE high_cost_alerts SET status = 'OPEN'",
    "recogniseAlert": "UPDATE high_cost_alerts SET status = 'ACKNOWLEDGED', department = :d",
    "rejectAlert": "UPDATE high_cost_alerts SET status = 'ACKNOWLEDGED', department = :d",
    "acknowledgeApplication": "UPDATE assistance_applications SET status = 'OPEN', "
    "routed_to = :d WHERE id = 1",
    "recogniseApplication": "UPDATE assistance_applications SET status = 'ACKNOWLEDGED', "
    "routed_to = :d, department = :d WHERE id = 1",
    "rejectApplication": "UPDATE assistance_applications SET status = 'ACKNOWLEDGED', "
    "routed_to = :d, department = :d WHERE id = 1",
}
"""The state each lifecycle mutation needs (the previous mutation of the walk changed it)."""


def test_every_mutation_of_the_schema_has_a_request() -> None:
    for department in DEPARTMENTS:
        for name in CATALOG["Mutation"]:
            document, _ = mutation_request(name, ACCESS.departments[department], 1)
            assert f"{{ {name}(" in document


@pytest.mark.parametrize("department", DEPARTMENTS)
async def test_granted_mutations_run_and_refused_ones_execute_nothing_and_store_nothing(
    gql: GraphQLClient,
    db: Database,
    count_statements: Callable[[], StatementCounter],
    department: str,
) -> None:
    await seed(gql)
    await seed_alert(db)
    async with db.engine.connect() as conn:
        alert = int(await conn.scalar(text("SELECT id FROM high_cost_alerts")) or 0)
        recovery = int(await conn.scalar(text("SELECT id FROM recoveries")) or 0)
    policy = ACCESS.departments[department]
    statements = count_statements()
    mutation_type = FULL.mutation_type
    assert mutation_type is not None
    problems: list[str] = []
    for name in CATALOG["Mutation"]:
        payload = CATALOG["Mutation"][name]
        if policy.can_use("Mutation", name) and payload in PAYLOADS:
            # A payload field the department may not read is refused before the write runs.
            for field, target in CATALOG[payload].items():
                if policy.can_use(payload, field):
                    continue
                inner = selection(target, _anything)[0]
                document, variables = mutation_request(
                    name, policy, alert, recovery, f"{field}{inner}"
                )
                before, ran = await snapshot(db), len(statements)
                body = await gql.post(document, variables, **token(department))
                ran = len(statements) - ran
                if refusal_of(body).get("forbidden") != [f"{name}.{field}"]:
                    problems.append(f"{name}.{field} not granted but answered {body}")
                if ran or await snapshot(db) != before:
                    problems.append(f"{name}.{field} refused but ran {ran} statements")
        selected = payload_selection(name, policy.can_use)
        document, variables = mutation_request(name, policy, alert, recovery, selected)
        if name in PREPARED:
            async with db.engine.begin() as conn:
                await conn.execute(text(PREPARED[name]), {"d": department})
        before = await snapshot(db)
        ran = len(statements)
        body = await gql.post(document, variables, **token(department))
        ran = len(statements) - ran
        changed = sorted(t for t, digest in (await snapshot(db)).items() if before[t] != digest)
        if policy.can_use("Mutation", name):
            returns = graphql.get_named_type(mutation_type.fields[name].type).name
            stores = name != "simulateSettlement"
            if body.get("errors") or body["data"][name]["__typename"] != returns:
                problems.append(f"{name} granted but answered {body}")
            elif bool(changed) != stores or (stores and "audit_log" not in changed):
                problems.append(f"{name} granted, changed {changed}")
        else:
            errors = body.get("errors") or []
            refused = [
                (
                    (e.get("extensions") or {}).get("code"),
                    (e.get("extensions") or {}).get("forbidden"),
                )
                for e in errors
            ]
            if body.get("data") is not None or refused != [("FORBIDDEN", [name])]:
                problems.append(f"{name} not granted but answered {body}")
            if ran or changed:
                problems.append(f"{name} refused but ran {ran} statements and changed {changed}")
    assert problems == []


def refusal_of(body: dict[str, Any]) -> dict[str, Any]:
    """The extensions of the one error of a response that carries no data (a refused mutation
    field is null)."""
    assert not any((body["data"] or {}).values()), body
    assert len(body["errors"]) == 1, body["errors"]
    extensions: dict[str, Any] = body["errors"][0]["extensions"]
    return extensions


# --- introspection ---------------------------------------------------------------------------


def visible_types(policy: DepartmentPolicy) -> dict[str, set[str]]:
    """The object types a department's schema holds (reachable from Query and from every
    mutation it may run) with the fields it may use."""
    found = {"Query"} | ({"Mutation"} if any(t == "Mutation" for t, _ in policy.grants) else set())
    found |= {SUBSCRIPTION} if any(t == SUBSCRIPTION for t, _ in policy.grants) else set()
    queue = deque(sorted(found))
    while queue:
        parent = queue.popleft()
        for name, target in CATALOG[parent].items():
            if target is not None and target not in found and policy.can_use(parent, name):
                found.add(target)
                queue.append(target)
    return {
        type_name: {name for name in CATALOG[type_name] if policy.can_use(type_name, name)}
        for type_name in found
    }


async def test_introspection_shows_each_department_exactly_the_fields_it_may_use(
    gql: GraphQLClient,
) -> None:
    shown: dict[str, dict[str, set[str]]] = {}
    for department in DEPARTMENTS:
        # The introspection query GraphiQL sends to draw its schema explorer.
        data = await gql.data(graphql.get_introspection_query(), **token(department))
        schema = graphql.build_client_schema(data)  # type: ignore[arg-type]
        shown[department] = {
            name: set(definition.fields)
            for name, definition in schema.type_map.items()
            if isinstance(definition, graphql.GraphQLObjectType) and not name.startswith("__")
        }
    assert shown == {d: visible_types(ACCESS.departments[d]) for d in DEPARTMENTS}


async def test_the_insurer_sees_its_beneficiary_fields_and_finance_no_beneficiary_type(
    gql: GraphQLClient,
) -> None:
    query = '{ __type(name: "Beneficiary") { fields { name } } }'
    insurer = await gql.data(query, **token("insurer"))
    assert (
        {f["name"] for f in insurer["__type"]["fields"]}
        == {
            field
            for type_name, field in ACCESS.departments["insurer"].grants
            if type_name == "Beneficiary"
        }
        == {
            "id",
            "idNumber",
            "name",
            "gender",
            "birthYear",
            "regionCode",
            "claims",
        }
    )
    assert await gql.data(query, **token("finance")) == {"__type": None}


async def test_a_department_without_any_write_has_no_mutation_type(
    settings: Settings,
    db: Database,
    policies: PolicySet,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every bundled department may at least simulate; take that away from the dashboard.
    dashboard = ACCESS.departments["dashboard"]
    reader = dataclasses.replace(
        dashboard,
        grants=MappingProxyType({k: v for k, v in dashboard.grants.items() if k[0] != "Mutation"}),
    )
    departments = {**ACCESS.departments, "dashboard": reader}
    changed = dataclasses.replace(ACCESS, departments=MappingProxyType(departments))
    monkeypatch.setattr(gateway.app, "load_access_for_schema", lambda: (FULL, changed))
    app = create_app(settings, db=db, policies=policies)
    query = "{ __schema { mutationType { name } } }"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            answers = {}
            for department in ("dashboard", "finance"):
                response = await client.post(
                    "/graphql",
                    json={"query": query},
                    headers={"Authorization": f"Bearer {make_token(department=department)}"},
                )
                answers[department] = response.json()
    assert answers["dashboard"] == {"data": {"__schema": {"mutationType": None}}}
    assert answers["finance"] == {"data": {"__schema": {"mutationType": {"name": "Mutation"}}}}


# --- purpose ---------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", [None, "marketing"], ids=["no purpose", "other purpose"])
async def test_an_insurer_without_the_claim_handling_purpose_gets_no_personal_field(
    gql: GraphQLClient,
    db: Database,
    count_statements: Callable[[], StatementCounter],
    purpose: str | None,
) -> None:
    await seed(gql)
    before = await snapshot(db)
    statements = count_statements()
    body = await gql.post(
        f'{{ claim(claimNumber: "{CLAIM}") {{ claimNumber diagnosis beneficiary {{ name }} }} }}',
        department="insurer",
        org=INSURER,
        purpose=purpose,
    )
    assert refusal_of(body) == {
        "code": "FORBIDDEN",
        "forbidden": ["claim.beneficiary", "claim.diagnosis"],
    }
    assert "claim_handling" in body["errors"][0]["message"]
    assert len(statements) == 0
    assert await snapshot(db) == before


async def test_an_insurer_without_purpose_reads_fields_that_are_not_personal(
    gql: GraphQLClient, db: Database, policies: PolicySet
) -> None:
    await seed(gql)
    before = await snapshot(db)
    data = await gql.data(
        "{ benefitPolicies { id } claims { edges { node { claimNumber } } } }",
        department="insurer",
        org=INSURER,
    )
    assert data == {
        "benefitPolicies": [{"id": policy.id} for policy in policies],
        "claims": {"edges": [{"node": {"claimNumber": CLAIM}}]},
    }
    assert await snapshot(db) == before  # nothing personal, no audit record
    # A lookup by ID number is a personal read (ACCESS.md): refused without the purpose.
    body = await gql.post(
        f'{{ beneficiary(idNumber: "{ID}") {{ id }} }}', department="insurer", org=INSURER
    )
    assert refusal_of(body) == {"code": "FORBIDDEN", "forbidden": ["beneficiary(idNumber)"]}


async def test_the_same_query_text_gets_each_department_and_purpose_its_own_answer(
    gql: GraphQLClient,
) -> None:
    # Refusals are remembered per query text: alternate who asks and check every answer.
    expected = await seed(gql)
    query = f'{{ claim(claimNumber: "{CLAIM}") {{ diagnosis }} }}'
    diagnosis = {"claim": {"diagnosis": expected[("Claim", "diagnosis")]}}
    askers: list[tuple[dict[str, Any], str | None]] = [
        (token("health"), None),
        (token("finance"), "claim"),
        (token("insurer"), None),
        ({**token("insurer"), "purpose": None}, "claim.diagnosis"),
        (token("civil_affairs"), "claim"),
    ]
    for _ in range(2):
        for asker, refused in askers:
            body = await gql.post(query, **asker)
            if refused is None:
                assert body == {"data": diagnosis}, asker
            else:
                assert refusal_of(body) == {"code": "FORBIDDEN", "forbidden": [refused]}, asker


# --- writes by owner -------------------------------------------------------------------------

ENROLL_2024 = {
    "i": {"idNumber": ID, "year": 2024, "contribution": "400.00", "enrolledOn": "2023-12-01"}
}


@pytest.mark.parametrize(
    ("department", "document", "variables"),
    [
        ("civil_affairs", FLAG, category_input(ID, "MONITORED", "2022-01-01")),
        ("rural_revitalisation", IDENTITY, category_input(ID, "ORPHAN", "2022-01-01")),
        ("finance", SETTLE, claim_input("C-0009", "800.00", "700.00")),
        ("insurer", ENROLL, ENROLL_2024),
    ],
    ids=[
        "civil affairs flags",
        "rural revitalisation identities",
        "finance settles",
        "insurer enrolls",
    ],
)
async def test_a_department_writing_what_it_does_not_own_is_forbidden_and_nothing_is_stored(
    gql: GraphQLClient,
    db: Database,
    count_statements: Callable[[], StatementCounter],
    department: str,
    document: str,
    variables: dict[str, Any],
) -> None:
    await seed(gql)
    before = await snapshot(db)
    statements = count_statements()
    body = await gql.post(document, variables, **token(department))
    mutation = document.split("{")[1].split("(")[0].strip()
    assert refusal_of(body) == {"code": "FORBIDDEN", "forbidden": [mutation]}
    assert len(statements) == 0
    assert await snapshot(db) == before


async def test_a_trade_union_records_its_own_category_and_no_other(
    gql: GraphQLClient, db: Database
) -> None:
    await seed(gql)
    before = await snapshot(db)
    query = IDENTITY.replace("{ category }", "{ category department org }")
    body = await gql.post(
        query, category_input(ID, "MINIMUM_LIVING", "2022-01-01"), **token("trade_union")
    )
    assert refusal_of(body) == {"code": "FORBIDDEN", "field": "category"}
    assert "MINIMUM_LIVING" in body["errors"][0]["message"]
    assert await snapshot(db) == before

    data = await gql.data(
        query, category_input(ID, "DISTRESSED_WORKER", "2022-01-01"), **token("trade_union")
    )
    assert data == {
        "recordIdentity": {
            "identity": {
                "category": "DISTRESSED_WORKER",
                "department": "trade_union",
                "org": token("trade_union")["org"],
            }
        }
    }
    after = await snapshot(db)
    # The seeded person's 低保 and now DISTRESSED_WORKER; the Jiangsu person's 低保.
    assert after["identities"].split(":")[0] == "3"
    assert int(after["audit_log"].split(":")[0]) > int(before["audit_log"].split(":")[0])


# --- filters ---------------------------------------------------------------------------------

BY_CATEGORY = "{ beneficiaries(category: MINIMUM_LIVING) { edges { node { id } } } }"


async def test_a_category_filter_on_a_list_the_department_may_not_use_is_refused(
    gql: GraphQLClient, count_statements: Callable[[], StatementCounter]
) -> None:
    statements = count_statements()
    body = await gql.post(BY_CATEGORY, **token("health"))
    assert refusal_of(body) == {"code": "FORBIDDEN", "forbidden": ["beneficiaries"]}
    assert len(statements) == 0


async def test_an_insurer_may_not_filter_persons_by_a_category_it_may_not_read(
    gql: GraphQLClient, db: Database, count_statements: Callable[[], StatementCounter]
) -> None:
    """ACCESS.md: an insurer may know that a tilt applies "but never which category". Filtering
    its persons by category would tell it exactly that, one category at a time."""
    expected = await seed(gql)
    mi = token("medical_insurance")
    await gql.data(
        REGISTER, {"i": {"idNumber": NEWCOMER, "name": "李四", "regionCode": "510402"}}, **mi
    )
    newcomer = {"idNumber": NEWCOMER, "year": 2023, "contribution": "380.00"}
    await gql.data(ENROLL, {"i": {**newcomer, "enrolledOn": "2022-12-01"}}, **mi)
    await gql.data(SETTLE, claim_input("C-0003", "800.00", "700.00", person=NEWCOMER), **mi)
    everyone = await gql.data("{ beneficiaries { edges { node { id } } } }", **token("insurer"))
    assert len(everyone["beneficiaries"]["edges"]) == 2  # the insurer carries both
    # The filter tells the two apart:
    civil = await gql.data(BY_CATEGORY, **token("civil_affairs"))
    assert civil["beneficiaries"]["edges"] == [{"node": {"id": expected[("Beneficiary", "id")]}}]
    assert not ACCESS.departments["insurer"].can_use("Identity", "category")

    before = await snapshot(db)
    statements = count_statements()
    body = await gql.post(BY_CATEGORY, **token("insurer"))
    assert body["data"] is None, f"the insurer learnt who holds MINIMUM_LIVING: {body['data']}"
    assert refusal_of(body) == {"code": "FORBIDDEN", "forbidden": ["beneficiaries(category)"]}
    assert len(statements) == 0
    assert await snapshot(db) == before
