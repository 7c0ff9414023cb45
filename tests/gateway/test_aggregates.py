"""k-suppressed aggregates (spec/ACCESS.md, "Aggregates"; issue 9, fault 6): a statistics cell
computed over 1 to k-1 persons is null with ``suppressed: true``, so that a tiny region prefix or
a rare category cannot narrow an aggregate down to one person's figures.

The session's app shows every cell (k = 1, conftest); these tests run an app with the default k.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from policies.benefits import PolicySet
from policies.vocabulary import PAYERS
from tests.conftest import bearer, in_process
from tests.factories import add_people

K = Settings.model_fields["statistics_k"].default
QUERY = """query($p: String) { statistics(year: 2023, regionPrefix: $p) {
  regionPrefix suppressed persons claims totalCost basicInsurance criticalIllness
  inclusiveCommercial assistance secondaryAssistance outOfPocket
  byCategory { category persons suppressed } } }"""
MONEY = ("totalCost", *PAYERS, "outOfPocket")


@pytest.fixture
async def client(
    settings: Settings, db: Database, policies: PolicySet
) -> AsyncIterator[httpx.AsyncClient]:
    """An app with the default k (the product's, not the session's k = 1)."""
    default_k = settings.model_copy(update={"statistics_k": K})
    async with in_process(default_k, db, policies) as c:
        yield c


async def statistics(
    client: httpx.AsyncClient, prefix: str | None, department: str = "dashboard"
) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": QUERY, "variables": {"p": prefix}},
        headers=bearer(department=department),
    )
    body = response.json()
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["statistics"]
    return result


async def with_ledgers(db: Database, people: list[models.Beneficiary], base: int) -> None:
    """One settled visit a person: total ``base + i`` hundred yuan, a tenth of it assistance."""
    async with db.transaction() as session:
        for i, person in enumerate(people):
            total = Decimal(100 * (base + i))
            session.add(
                models.Ledger(
                    beneficiary_id=person.id,
                    year=2023,
                    state={},
                    visits=1,
                    total_cost=total,
                    basic_insurance=total / 2,
                    assistance=total / 10,
                    out_of_pocket=total - total / 2 - total / 10,
                    updated_at=datetime.now(UTC),
                )
            )


def test_k_defaults_to_five() -> None:
    assert K == 5


async def test_one_person_behind_a_region_prefix_is_withheld_entirely(
    client: httpx.AsyncClient, db: Database
) -> None:
    crowd = await add_people(db, K, region="510402")
    [alone] = await add_people(db, 1, region="510499", start=40)
    await with_ledgers(db, crowd, base=10)
    await with_ledgers(db, [alone], base=777)  # 77,700 yuan: a figure that must not leave

    single = await statistics(client, "510499")
    assert single == {
        "regionPrefix": "510499",
        "suppressed": True,
        "persons": None,
        "claims": None,
        **dict.fromkeys(MONEY),
        "byCategory": [
            {"category": "MINIMUM_LIVING", "persons": None, "suppressed": True},
            {"category": "MONITORED", "persons": None, "suppressed": True},
        ],
    }
    text = json.dumps(single)
    assert [v for v in ("77700", "7770", "31080") if v in text] == []

    # k persons behind the cell: shown, and exactly their sums.
    shown = await statistics(client, "510402")
    totals = [Decimal(100 * (10 + i)) for i in range(K)]
    assert shown["suppressed"] is False
    assert (shown["persons"], shown["claims"]) == (K, K)
    assert Decimal(shown["totalCost"]) == sum(totals)
    assert Decimal(shown["assistance"]) == sum(t / 10 for t in totals)
    assert Decimal(shown["basicInsurance"]) == sum(t / 2 for t in totals)
    assert Decimal(shown["criticalIllness"]) == 0
    assert shown["byCategory"] == [
        {"category": "MINIMUM_LIVING", "persons": K, "suppressed": False},
        {"category": "MONITORED", "persons": K, "suppressed": False},
    ]


async def test_a_rare_category_is_withheld_while_the_rest_is_shown(
    client: httpx.AsyncClient, db: Database
) -> None:
    people = await add_people(db, K + 1, region="510402")
    await with_ledgers(db, people, base=10)
    async with db.transaction() as session:
        session.add(
            models.Identity(
                beneficiary_id=people[0].id,
                category="ORPHAN",
                valid_from=datetime(2022, 1, 1).date(),
                department="civil_affairs",
                org="o",
                reference="R-orphan",
            )
        )
    figures = await statistics(client, "5104")
    assert (figures["suppressed"], figures["persons"], figures["claims"]) == (False, K + 1, K + 1)
    assert {"category": "ORPHAN", "persons": None, "suppressed": True} in figures["byCategory"]
    assert {"category": "MINIMUM_LIVING", "persons": K + 1, "suppressed": False} in figures[
        "byCategory"
    ]


async def test_sums_over_fewer_than_k_claimants_are_withheld_though_persons_are_many(
    client: httpx.AsyncClient, db: Database
) -> None:
    people = await add_people(db, K + 2, region="510402")
    await with_ledgers(db, people[:1], base=321)
    figures = await statistics(client, None, department="finance")
    assert (figures["suppressed"], figures["persons"]) == (True, K + 2)
    assert [figures[key] for key in ("claims", *MONEY)] == [None] * (1 + len(MONEY))
    assert "32100" not in json.dumps(figures)


async def test_no_one_behind_a_cell_is_shown_as_zero(
    client: httpx.AsyncClient, db: Database
) -> None:
    await add_people(db, 2, region="510402")
    figures = await statistics(client, "3708")
    assert figures == {
        "regionPrefix": "3708",
        "suppressed": False,
        "persons": 0,
        "claims": 0,
        **dict.fromkeys(MONEY, "0.00"),
        "byCategory": [],
    }
