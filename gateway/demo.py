"""Synthetic but realistic demo data for the four policy regions (``medgw demo``).

Persons get valid resident ID numbers (GB 11643 check character), Chinese names, identities and
monitoring flags in plausible proportions for their region's policy, and an enrollment for the
current year with its subsidy split computed by the region's policy.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from rich.progress import Progress
from sqlalchemy import func, insert, select

from gateway.auth import Principal
from gateway.config import Settings
from gateway.resident_id import check_character
from gateway.storage import audit, models
from gateway.storage.database import Database
from policies.benefits import PolicySet, load_policies
from policies.settlement.engine import CategoryRecord
from policies.settlement.subsidy import enrollment_subsidy
from policies.vocabulary import Category

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
DEMO = Principal("medgw demo", "medical_insurance", "demo", ("",), purpose="demo data")


@dataclass
class Person:
    row: dict[str, Any]
    identities: list[dict[str, Any]]
    flags: list[dict[str, Any]]
    enrollment: dict[str, Any] | None


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
    pid = uuid.UUID(int=rng.getrandbits(128), version=4)
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
    return Person(row, identities, flags, enrollment)


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
    """Insert ``persons`` synthetic persons; with ``if_empty`` only into an empty database."""
    db = Database.connect(url, settings)
    try:
        day = today or settings.today()
        return await _load(db, persons, seed, if_empty, day, show_progress)
    finally:
        await db.dispose()


async def _load(
    db: Database, persons: int, seed: int, if_empty: bool, today: date, show_progress: bool
) -> int:
    rng = random.Random(seed)
    policies = load_policies()
    async with db.sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(models.Beneficiary))
        taken = set((await session.scalars(select(models.Beneficiary.id_number))).all())
    if if_empty and stored:
        return 0
    regions = list(REGIONS)
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
                    await session.execute(insert(models.Enrollment), enrollments)
                await audit.append(
                    session,
                    DEMO,
                    action="WRITE",
                    operation="demo",
                    beneficiary_ids=[p.row["id"] for p in people],
                    detail={"persons": size, "seed": seed, "at": datetime.now(UTC).isoformat()},
                )
            done += size
            progress.update(task, advance=size)
    return persons
