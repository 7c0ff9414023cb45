"""The dashboard rollup (issue 14, resolvers/cube.py) and the ``dashboard`` figures read from it:
settled through the real API (originals, a reversal, an adjustment after a recognition), the
cube equals a rebuild from the settlement events, and every figure equals an independent
computation in Python from the events, the alerts and the enrollments.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from policies.benefits import PolicySet
from policies.labels import label
from policies.vocabulary import PAYERS
from resolvers import cube
from tests.conftest import GraphQLClient, bearer, in_process
from tests.factories import id_number, recorder

MI = {"department": "medical_insurance", "purpose": "seeding"}
REGISTER = "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }"
ENROLL = "mutation($i: RecordEnrollmentInput!) { recordEnrollment(input: $i) { year } }"
IDENTITY = "mutation($i: RecordCategoryInput!) { recordIdentity(input: $i) { __typename } }"
SETTLE = "mutation($i: SettleClaimInput!) { settleClaim(input: $i) { outOfPocket } }"
REVERSE = """mutation($n: String!, $r: String!) {
  reverseSettlement(claimNumber: $n, reason: $r) { settlement { outOfPocket } } }"""
YEAR = 2023
CELL = """key label suppressed persons claims totalCost outOfScopeCost outOfPocket
  basicInsurance criticalIllness inclusiveCommercial assistance secondaryAssistance
  outOfPocketShare outOfScopeShare averageOutOfPocket"""
PAYER = "payer label suppressed persons amount share"
QUERY = f"""query($y: Int!, $p: String) {{ dashboard(year: $y, regionPrefix: $p) {{
  regionPrefix year k total {{ {CELL} }} assisted {{ {PAYER} }}
  byMonth {{ {CELL} }} byRegion {{ {CELL} }} byCategory {{ {CELL} }}
  byVisitType {{ {CELL} }} byHospitalLevel {{ {CELL} }} byPayer {{ {PAYER} }}
  outOfPocketBands {{ lower upper suppressed persons outOfPocket }}
  alerts {{ key label suppressed persons }}
  subsidies {{ category label suppressed persons assistanceFund finance individual }} }} }}"""
INPATIENT, GENERAL = "INPATIENT", "OUTPATIENT_GENERAL"
# (region, category held from 2022, [(type, level, discharge month, total cost)])
PEOPLE: list[tuple[str, str | None, list[tuple[str, str | None, int, int]]]] = [
    *[
        ("510402", "MINIMUM_LIVING", [(INPATIENT, "SECONDARY", 3 + i // 5, 20_000 + 7_000 * i)])
        for i in range(6)
    ],
    (
        "510402",
        "MINIMUM_LIVING",
        [(INPATIENT, "TERTIARY", 5, 90_000), (GENERAL, None, 9, 1_200)],
    ),
    *[("510403", None, [("INPATIENT", "PRIMARY", 4, 3_000 + 900 * i)]) for i in range(5)],
    ("510403", None, [("INPATIENT", "TERTIARY", 6, 45_000), ("INPATIENT", "SECONDARY", 7, 8_000)]),
    *[
        ("510411", "EXTREME_POVERTY", [("INPATIENT", "SECONDARY", 8, 30_000 + 500 * i)])
        for i in range(2)
    ],
]
REVERSED = "DASH-12-1"
"""The second claim of the last 510403 person: reversed."""
ENROLLED_ON = ("2022-12-01", f"{YEAR}-01-02")
"""Enrollment days, alternately: the subsidies of half the persons are booked in the year before
(the opening balances of the year's funds), of the other half in the year."""
HOSPITALS: tuple[str | None, ...] = ("H-510402-01", "H-510403-02", None)
"""Hospital codes of the claims, in turn: a claim without one credits the person (fund
ledgers, issue 13)."""
RECOGNISED = 11
"""The person (index) recognised 低保 after the stays: ADJUSTMENT events under the category."""


def number_of(i: int) -> str:
    return id_number(PEOPLE[i][0], date(1950 + i, 1 + i % 12, 1 + i % 28), 100 + i)


async def seed(gql: GraphQLClient) -> None:
    """The persons of :data:`PEOPLE`, registered, holding their category, enrolled (on
    :data:`ENROLLED_ON`) and settled through the API (at :data:`HOSPITALS`); then
    :data:`REVERSED` is reversed and person :data:`RECOGNISED` is
    recognised 低保 from 1 January (re-settled: ADJUSTMENT events)."""
    for i, (region, category, claims) in enumerate(PEOPLE):
        number = number_of(i)
        person = {"idNumber": number, "name": f"看板{i}", "regionCode": region}
        await gql.data(REGISTER, {"i": person}, **MI)
        if category:
            await record(gql, number, category, "2022-01-01")
        enrollment = {"idNumber": number, "year": YEAR, "contribution": "380.00"}
        await gql.data(ENROLL, {"i": {**enrollment, "enrolledOn": ENROLLED_ON[i % 2]}}, **MI)
        for n, (kind, level, month, total) in enumerate(claims):
            claim = {
                "claimNumber": f"DASH-{i}-{n}",
                "idNumber": number,
                "type": kind,
                "hospitalLevel": level,
                "admissionDate": f"{YEAR}-{month:02d}-01",
                "dischargeDate": f"{YEAR}-{month:02d}-11",
                "totalCost": f"{total}.00",
                "policyScopeCost": f"{total * 8 // 10}.00",
                "diagnosis": "C34.9",
                "carrier": "insurer-a",
                "hospitalCode": HOSPITALS[(i + n) % len(HOSPITALS)],
            }
            await gql.data(SETTLE, {"i": claim}, **MI)
    await gql.data(REVERSE, {"n": REVERSED, "r": "重复结算"}, **MI)
    await record(gql, number_of(RECOGNISED), "MINIMUM_LIVING", f"{YEAR}-01-01")


async def record(gql: GraphQLClient, number: str, category: str, since: str) -> None:
    by = recorder(category)
    given = {"idNumber": number, "category": category, "validFrom": since}
    await gql.data(
        IDENTITY,
        {"i": {**given, "reference": f"{category}-{number[-4:]}", "decidedOn": since}},
        department=by,
        org=f"{by}-5104",
    )


@dataclass
class Sums:
    """One person's or one cell's figures, as the reference computes them."""

    claims: int = 0
    money: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def add(self, other: Sums) -> None:
        self.claims += other.claims
        for k, v in other.money.items():
            self.money[k] += v

    def active(self) -> bool:
        return self.claims != 0 or any(v != 0 for v in self.money.values())


@dataclass
class Reference:
    """Figures computed in Python from the stored events, alerts and enrollments."""

    cells: dict[tuple[str, str], dict[uuid.UUID, Sums]]
    alerts: dict[str, int]
    subsidies: dict[str, tuple[int, Decimal, Decimal, Decimal]]

    def persons(self, dim: str, value: str) -> int:
        return sum(1 for s in self.cells.get((dim, value), {}).values() if s.active())

    def total(self, dim: str, value: str) -> Sums:
        out = Sums()
        for s in self.cells.get((dim, value), {}).values():
            out.add(s)
        return out


async def reference(db: Database, prefix: str = "") -> Reference:
    """Every settlement event of the persons under ``prefix``, summed per cell in Python."""
    async with db.transaction() as session:
        events = (
            await session.execute(
                text(
                    """SELECT s.id, s.beneficiary_id, s.kind, s.category, s.out_of_pocket,
                              c.type, c.hospital_level, c.discharge_date, c.total_cost,
                              c.policy_scope_cost, b.region_code
                       FROM settlements s JOIN claims c ON c.id = s.claim_id
                       JOIN beneficiaries b ON b.id = s.beneficiary_id
                       WHERE s.year = :y AND b.region_code LIKE :p"""
                ),
                {"y": YEAR, "p": f"{prefix}%"},
            )
        ).all()
        lines = defaultdict(dict)
        for sid, payer, amount in (
            await session.execute(text("SELECT settlement_id, payer, amount FROM settlement_lines"))
        ).all():
            lines[sid][payer] = amount
        alerts = (
            await session.execute(
                text(
                    """SELECT a.status FROM high_cost_alerts a
                       JOIN beneficiaries b ON b.id = a.beneficiary_id
                       WHERE a.year = :y AND b.region_code LIKE :p"""
                ),
                {"y": YEAR, "p": f"{prefix}%"},
            )
        ).all()
        enrollments = (
            await session.execute(
                text(
                    """SELECT e.subsidy_category, e.subsidy_assistance_fund, e.subsidy_finance,
                              e.subsidy_individual
                       FROM enrollments e JOIN beneficiaries b ON b.id = e.beneficiary_id
                       WHERE e.year = :y AND b.region_code LIKE :p
                         AND e.subsidy_category IS NOT NULL"""
                ),
                {"y": YEAR, "p": f"{prefix}%"},
            )
        ).all()
    cells: dict[tuple[str, str], dict[uuid.UUID, Sums]] = defaultdict(lambda: defaultdict(Sums))
    level = cube_level(prefix)
    for e in events:
        sign = {"ORIGINAL": 1, "REVERSAL": -1}.get(e.kind, 0)
        paid = {p.value: lines[e.id].get(p.value, Decimal(0)) for p in PAYERS}
        whole = Sums(sign)
        whole.money.update(
            total_cost=sign * e.total_cost,
            out_of_scope=sign * (e.total_cost - e.policy_scope_cost),
            out_of_pocket=e.out_of_pocket,
            **paid,
        )
        for key in (
            ("year", "-"),
            ("month", f"{e.discharge_date.month:02d}"),
            ("region", e.region_code[:level]),
            ("category", e.category or "NONE"),
            ("visit_type", e.type),
            ("hospital_level", e.hospital_level or "NONE"),
        ):
            cells[key][e.beneficiary_id].add(whole)
        for payer, amount in paid.items():
            if amount:
                one = Sums()
                one.money[payer] = amount
                cells[("payer", payer)][e.beneficiary_id].add(one)
        assisted = paid["assistance"] + paid["secondaryAssistance"]
        if paid["assistance"] or paid["secondaryAssistance"]:
            one = Sums()
            one.money["assisted"] = assisted
            cells[("assisted", "-")][e.beneficiary_id].add(one)
    states: dict[str, int] = defaultdict(int)
    for (status,) in alerts:
        states[status] += 1
        states["ALL"] += 1
    subsidies: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0), Decimal(0)])
    for category, fund, finance, individual in enrollments:
        for key in ("ALL", category):
            s = subsidies[key]
            s[0] += 1
            s[1] += fund
            s[2] += finance
            s[3] += individual
    return Reference(
        cells, dict(states), {k: (v[0], v[1], v[2], v[3]) for k, v in subsidies.items()}
    )


def cube_level(prefix: str) -> int:
    return min(6, (len(prefix) // 2 + 1) * 2)


def share(part: Decimal, whole: Decimal) -> Decimal | None:
    if whole == 0:
        return None
    return (part / whole).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def assert_cell(cell: dict[str, Any], ref: Reference, dim: str, value: str) -> None:
    """A dashboard cell as the API answers it equals the reference's (k = 1: nothing hidden)."""
    sums = ref.total(dim, value)
    m = sums.money
    assert cell["key"] == value
    assert cell["label"] == label(dim, value)
    assert cell["suppressed"] is False
    assert cell["persons"] == ref.persons(dim, value), (dim, value)
    assert cell["claims"] == sums.claims, (dim, value)
    for name, key in (
        ("totalCost", "total_cost"),
        ("outOfScopeCost", "out_of_scope"),
        ("outOfPocket", "out_of_pocket"),
        *((p.value, p.value) for p in PAYERS),
    ):
        assert Decimal(cell[name]) == m[key], (dim, value, name)
    expected_share = share(m["out_of_pocket"], m["total_cost"])
    assert (None if cell["outOfPocketShare"] is None else Decimal(cell["outOfPocketShare"])) == (
        expected_share
    )
    assert Decimal(cell["outOfScopeShare"]) == share(m["out_of_scope"], m["total_cost"])
    average = (m["out_of_pocket"] / ref.persons(dim, value)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )
    assert Decimal(cell["averageOutOfPocket"]) == average


async def dashboard(gql: GraphQLClient, prefix: str | None = None, **token: Any) -> dict[str, Any]:
    data = await gql.data(QUERY, {"y": YEAR, "p": prefix}, **(token or {"department": "dashboard"}))
    result: dict[str, Any] = data["dashboard"]
    return result


async def cube_rows(db: Database) -> set[tuple[Any, ...]]:
    """The cube's rows that hold anything (a rebuild has no all-zero rows)."""
    async with db.transaction() as session:
        rows = (
            await session.execute(
                text(
                    f"SELECT year, region_code, dim, value, persons, {', '.join(cube.SUMS)} "
                    f"FROM dashboard_cube WHERE persons <> 0 OR {cube.active_sql('dashboard_cube')}"
                )
            )
        ).all()
    return {tuple(r) for r in rows}


async def test_the_cube_kept_with_each_event_equals_a_rebuild_from_the_events(
    gql: GraphQLClient, db: Database
) -> None:
    await seed(gql)
    kept = await cube_rows(db)
    assert any(r[2] == "band" for r in kept)
    assert any(r[2] == "payer" for r in kept)
    async with db.transaction() as session:
        await cube.rebuild(session)
    assert await cube_rows(db) == kept


async def test_every_figure_equals_a_computation_from_the_events(
    gql: GraphQLClient, db: Database
) -> None:
    await seed(gql)
    ref = await reference(db)
    found = await dashboard(gql)
    assert (found["k"], found["year"]) == (1, YEAR)
    assert_cell(found["total"], ref, "year", "-")
    for name, dim in (
        ("byMonth", "month"),
        ("byRegion", "region"),
        ("byCategory", "category"),
        ("byVisitType", "visit_type"),
        ("byHospitalLevel", "hospital_level"),
    ):
        expected = sorted(v for (d, v) in ref.cells if d == dim and ref.persons(d, v))
        assert [c["key"] for c in found[name]] == expected, name
        for cell in found[name]:
            assert_cell(cell, ref, dim, cell["key"])
    # The reversed claim's person still counts (another claim); its claim does not.
    assert found["total"]["claims"] == sum(len(c) for _, _, c in PEOPLE) - 1
    assert {c["key"] for c in found["byCategory"]} == {"MINIMUM_LIVING", "EXTREME_POVERTY", "NONE"}
    assert {c["key"] for c in found["byRegion"]} == {"51"}
    whole = ref.total("year", "-").money["total_cost"]
    for payer in found["byPayer"]:
        paid = ref.total("payer", payer["payer"]).money[payer["payer"]]
        assert payer["persons"] == ref.persons("payer", payer["payer"])
        assert Decimal(payer["amount"]) == paid
        assert Decimal(payer["share"]) == share(paid, whole)
    assisted = ref.total("assisted", "-").money["assisted"]
    assert found["assisted"]["persons"] == ref.persons("assisted", "-") > 0
    assert Decimal(found["assisted"]["amount"]) == assisted
    # Bands of the persons' yearly out-of-pocket.
    yearly = [s.money["out_of_pocket"] for s in ref.cells[("year", "-")].values() if s.active()]
    for band in found["outOfPocketBands"]:
        low, high = Decimal(band["lower"]), band["upper"] and Decimal(band["upper"])
        members = [v for v in yearly if (v >= low or low == 0) and (high is None or v < high)]
        assert band["persons"] == len(members), band
        assert Decimal(band["outOfPocket"]) == sum(members, Decimal(0))
    assert sum(b["persons"] for b in found["outOfPocketBands"]) == len(yearly) == len(PEOPLE)


async def test_a_region_prefix_narrows_and_breaks_down_one_level_below(
    gql: GraphQLClient, db: Database
) -> None:
    await seed(gql)
    ref = await reference(db, "5104")
    found = await dashboard(gql, "5104")
    assert [c["key"] for c in found["byRegion"]] == ["510402", "510403", "510411"]
    for cell in found["byRegion"]:
        assert_cell(cell, ref, "region", cell["key"])
    narrow = await dashboard(gql, None, department="finance", regions=["510403"])
    ref = await reference(db, "510403")
    assert_cell(narrow["total"], ref, "year", "-")
    assert narrow["total"]["persons"] == 6


async def test_alerts_and_subsidies_are_counted_by_state_and_fund(
    gql: GraphQLClient, db: Database
) -> None:
    await seed(gql)
    async with db.transaction() as session:
        ids = [
            r[0]
            for r in (
                await session.execute(text("SELECT id FROM beneficiaries ORDER BY id_number"))
            ).all()
        ]
        for n, status in enumerate(("OPEN", "RECOGNISED", "RECOGNISED", "REJECTED")):
            await session.execute(
                text(
                    "INSERT INTO high_cost_alerts (beneficiary_id, year, out_of_pocket, "
                    "threshold, status) VALUES (:b, :y, 30000, 20000, :s) "
                    "ON CONFLICT (beneficiary_id, year) DO UPDATE SET status = :s"
                ),
                {"b": ids[n], "y": YEAR, "s": status},
            )
    ref = await reference(db)
    found = await dashboard(gql)
    assert {a["key"]: a["persons"] for a in found["alerts"]} == ref.alerts
    assert found["alerts"][0]["key"] == "ALL"
    assert ref.alerts["RECOGNISED"] == 2
    assert ref.subsidies, "the seeded categories are subsidised"
    for s in found["subsidies"]:
        n, fund, finance, individual = ref.subsidies[s["category"]]
        assert s["persons"] == n
        assert Decimal(s["assistanceFund"]) == fund
        assert Decimal(s["finance"]) == finance
        assert Decimal(s["individual"]) == individual
    assert {s["category"] for s in found["subsidies"]} == set(ref.subsidies)


@pytest.fixture
async def default_k(
    settings: Settings, db: Database, policies: PolicySet
) -> AsyncIterator[httpx.AsyncClient]:
    k = Settings.model_fields["statistics_k"].default
    async with in_process(settings.model_copy(update={"statistics_k": k}), db, policies) as c:
        yield c


async def test_cells_under_k_persons_are_null_and_suppressed(
    gql: GraphQLClient, default_k: httpx.AsyncClient
) -> None:
    await seed(gql)
    response = await default_k.post(
        "/graphql", json={"query": QUERY, "variables": {"y": YEAR}}, headers=bearer()
    )
    found = response.json()["data"]["dashboard"]
    assert found["k"] == 5
    by_category = {c["key"]: c for c in found["byCategory"]}
    rare = by_category["EXTREME_POVERTY"]  # two persons
    assert rare["suppressed"] is True
    assert all(rare[f] is None for f in ("persons", "claims", "totalCost", "outOfPocketShare"))
    assert by_category["MINIMUM_LIVING"]["suppressed"] is False
    # The next smallest category is withheld too: 特困人员 is not the whole minus the others.
    assert by_category["NONE"]["suppressed"] is True
    for breakdown in ("byMonth", "byRegion", "byCategory", "byVisitType", "byHospitalLevel"):
        withheld = [c for c in found[breakdown] if c["suppressed"]]
        assert len(withheld) != 1, breakdown
    withheld_bands = [b for b in found["outOfPocketBands"] if b["suppressed"]]
    assert len(withheld_bands) != 1
    assert found["total"]["persons"] == len(PEOPLE)
    # A region prefix of two persons shows nothing of them either.
    response = await default_k.post(
        "/graphql", json={"query": QUERY, "variables": {"y": YEAR, "p": "510411"}}, headers=bearer()
    )
    narrow = response.json()["data"]["dashboard"]
    assert (narrow["total"]["suppressed"], narrow["total"]["persons"]) == (True, None)
    # Nor which months, levels, categories or bands they had: no breakdown at all.
    for breakdown in ("byMonth", "byRegion", "byCategory", "byVisitType", "byHospitalLevel"):
        assert narrow[breakdown] == [], breakdown
    assert all(b["suppressed"] and b["persons"] is None for b in narrow["outOfPocketBands"])
    assert [(c["persons"], c["amount"]) for c in narrow["byPayer"]] == [(None, None)] * 5


async def test_a_department_without_statistics_is_refused(gql: GraphQLClient) -> None:
    error = await gql.error(
        QUERY, {"y": YEAR}, department="insurer", org="insurer-a", purpose="claim_handling"
    )
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "dashboard" in error["message"]


def test_only_departments_whose_rows_are_regions_read_the_rollup() -> None:
    """The rollup is kept by region code only: a department whose rows are narrower (an
    insurer's carried claims, a hospital's own) must not be granted it."""
    from gateway.app import load_access_for_schema

    _, access = load_access_for_schema()
    readers = {
        name for name, policy in access.departments.items() if policy.can_use("Query", "dashboard")
    }
    assert {"dashboard", "finance", "health", "medical_insurance"} <= readers
    assert {"insurer", "hospital"}.isdisjoint(readers)
    for name in readers:
        assert access.departments[name].rows == frozenset({"region"}), name


async def adjust(db: Database, numbers: list[str], *, fail: bool) -> None:
    """Five yuan more out-of-pocket on each claim, in the rollup only, in one transaction of
    several persons; ``fail``: then roll back."""
    async with db.transaction() as session:
        for number in numbers:
            claim = await session.scalar(
                select(models.Claim).where(models.Claim.claim_number == number)
            )
            assert claim is not None
            cube.record(session, claim, "ADJUSTMENT", {}, Decimal("5.00"), "MINIMUM_LIVING")
        if fail:
            raise RuntimeError("rolled back")


async def year_out_of_pocket(db: Database) -> Decimal:
    async with db.transaction() as session:
        total = await session.scalar(
            text("SELECT sum(out_of_pocket) FROM dashboard_cube WHERE dim = 'year'")
        )
    return Decimal(total)


async def test_the_events_of_a_rolled_back_transaction_leave_no_trace(
    gql: GraphQLClient, db: Database
) -> None:
    await seed(gql)
    kept = await cube_rows(db)
    with pytest.raises(RuntimeError, match="rolled back"):
        await adjust(db, ["DASH-0-0"], fail=True)
    async with db.transaction() as session:
        assert cube.PENDING not in session.info
    assert await cube_rows(db) == kept
    # Committed, for three persons of three regions, it is written (the events do not have
    # it: a rebuild takes it back).
    before = await year_out_of_pocket(db)
    await adjust(db, ["DASH-0-0", "DASH-7-0", "DASH-13-0"], fail=False)
    assert await year_out_of_pocket(db) == before + 15
    async with db.transaction() as session:
        await cube.rebuild(session)
    assert await cube_rows(db) == kept
