"""Synthetic but realistic demo data for the four policy regions (``medgw demo``).

Persons get valid resident ID numbers (GB 11643 check character), Chinese names, identities and
monitoring flags in plausible proportions for their region's policy, and an enrollment for the
current year with its subsidy split computed by the region's policy.

Then the demo lives: about a quarter of the enrolled persons (more among those holding a
category) have hospital stays this year, settled through the gateway's own GraphQL API (the real
settlement path, audit included) with the region's critical-illness insurer as carrier; a few
very costly stays open high-cost alerts (主动发现), a few claims are reversed, and a few persons are
recognised 低保 after their stays, so that their claims are re-settled (ADJUSTMENT).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from rich.progress import Progress
from sqlalchemy import func, insert, select

from gateway.auth import Principal, issue_token
from gateway.config import Settings
from gateway.resident_id import check_character
from gateway.storage import audit, models
from gateway.storage.database import Database
from policies.benefits import PolicySet, load_policies
from policies.settlement.engine import CategoryRecord
from policies.settlement.subsidy import enrollment_subsidy
from policies.vocabulary import Category
from resolvers import funds

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
    "彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红建国志文斌桂芝国华德福春梅海燕"
)

# Region codes by policy, with the share of persons in each and the yearly share holding each
# category; proportions are illustrative, of the order published in regional statistics.
REGIONS: dict[str, list[str]] = {
    "510400": ["510402", "510403", "510411", "510421", "510422"],
    "370800": ["370811", "370812", "370826", "370829", "370881", "370883"],
    "320000": ["320102", "320106", "320205", "320506", "320981", "321302"],
    "430000": ["430102", "430104", "430521", "431121", "433101"],
}
CATEGORY_SHARES: dict[str, list[tuple[Category, float]]] = {
    "510400": [
        (Category.EXTREME_POVERTY, 0.010),
        (Category.ORPHAN, 0.003),
        (Category.MINIMUM_LIVING, 0.050),
        (Category.MARGINAL_LOW_INCOME, 0.030),
        (Category.ILLNESS_IMPOVERISHED, 0.010),
        (Category.MONITORED, 0.030),
    ],
    "370800": [
        (Category.EXTREME_POVERTY, 0.010),
        (Category.MINIMUM_LIVING, 0.050),
        (Category.MONITORED, 0.020),
    ],
    "320000": [
        (Category.MINIMUM_LIVING, 0.040),
        (Category.EXTREME_POVERTY, 0.010),
        (Category.LOW_INCOME, 0.030),
        (Category.PRIORITY_ENTITLED, 0.005),
        (Category.DISTRESSED_WORKER, 0.005),
        (Category.ORPHAN, 0.002),
    ],
    "430000": [
        (Category.EXTREME_POVERTY, 0.010),
        (Category.MINIMUM_LIVING, 0.050),
        (Category.REGISTERED_POOR, 0.060),
        (Category.POVERTY_EXIT_SECURED, 0.020),
        (Category.LOW_INCOME_SEVERELY_DISABLED, 0.010),
    ],
}
RECOGNISED_BY: dict[Category, str] = {
    Category.PRIORITY_ENTITLED: "veterans_affairs",
    Category.DISTRESSED_WORKER: "trade_union",
    Category.LOW_INCOME_SEVERELY_DISABLED: "disabled_persons_federation",
}
CONTRIBUTION = Decimal("400.00")
CARRIERS = {  # the critical-illness insurer of each policy region (illustrative codes)
    "510400": "picc-5104",
    "370800": "cpic-3708",
    "320000": "pingan-32",
    "430000": "chinalife-43",
}
DIAGNOSES = ("J18.9", "I63.9", "I21.9", "C34.9", "E11.9", "N18.5", "K80.2", "S72.0")
LEVELS = ("PRIMARY", "SECONDARY", "SECONDARY", "TERTIARY")
SETTLE = "mutation($i: SettleClaimInput!) { settleClaim(input: $i) { claimNumber } }"
REVERSE = """mutation($n: String!, $r: String!) {
  reverseSettlement(claimNumber: $n, reason: $r) { settlement { outOfPocket } } }"""
RECOGNISE = (
    "mutation($i: RecordCategoryInput!) { recordIdentity(input: $i) { identity { category } } }"
)
DEMO = Principal("medgw demo", "medical_insurance", "demo", ("",), purpose="demo data")


@dataclass
class Person:
    row: dict[str, Any]
    identities: list[dict[str, Any]]
    flags: list[dict[str, Any]]
    enrollment: dict[str, Any] | None
    policy_region: str = ""


def stays(rng: random.Random, person: Person, today: date) -> list[dict[str, Any]]:
    """This year's hospital stays of ``person`` as ``SettleClaimInput`` values (none unless
    enrolled; discharged by yesterday): a quarter of persons, three in five of those holding a
    category; costs lognormal around 15,000 yuan; one stay in forty costs 180,000–320,000 (one in
    eight in 攀枝花, whose policy has a discovery rule, so that the demo has open alerts)."""
    first = max(date(today.year, 1, 1), person.row["birth_date"])
    last = today - timedelta(days=1)
    if person.enrollment is None or last < first:
        return []
    holds = bool(person.identities or person.flags)
    if rng.random() >= (0.6 if holds else 0.25):
        return []
    number, region = person.row["id_number"], person.row["region_code"]
    claims = []
    for n in range(rng.choice((1, 1, 1, 2, 2, 3))):
        admission = first + timedelta(days=rng.randrange(0, (last - first).days + 1))
        discharge = min(last, admission + timedelta(days=rng.randrange(1, 15)))
        if rng.random() < (0.125 if person.policy_region == "510400" else 0.025):
            total = Decimal(rng.randrange(180_000, 320_000))
        else:
            total = Decimal(min(400_000, max(800, round(rng.lognormvariate(9.6, 0.8)))))
        scope = (total * Decimal(rng.uniform(0.7, 0.95))).quantize(Decimal("0.01"))
        claims.append(
            {
                "claimNumber": f"DEMO-{person.row['id'].hex[:12]}-{n}",
                "idNumber": number,
                "type": "INPATIENT",
                "hospitalLevel": rng.choice(LEVELS),
                "admissionDate": admission.isoformat(),
                "dischargeDate": discharge.isoformat(),
                "totalCost": f"{total:.2f}",
                "policyScopeCost": f"{scope:.2f}",
                "diagnosis": rng.choice(DIAGNOSES),
                "carrier": CARRIERS[person.policy_region],
                "hospitalCode": f"H-{region}-{rng.randrange(1, 6):02d}",
            }
        )
    return claims


def resident_number(rng: random.Random, region: str, born: date, male: bool) -> str:
    sequence = rng.randrange(0, 500) * 2 + (1 if male else 0)
    first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)


def make_person(
    rng: random.Random, policies: PolicySet, policy_region: str, today: date, taken: set[str]
) -> Person:
    region = rng.choice(REGIONS[policy_region])
    while True:
        born = date(1935, 1, 1) + timedelta(days=rng.randrange(0, (today - date(1935, 1, 1)).days))
        male = rng.random() < 0.5
        number = resident_number(rng, region, born, male)
        if number not in taken:
            taken.add(number)
            break
    given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
    pid = uuid.uuid4()  # not from the seed: a second run adds new persons, never clashes
    row = {
        "id": pid,
        "id_number": number,
        "name": rng.choice(SURNAMES) + given,
        "gender": "MALE" if male else "FEMALE",
        "birth_date": born,
        "region_code": region,
        "created_by": "medical_insurance",
    }
    identities: list[dict[str, Any]] = []
    flags: list[dict[str, Any]] = []
    records: list[CategoryRecord] = []
    for category, share in CATEGORY_SHARES[policy_region]:
        if rng.random() >= share:
            continue
        valid_from = today - timedelta(days=rng.randrange(30, 6 * 365))
        valid_from = max(valid_from, born)
        valid_to = None
        if rng.random() < 0.15:
            valid_to = valid_from + timedelta(days=rng.randrange(30, 900))
            if valid_to >= today:
                valid_to = None
        department = (
            "rural_revitalisation"
            if category.is_monitoring_flag
            else RECOGNISED_BY.get(category, "civil_affairs")
        )
        record = {
            "beneficiary_id": pid,
            "category": category.value,
            "valid_from": valid_from,
            "valid_to": valid_to,
            "reference": f"{region}-{valid_from.year}-{rng.randrange(1, 9999):04d}号",
            "department": department,
            "org": f"{department}-{region}",
        }
        (flags if category.is_monitoring_flag else identities).append(record)
        records.append(CategoryRecord(category, valid_from, valid_to))
    enrolled_on = date(today.year - 1, 12, rng.randrange(1, 29))
    enrollment: dict[str, Any] | None = None
    if rng.random() < 0.97:  # coverage is about 97 %
        split = enrollment_subsidy(
            policies, region, today.year, enrolled_on, tuple(records), CONTRIBUTION
        )
        enrollment = {
            "beneficiary_id": pid,
            "year": today.year,
            "contribution": CONTRIBUTION,
            "inclusive_commercial": rng.random() < 0.3,
            "enrolled_on": enrolled_on,
            "subsidy_policy": split.policy_id,
            "subsidy_category": split.category.value if split.category else None,
            "subsidy_assistance_fund": split.assistance_fund,
            "subsidy_finance": split.finance,
            "subsidy_individual": split.individual,
            "department": "medical_insurance",
            "org": "demo",
        }
    return Person(row, identities, flags, enrollment, policy_region)


async def load(
    url: str,
    settings: Settings,
    *,
    persons: int,
    seed: int = 7,
    if_empty: bool = False,
    today: date | None = None,
    show_progress: bool = True,
) -> int:
    """Insert ``persons`` synthetic persons and let them live (see the module); with
    ``if_empty`` only into an empty database. Returns the persons added.

    Raises ``RuntimeError`` naming the request when the gateway refuses a demo write."""
    db = Database.connect(url, settings)
    try:
        day = today or settings.today()
        rng = random.Random(seed)
        policies = load_policies()
        people = await _load(db, rng, policies, persons, seed, if_empty, day, show_progress)
        if people:
            await _live(db, settings, policies, rng, people, day, show_progress)
        return len(people)
    finally:
        await db.dispose()


async def _live(
    db: Database,
    settings: Settings,
    policies: PolicySet,
    rng: random.Random,
    people: list[Person],
    today: date,
    show_progress: bool,
) -> None:
    """Settle this year's stays, reverse a few claims and recognise a few persons late, all
    through the GraphQL API of an in-process gateway (nothing of it is written directly)."""
    from gateway.app import create_app

    claims = [claim for person in people for claim in stays(rng, person, today)]
    unrecognised = {c["idNumber"] for c in claims} - {
        p.row["id_number"] for p in people if p.identities or p.flags
    }
    born = {p.row["id_number"]: p.row["birth_date"] for p in people}
    late = sorted(rng.sample(sorted(unrecognised), k=len(unrecognised) // 25))
    reversed_ = rng.sample([c["claimNumber"] for c in claims], k=len(claims) // 50)
    app = create_app(settings, db=db, policies=policies)

    def token(department: str) -> dict[str, str]:
        signed = issue_token(
            settings.jwt_secret,
            subject="medgw demo",
            department=department,
            org=f"{department}-demo",
            regions=("51", "37", "32", "43"),
            purpose="demo data",
        )
        return {"Authorization": f"Bearer {signed}"}

    mi, ca = token("medical_insurance"), token("civil_affairs")
    requests_log = logging.getLogger("medgw.requests")  # a line per demo write: the bars say it
    level = requests_log.level
    requests_log.setLevel(logging.WARNING)
    try:
        await _post_all(app, mi, ca, claims, reversed_, late, born, today, show_progress)
    finally:
        requests_log.setLevel(level)


async def _post_all(
    app: Any,
    mi: dict[str, str],
    ca: dict[str, str],
    claims: list[dict[str, Any]],
    reversed_: list[str],
    late: list[str],
    born: dict[str, date],
    today: date,
    show_progress: bool,
) -> None:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as c,
    ):

        async def post(query: str, variables: dict[str, Any], headers: dict[str, str]) -> None:
            body = (
                await c.post(
                    "/graphql", json={"query": query, "variables": variables}, headers=headers
                )
            ).json()
            if body.get("errors"):
                raise RuntimeError(f"demo write refused: {variables}: {body['errors'][0]}")

        with Progress(disable=not show_progress, transient=False) as progress:
            task = progress.add_task("demo claims settled", total=len(claims))
            for start in range(0, len(claims), 8):  # a few at a time: other persons' locks
                batch = claims[start : start + 8]
                await asyncio.gather(*(post(SETTLE, {"i": claim}, mi) for claim in batch))
                progress.update(task, advance=len(batch))
            task = progress.add_task(
                "reversals and late recognitions", total=len(reversed_) + len(late)
            )
            for number in reversed_:
                await post(REVERSE, {"n": number, "r": "医院撤销结算（演示）"}, mi)
                progress.update(task, advance=1)
            for number in late:
                recognition = {
                    "idNumber": number,
                    "category": "MINIMUM_LIVING",
                    "validFrom": max(date(today.year, 1, 1), born[number]).isoformat(),
                    "reference": f"低保-{today.year}-演示",
                }
                await post(RECOGNISE, {"i": recognition}, ca)
                progress.update(task, advance=1)


async def _load(
    db: Database,
    rng: random.Random,
    policies: PolicySet,
    persons: int,
    seed: int,
    if_empty: bool,
    today: date,
    show_progress: bool,
) -> list[Person]:
    async with db.sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(models.Beneficiary))
        taken = set((await session.scalars(select(models.Beneficiary.id_number))).all())
    if if_empty and stored:
        return []
    regions = list(REGIONS)
    added: list[Person] = []
    batch = 500
    with Progress(disable=not show_progress, transient=False) as progress:
        task = progress.add_task("demo persons", total=persons)
        done = 0
        while done < persons:
            size = min(batch, persons - done)
            people = [
                make_person(rng, policies, regions[(done + i) % len(regions)], today, taken)
                for i in range(size)
            ]
            async with db.transaction() as session:
                await session.execute(insert(models.Beneficiary), [p.row for p in people])
                identities = [r for p in people for r in p.identities]
                flags = [r for p in people for r in p.flags]
                enrollments = [p.enrollment for p in people if p.enrollment]
                if identities:
                    await session.execute(insert(models.Identity), identities)
                if flags:
                    await session.execute(insert(models.MonitoringFlag), flags)
                if enrollments:
                    enrolled = await session.scalars(
                        insert(models.Enrollment).returning(models.Enrollment.id), enrollments
                    )
                    await funds.post_enrollments(session, enrolled.all())
                await audit.append(
                    session,
                    DEMO,
                    action="WRITE",
                    operation="demo",
                    beneficiary_ids=[p.row["id"] for p in people],
                    detail={"persons": size, "seed": seed, "at": datetime.now(UTC).isoformat()},
                )
            done += size
            added += people
            progress.update(task, advance=size)
    return added
