"""Personal data in errors and logs, and existence across regions through write errors (issue 9,
faults 10 and 15; ACCESS.md: "Error messages never carry another person's personal data").

A refused write says what is wrong with the request, never what is stored about someone: not
another record's name, dates, reference, region, state or reversal. Where a refusal cannot help
telling that an ID number is held (ID numbers are unique nationwide), it says nothing more and is
audited as a read. Logs carry codes and places, not messages, values or tracebacks of user errors;
the access log drops query strings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from gateway.app import create_app
from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from tests.conftest import GraphQLClient, bearer, serving
from tests.gateway.test_access import (
    CLAIM,
    ENROLL,
    ID,
    IDENTITY,
    JIANGSU,
    NAME,
    REGISTER,
    SETTLE,
    category_input,
    claim_input,
    seed,
    token,
)

MI = {**token("medical_insurance"), "purpose": "disclosure test"}
NEIGHBOUR = "510402198002020015"  # a valid ID number of the same county


async def count(db: Database, model: Any) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def assert_absent(error: dict[str, Any], *values: str, given: str = "") -> None:
    """None of ``values`` appears in ``error`` (the ``given`` input it may echo set aside)."""
    shown = str(error).replace(given, "<given>") if given else str(error)
    assert [v for v in values if v in shown] == [], error


@pytest.fixture
async def seeded(gql: GraphQLClient) -> dict[Any, Any]:
    return await seed(gql)


async def test_a_conflicting_registration_does_not_quote_the_stored_name(
    gql: GraphQLClient, db: Database, seeded: dict[Any, Any]
) -> None:
    before = await count(db, models.Beneficiary)
    error = await gql.error(
        REGISTER, {"i": {"idNumber": ID, "name": "李四", "regionCode": "510402"}}, **MI
    )
    assert error["extensions"] == {"code": "CONFLICT", "field": "name", "value": "李四"}
    assert "registered with another name" in error["message"]
    assert_absent(error, NAME, "张")
    assert await count(db, models.Beneficiary) == before


async def test_an_overlapping_identity_does_not_quote_the_stored_record(
    gql: GraphQLClient, db: Database, seeded: dict[Any, Any]
) -> None:
    before = await count(db, models.Identity)
    overlapping = category_input(ID, "MINIMUM_LIVING", "2022-01-01")
    error = await gql.error(IDENTITY, overlapping, **token("civil_affairs"))
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("CONFLICT", "validFrom")
    assert "overlaps a stored MINIMUM_LIVING record of this person" in error["message"]
    assert_absent(error, "2021-06-01", "MINIMUM_LIVING-2021-06-01")
    assert await count(db, models.Identity) == before


async def test_ending_a_record_before_it_began_does_not_quote_its_start(
    gql: GraphQLClient, db: Database, seeded: dict[Any, Any]
) -> None:
    end = {"idNumber": ID, "category": "MINIMUM_LIVING", "validTo": "2020-01-01"}
    error = await gql.error(
        "mutation($i: EndCategoryInput!) { endIdentity(input: $i) { identity { validTo } } }",
        {"i": end},
        **token("civil_affairs"),
    )
    assert error["extensions"] == {"code": "BAD_INPUT", "field": "validTo", "value": "2020-01-01"}
    assert_absent(error, "2021-06-01", "MINIMUM_LIVING-2021-06-01")
    async with db.sessions() as session:
        ends = await session.scalars(select(models.Identity.valid_to))
        assert set(ends.all()) <= {None, date(2015, 12, 31)}  # nothing ended (seed's Jiangsu end)


async def test_registering_another_region_s_person_tells_nothing_more_and_is_audited(
    gql: GraphQLClient, db: Database, seeded: dict[Any, Any]
) -> None:
    beneficiaries = await count(db, models.Beneficiary)
    elsewhere = {**MI, "regions": ("3708",)}
    error = await gql.error(
        REGISTER, {"i": {"idNumber": ID, "name": "李四", "regionCode": "370811"}}, **elsewhere
    )
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("FORBIDDEN", "idNumber")
    assert_absent(error, NAME, "510402", "5104", "elsewhere", "攀枝花", given=ID)
    assert await count(db, models.Beneficiary) == beneficiaries
    async with db.engine.connect() as conn:
        [record] = (
            await conn.execute(
                text(
                    "SELECT action, operation, field_paths, beneficiary_ids FROM audit_log "
                    "WHERE operation = 'mutation registerBeneficiary'"
                )
            )
        ).all()
    action, _, paths, persons = record
    assert (action, paths) == ("READ", ["registerBeneficiary(idNumber)"])
    assert [str(p) for p in persons] == [seeded[("Beneficiary", "id")]]


async def test_a_claim_number_of_another_person_gets_one_answer_whoever_and_wherever(
    gql: GraphQLClient, db: Database, seeded: dict[Any, Any]
) -> None:
    await gql.data(
        REGISTER, {"i": {"idNumber": NEIGHBOUR, "name": "赵六", "regionCode": "510402"}}, **MI
    )
    enrollment = {"idNumber": NEIGHBOUR, "year": 2023, "contribution": "380.00"}
    await gql.data(ENROLL, {"i": {**enrollment, "enrolledOn": "2022-12-01"}}, **MI)
    await gql.data(
        'mutation { reverseSettlement(claimNumber: "C-J2017", reason: "重复报销 J2017") '
        "{ settlement { claimNumber } } }",
        **MI,
    )
    claims = await count(db, models.Claim)
    panzhihua_only = {**MI, "regions": ("5104",)}
    answers = []
    # Same county, another person; another region's person, settled; the same, reversed.
    for number in (CLAIM, "C-J2016", "C-J2017"):
        error = await gql.error(
            SETTLE, claim_input(number, "1000.00", "900.00", person=NEIGHBOUR), **panzhihua_only
        )
        assert_absent(error, "reversed", "重复报销", "320102", "王五", JIANGSU, ID, NAME)
        answers.append((error["extensions"], error["message"].replace(number, "<claimNumber>")))
    assert (
        answers
        == [
            (
                {"code": "CONFLICT", "field": "claimNumber"},
                "claimNumber = <claimNumber>: already used by another person's claim",
            )
        ]
        * 3
    )
    assert await count(db, models.Claim) == claims


# --- logs ------------------------------------------------------------------------------------


async def test_user_errors_are_logged_at_info_without_values_or_tracebacks(
    gql: GraphQLClient, seeded: dict[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    unknown = "510402199001010012"
    await gql.error(IDENTITY, category_input(unknown, "MINIMUM_LIVING", "2022-01-01"), **MI)
    await gql.error(f'{{ beneficiary(idNumber: "{ID}") {{ name }} }}', **token("finance"))
    await gql.error(REGISTER, {"i": {"idNumber": ID, "name": "李四", "regionCode": "510402"}}, **MI)
    await gql.error('{ statistics(year: 1800, regionPrefix: "5104") { persons } }', **MI)
    records = [r for r in caplog.records if r.name.startswith(("strawberry", "medgw"))]
    assert [r.name for r in records if r.name.startswith("strawberry")] == []
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []
    assert [r.getMessage() for r in records if r.exc_info] == []
    lines = [r.getMessage() for r in records]
    assert_absent({"log": lines}, unknown, ID, NAME, "李四")
    assert any("CONFLICT at registerBeneficiary (name)" in line for line in lines), lines
    assert any("BAD_INPUT at statistics (year)" in line for line in lines), lines


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def access_log() -> Iterator[Lines]:
    """What uvicorn's access logger writes, from now on (uvicorn configures the logger when it
    starts, and writes access lines only when the logger has a handler)."""
    logger = logging.getLogger("uvicorn.access")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_the_access_log_drops_the_query_string_of_a_get(
    settings: Settings, db: Database
) -> None:
    params = {"query": f'{{ beneficiary(idNumber: "{ID}") {{ id }} }}'}
    with serving(create_app(settings)) as base, access_log() as log:
        async with httpx.AsyncClient(base_url=base, headers=bearer(**MI)) as client:
            response = await client.get("/graphql", params=params)
    assert response.status_code == 200, response.text
    lines = [line for line in log.lines if "/graphql" in line]
    assert len(lines) == 1, log.lines
    assert '"GET /graphql?… HTTP/1.1" 200' in lines[0]
    assert ID not in lines[0]


async def test_database_errors_do_not_carry_the_values_bound_to_them(db: Database) -> None:
    """What an unexpected or transient error logs is SQLAlchemy's message: no bound values."""
    with pytest.raises(DBAPIError) as caught:
        async with db.sessions() as session:
            await session.execute(text("SELECT 1 / 0 WHERE :n <> ''"), {"n": ID})
    assert "division by zero" in str(caught.value)
    assert ID not in str(caught.value)
    assert ID not in repr(caught.value)
