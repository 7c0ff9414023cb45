""" "Today" is the calendar date in China, never the host's (SETTLEMENT.md §3).

The process runs with TZ=UTC, frozen at 2026-06-30T17:30:00Z: the host's local date is still
30 June while it is already 1 July, 01:30, in China. Whatever depends on today (the category
filter of ``beneficiaries``, the categories counted by ``statistics``, the default date of
``preferentialTreatment`` and the refusal of a ``validFrom`` in the future) must give China's
answer. The last test of the scenario replays the same queries with ``Settings.today`` swapped
for the host-local date, to show that these assertions tell the two apart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import time_machine
from pydantic import ValidationError

from gateway.config import Settings
from gateway.storage.database import Database
from tests.conftest import GraphQLClient
from tests.factories import category_document, id_number, recorder

# 2026-06-30 17:30 UTC = 2026-07-01 01:30 in China (UTC+8).
INSTANT = datetime(2026, 6, 30, 17, 30, tzinfo=UTC)
HOST_DAY = date(2026, 6, 30)
CHINA_DAY = date(2026, 7, 1)

ENDED = id_number("510402", date(1970, 1, 1), 1)  # MINIMUM_LIVING until 30 June 2026
RECOGNISED = id_number("510402", date(1971, 2, 2), 2)  # MINIMUM_LIVING from 1 July 2026

REGISTER = "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }"
IDENTITY = category_document("MINIMUM_LIVING")
HOLDING = """query($category: Category!) {
  beneficiaries(first: 10, regionPrefix: "5104", category: $category) {
    edges { node { id } } } }"""
STATISTICS = """{ statistics(year: 2026, regionPrefix: "5104") {
  persons byCategory { category persons } } }"""
PREFERENTIAL = """query($n: String!) { beneficiary(idNumber: $n) {
  today: preferentialTreatment eve: preferentialTreatment(on: "2026-06-30") } }"""


@pytest.fixture
def utc_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process in UTC, as in a container; MEDGW_TIMEZONE left at its default."""
    monkeypatch.delenv("MEDGW_TIMEZONE", raising=False)
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = previous
        time.tzset()


@pytest.fixture
def china_next_day(utc_host: None) -> Iterator[time_machine.Traveller]:
    """Frozen (ticking) at INSTANT; tokens and audit times are made while frozen too."""
    with time_machine.travel(INSTANT, tick=True) as traveller:
        yield traveller


def test_the_host_date_is_the_day_before_china(china_next_day: time_machine.Traveller) -> None:
    # The premise of every test below: the host's local date and China's differ.
    assert date.today() == HOST_DAY
    assert datetime.now().date() == HOST_DAY
    assert time.localtime().tm_mday == 30
    assert Settings().today() == CHINA_DAY


def test_an_unknown_time_zone_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match=r"unknown time zone 'Nowhere/Atlantis'"):
        Settings(MEDGW_TIMEZONE="Nowhere/Atlantis")
    monkeypatch.setenv("MEDGW_TIMEZONE", "Nowhere/Atlantis")
    with pytest.raises(ValidationError, match=r"unknown time zone 'Nowhere/Atlantis'"):
        Settings()


def test_medgw_timezone_utc_makes_today_follow_utc(
    china_next_day: time_machine.Traveller, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(MEDGW_TIMEZONE="UTC").today() == HOST_DAY
    monkeypatch.setenv("MEDGW_TIMEZONE", "UTC")
    assert Settings().today() == HOST_DAY
    monkeypatch.setenv("MEDGW_TIMEZONE", "Asia/Shanghai")
    assert Settings().today() == CHINA_DAY


def identity(number: str, category: str, valid_from: str, valid_to: str | None = None) -> Any:
    return {
        "i": {
            "idNumber": number,
            "category": category,
            "validFrom": valid_from,
            "validTo": valid_to,
            "reference": f"{category}-{valid_from}",
        }
    }


async def seed(gql: GraphQLClient) -> dict[str, str]:
    """Two persons of 510402: one whose MINIMUM_LIVING ended on 30 June 2026 (moving to
    MARGINAL_LOW_INCOME on 1 July), one recognised MINIMUM_LIVING on 1 July 2026."""
    ids: dict[str, str] = {}
    for number, name in ((ENDED, "甲"), (RECOGNISED, "乙")):
        registered = await gql.data(
            REGISTER, {"i": {"idNumber": number, "name": name, "regionCode": "510402"}}
        )
        ids[number] = registered["registerBeneficiary"]["id"]
    civil = {"department": recorder("MINIMUM_LIVING")}
    assert recorder("MARGINAL_LOW_INCOME") == civil["department"]
    await gql.data(IDENTITY, identity(ENDED, "MINIMUM_LIVING", "2024-01-01", "2026-06-30"), **civil)
    # 1 July is today in China, though not yet on the host: accepted.
    await gql.data(IDENTITY, identity(ENDED, "MARGINAL_LOW_INCOME", "2026-07-01"), **civil)
    await gql.data(IDENTITY, identity(RECOGNISED, "MINIMUM_LIVING", "2026-07-01"), **civil)
    return ids


async def answers(gql: GraphQLClient) -> dict[str, Any]:
    """Everything the scenario asks that depends on today."""

    async def holding(category: str) -> list[str]:
        data = await gql.data(HOLDING, {"category": category})
        return sorted(edge["node"]["id"] for edge in data["beneficiaries"]["edges"])

    statistics = (await gql.data(STATISTICS))["statistics"]
    preferential = (await gql.data(PREFERENTIAL, {"n": RECOGNISED}))["beneficiary"]
    return {
        "MINIMUM_LIVING": await holding("MINIMUM_LIVING"),
        "MARGINAL_LOW_INCOME": await holding("MARGINAL_LOW_INCOME"),
        "persons": statistics["persons"],
        "byCategory": statistics["byCategory"],
        "preferential": preferential,
    }


def china_answers(ids: dict[str, str]) -> dict[str, Any]:
    return {
        "MINIMUM_LIVING": [ids[RECOGNISED]],
        "MARGINAL_LOW_INCOME": [ids[ENDED]],
        "persons": 2,
        "byCategory": [
            {"category": "MARGINAL_LOW_INCOME", "persons": 1},
            {"category": "MINIMUM_LIVING", "persons": 1},
        ],
        "preferential": {"today": True, "eve": False},
    }


async def test_category_filter_and_statistics_use_china_s_today_on_a_utc_host(
    china_next_day: time_machine.Traveller, gql: GraphQLClient, db: Database
) -> None:
    ids = await seed(gql)
    got = await answers(gql)
    assert got == china_answers(ids)
    # MINIMUM_LIVING, counted on min(31 December 2026, today in China) = 1 July: only the
    # person recognised that day.
    assert {"category": "MINIMUM_LIVING", "persons": 1} in got["byCategory"]


async def test_a_valid_from_after_today_in_china_is_refused(
    china_next_day: time_machine.Traveller, gql: GraphQLClient, db: Database
) -> None:
    await gql.data(REGISTER, {"i": {"idNumber": RECOGNISED, "name": "乙", "regionCode": "510402"}})
    error = await gql.error(
        IDENTITY,
        identity(RECOGNISED, "MINIMUM_LIVING", "2026-07-02"),
        department=recorder("MINIMUM_LIVING"),
    )
    assert error["extensions"]["code"] == "BAD_INPUT"
    assert "2026-07-01" in error["message"]


async def test_the_host_local_date_would_give_other_answers(
    china_next_day: time_machine.Traveller,
    gql: GraphQLClient,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same queries with ``today`` taken from the host (the bug §3 forbids) answer as of
    30 June, so the scenario's assertions cannot pass by accident."""
    ids = await seed(gql)

    def host_today(self: Settings) -> date:
        return date.today()

    monkeypatch.setattr(Settings, "today", host_today)
    got = await answers(gql)
    assert got == {
        "MINIMUM_LIVING": [ids[ENDED]],
        "MARGINAL_LOW_INCOME": [],
        "persons": 2,
        "byCategory": [{"category": "MINIMUM_LIVING", "persons": 1}],
        "preferential": {"today": False, "eve": False},
    }
    assert got != china_answers(ids)
