"""Demo data: realistic persons of the four policy regions, valid ID numbers, plausible shares."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from gateway import demo, resident_id
from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from policies.benefits import PolicySet
from resolvers import reconciliation

TODAY = date(2026, 11, 24)


async def test_demo_persons_are_valid_and_spread_over_the_four_regions(
    db: Database, settings: Settings, database_url: str
) -> None:
    added = await demo.load(
        database_url, settings, persons=400, seed=3, today=TODAY, show_progress=False
    )
    assert added == 400
    async with db.sessions() as session:
        people = (await session.scalars(select(models.Beneficiary))).all()
        identities = (await session.scalars(select(models.Identity))).all()
        flags = (await session.scalars(select(models.MonitoringFlag))).all()
        enrollments = (await session.scalars(select(models.Enrollment))).all()
    assert len(people) == 400
    for person in people:
        parsed = resident_id.parse(person.id_number)
        assert (parsed.birth_date, parsed.gender, parsed.region_code) == (
            person.birth_date,
            person.gender,
            person.region_code,
        )
        assert 2 <= len(person.name) <= 3
    by_policy = Counter(p.region_code[:2] for p in people)
    assert by_policy == {"51": 100, "37": 100, "32": 100, "43": 100}
    # 低保 is a few percent; every category a region's policy knows turns up somewhere.
    minimum_living = {i.beneficiary_id for i in identities if i.category == "MINIMUM_LIVING"}
    assert 4 <= len(minimum_living) <= 40
    assert {f.category for f in flags} >= {"MONITORED", "REGISTERED_POOR"}
    assert all(
        i.department == "civil_affairs"
        or i.category in {"PRIORITY_ENTITLED", "DISTRESSED_WORKER", "LOW_INCOME_SEVERELY_DISABLED"}
        for i in identities
    )
    assert 360 <= len(enrollments) <= 400
    for e in enrollments:
        assert e.year == 2026
        assert (
            e.subsidy_assistance_fund + e.subsidy_finance + e.subsidy_individual == e.contribution
        )
    assert any(e.subsidy_assistance_fund > 0 for e in enrollments)


async def test_demo_only_fills_an_empty_database_when_asked(
    db: Database, settings: Settings, database_url: str
) -> None:
    first = await demo.load(database_url, settings, persons=5, if_empty=True, show_progress=False)
    again = await demo.load(database_url, settings, persons=5, if_empty=True, show_progress=False)
    assert (first, again) == (5, 0)
    more = await demo.load(database_url, settings, persons=5, seed=8, show_progress=False)
    assert more == 5


def test_the_same_seed_makes_the_same_people(policies: PolicySet) -> None:
    def people(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [
            demo.make_person(rng, policies, "510400", TODAY, set()).row["id_number"]
            for _ in range(20)
        ]

    assert people(1) == people(1)
    assert people(1) != people(2)


async def test_the_demo_lives_claims_settled_reversed_re_settled_and_alerted(
    db: Database, settings: Settings, database_url: str
) -> None:
    await demo.load(database_url, settings, persons=400, seed=5, today=TODAY, show_progress=False)
    async with db.sessions() as session:
        claims = (await session.scalars(select(models.Claim))).all()
        people = {p.id: p for p in (await session.scalars(select(models.Beneficiary))).all()}
        events = (await session.scalars(select(models.Settlement))).all()
        lines = (await session.scalars(select(models.SettlementLine))).all()
        alerts = (await session.scalars(select(models.HighCostAlert))).all()
        late = (
            await session.scalars(
                select(models.Identity).where(models.Identity.reference == "低保-2026-演示")
            )
        ).all()
        writes = await session.scalar(
            select(func.count())
            .select_from(models.AuditRecord)
            .where(models.AuditRecord.operation == "settleClaim")
        )
    assert 80 <= len(claims) <= 250
    assert writes == len(claims)  # settled through the API: each write audited
    for claim in claims:
        assert date(2026, 1, 1) <= claim.admission_date <= claim.discharge_date < TODAY
    carriers = {(people[c.beneficiary_id].region_code[:2], c.carrier) for c in claims}
    assert carriers == {
        ("51", "picc-5104"),
        ("37", "cpic-3708"),
        ("32", "pingan-32"),
        ("43", "chinalife-43"),
    }
    paid: defaultdict[int, Decimal] = defaultdict(Decimal)
    by_id = {e.id: e for e in events}
    for line in lines:
        paid[by_id[line.settlement_id].claim_id] += line.amount
    for event in events:
        paid[event.claim_id] += event.out_of_pocket
    reversed_ = [c for c in claims if c.reversed_at is not None]
    assert len(reversed_) == len(claims) // 50 >= 1
    for claim in claims:
        # Every claim's payers and out-of-pocket add up to its cost; a reversed one to nothing.
        expected = 0 if claim.reversed_at is not None else claim.total_cost
        assert paid[claim.id] == expected, claim.claim_number
    kinds = Counter(e.kind for e in events)
    assert kinds["ORIGINAL"] == len(claims)
    assert kinds["REVERSAL"] == len(reversed_)
    assert len(late) >= 1
    assert kinds["ADJUSTMENT"] >= 1  # the late 低保 recognitions re-settled claims
    # 攀枝花 and 济宁 discover (their policy files' discovery rules); an alert is OPEN above its
    # threshold, CLOSED at or under it (a reversal), RECOGNISED linked to the late 低保 record.
    assert "OPEN" in {a.status for a in alerts}
    assert {people[a.beneficiary_id].region_code[:4] for a in alerts} <= {"5104", "3708"}
    for alert in alerts:
        assert alert.status in ("OPEN", "CLOSED", "RECOGNISED"), alert.status
        if alert.status == "OPEN":
            assert alert.out_of_pocket > alert.threshold
        elif alert.status == "CLOSED":
            assert alert.out_of_pocket <= alert.threshold
        else:
            assert alert.identity_id is not None


async def test_a_second_demo_run_adds_new_persons(
    db: Database, settings: Settings, database_url: str
) -> None:
    for _ in range(2):  # the same seed twice: new persons, no clash with the first run's
        added = await demo.load(
            database_url, settings, persons=30, seed=3, today=TODAY, show_progress=False
        )
        assert added == 30
    async with db.sessions() as session:
        numbers = (await session.scalars(select(models.Beneficiary.id_number))).all()
    assert len(numbers) == len(set(numbers)) == 60


async def test_the_demo_posts_its_money_to_the_fund_ledgers_and_they_reconcile(
    db: Database, settings: Settings, database_url: str
) -> None:
    """Issue 13: a fresh `make run` has balances."""
    await demo.load(database_url, settings, persons=120, seed=6, today=TODAY, show_progress=False)
    async with db.sessions() as session:
        kinds = set(
            (
                await session.scalars(
                    select(models.FundAccount.kind).join(
                        models.FundEntry, models.FundEntry.account_id == models.FundAccount.id
                    )
                )
            ).all()
        )
        assert {"BASIC_FUND", "ASSISTANCE_FUND", "HOSPITAL", "CRITICAL_ILLNESS_INSURER"} <= kinds
        for year in (TODAY.year - 1, TODAY.year):
            assert await reconciliation.differences(session, ["3", "4", "5"], year=year) == []
