"""Data minimisation (spec/ACCESS.md): what a department may not read must not leave by any other
way — not through the explanation, not through a mask, not through a value derived from fields
it reads, not through an argument probed day by day.

Each test reads *everything* a department may read about the seeded person (every granted field,
through every path, in one request) and asserts that the values it must not learn appear nowhere
in the response text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from gateway.app import create_app
from gateway.config import Settings
from gateway.storage.database import Database
from policies.benefits import PolicySet
from tests.conftest import GraphQLClient
from tests.gateway.test_access import ACCESS, ARGUMENTS, CATALOG, ID, seed, token


def everything(
    type_name: str, may_use: Callable[[str, str], bool], path: tuple[str, ...] = ()
) -> list[str]:
    """The selections of every usable field of ``type_name``, object fields followed once per
    path (no type twice on a path), with the walk's arguments; fields with other required
    arguments are left out."""
    parts = []
    for name, target in CATALOG[type_name].items():
        if not may_use(type_name, name) or target in path:
            continue
        arguments = ARGUMENTS.get((type_name, name), "")
        if target is None:
            parts.append(f"{name}{arguments}")
        elif type_name != "Query" or arguments or name in {"beneficiaries", "claims"}:
            inner = everything(target, may_use, (*path, type_name))
            if inner:
                parts.append(f"{name}{arguments} {{ {' '.join(inner)} }}")
    return parts


@pytest.fixture(scope="module")
async def app(settings: Settings, db: Database, policies: PolicySet) -> AsyncIterator[Any]:
    """The gateway with a query-cost limit high enough for a walk of the whole schema (the limit
    itself is tested in test_limits.py)."""
    generous = settings.model_copy(update={"max_query_cost": 10_000_000})
    application = create_app(generous, db=db, policies=policies)
    async with application.router.lifespan_context(application):
        yield application


async def read_everything(gql: GraphQLClient, department: str) -> tuple[str, dict[str, Any]]:
    """Every root field in a request of its own."""
    policy = ACCESS.departments[department]
    queries = ["{ " + part + " }" for part in everything("Query", policy.can_use)]
    data: dict[str, Any] = {}
    for query in queries:
        body = await gql.post(query, **token(department))
        assert "errors" not in body, body
        data.update(body["data"])
    return "\n".join(queries), data


@pytest.fixture
async def seeded(gql: GraphQLClient) -> dict[Any, Any]:
    return await seed(gql)


async def test_an_insurer_learns_no_category_no_birth_date_and_no_assistance(
    gql: GraphQLClient, seeded: dict[Any, Any]
) -> None:
    query, data = await read_everything(gql, "insurer")
    text = json.dumps(data, ensure_ascii=False)
    # It did read the claim and its own lines (so the absence below means something).
    assert seeded[("Settlement", "criticalIllness")] in text
    assert '"birthYear": 1970' in text
    assert '"idNumber": "5104**********0013"' in text
    assert '"preferentialTreatment": true' in text
    assistance = seeded[("Settlement", "assistance")]
    out_of_pocket = seeded[("Settlement", "outOfPocket")]
    assert Decimal(assistance) > 0
    leaks = {
        "a category": ["MINIMUM_LIVING", "MONITORED", "低保"],
        "an identity's dates": ["2021-06-01", "2021-01-01"],
        "the birth date": ["1970-01-01", "19700101", "700101"],
        "the assistance lines": [assistance],
        "the out-of-pocket (total less the insurance lines gives assistance back)": [out_of_pocket],
    }
    found = {what: [v for v in values if v in text] for what, values in leaks.items()}
    assert {what: values for what, values in found.items() if values} == {}, query


async def test_an_insurer_may_not_probe_the_tilt_day_by_day_nor_read_reasons(
    gql: GraphQLClient, seeded: dict[Any, Any]
) -> None:
    for query in (
        f'{{ beneficiary(idNumber: "{ID}") {{ preferentialTreatment(on: "2021-05-31") }} }}',
        f'{{ beneficiary(idNumber: "{ID}") {{ birthDate }} }}',
        '{ claim(claimNumber: "C-0001") { settlements { reason } } }',
        '{ claim(claimNumber: "C-0001") { settlement { outOfPocket assistance } } }',
        '{ claim(claimNumber: "C-0001") { settlement { explanation { text } } } }',
    ):
        body = await gql.post(query, **token("insurer"))
        assert body["data"] is None, query
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", query


@pytest.mark.parametrize("department", ["civil_affairs", "trade_union", "veterans_affairs"])
async def test_a_recognising_body_learns_no_claim_detail_through_the_explanation(
    gql: GraphQLClient, seeded: dict[Any, Any], department: str
) -> None:
    query, data = await read_everything(gql, department)
    # The dashboard's breakdowns (hospital level…) are aggregates, one person's at the session's
    # k = 1: k-suppression is tested in tests/resolvers/test_cube.py.
    data.pop("dashboard")
    text = json.dumps(data, ensure_ascii=False)
    if department == "civil_affairs":
        # It reads the settlement lines (the absence below means something).
        assert seeded[("Settlement", "assistance")] in text
    # (The year's total cost it does read, in the yearly summary.)
    leaks = ["40000", "2023-03-01", "2023-03-11", "C34.9", "SECONDARY", "H-510402"]
    assert [value for value in leaks if value in text] == [], query
    body = await gql.post(
        "{ claims { edges { node { settlement { explanation { text } } } } } }",
        **token(department),
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


LOOKUP = '{ beneficiary(idNumber: "%s") { id } }'
NOBODY = "510402197001010021"  # a valid ID number nobody registered


async def read_records(db: Database) -> list[tuple[Any, ...]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT department, action, beneficiary_ids, field_paths FROM audit_log "
                "WHERE action = 'READ' ORDER BY id"
            )
        )
        return [tuple(row) for row in rows]


async def test_a_lookup_by_id_number_needs_the_purpose_and_is_audited_even_for_an_id_or_nothing(
    gql: GraphQLClient, db: Database, seeded: dict[Any, Any]
) -> None:
    before = await read_records(db)
    no_purpose = {**token("insurer"), "purpose": None}
    for query in (
        LOOKUP % ID,
        LOOKUP % NOBODY,
        "query($n: String) { beneficiary(idNumber: $n) { id } }",
    ):
        body = await gql.post(query, {"n": ID}, **no_purpose)
        assert body["data"] is None, query
        assert body["errors"][0]["extensions"] == {
            "code": "FORBIDDEN",
            "forbidden": ["beneficiary(idNumber)"],
        }, query
    assert await read_records(db) == before, "a refused lookup is not a read"

    person = seeded[("Beneficiary", "id")]
    for department in ("insurer", "civil_affairs"):
        assert await gql.data(LOOKUP % ID, **token(department)) == {"beneficiary": {"id": person}}
        assert await gql.data(LOOKUP % NOBODY, **token(department)) == {"beneficiary": None}
    found, missed = ["beneficiary(idNumber)"], ["beneficiary(idNumber)"]
    assert (await read_records(db))[len(before) :] == [
        ("insurer", "READ", [uuid.UUID(person)], found),
        ("insurer", "READ", [], missed),
        ("civil_affairs", "READ", [uuid.UUID(person)], found),
        ("civil_affairs", "READ", [], missed),
    ]
