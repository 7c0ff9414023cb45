"""Who is calling: every way a token can be wrong is a 401 with a JSON error and no data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from sqlalchemy import func, select

from gateway.auth import Principal, Unauthenticated, authenticate, issue_token, parse_duration
from gateway.storage import models
from gateway.storage.database import Database
from tests.conftest import SECRET, bearer, make_token

DEPARTMENTS = {"civil_affairs", "medical_insurance"}
REGISTER = """mutation { registerBeneficiary(input: {idNumber: "510402197001010013",
  name: "张三", regionCode: "510402"}) { id } }"""


def test_token_round_trip_gives_the_principal() -> None:
    token = issue_token(
        SECRET,
        subject="u1",
        department="civil_affairs",
        org="民政-5104",
        regions=["5104", "5105"],
        purpose="assistance",
    )
    principal = authenticate(f"Bearer {token}", SECRET, DEPARTMENTS)
    assert principal == Principal(
        "u1", "civil_affairs", "民政-5104", ("5104", "5105"), "assistance"
    )


def test_principal_serves_only_its_region_prefixes() -> None:
    principal = Principal("u", "civil_affairs", "o", ("5104", "32"))
    assert principal.serves_region("510402")
    assert principal.serves_region("320102")
    assert not principal.serves_region("370811")


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("8h", 28800), ("2d", 172800)]
)
def test_durations_parse(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["8", "h", "8 hours", "-1h", ""])
def test_bad_durations_are_refused_with_the_value(text: str) -> None:
    with pytest.raises(ValueError, match="ttl"):
        parse_duration(text)


def _forge(claims: dict[str, object], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def _claims(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "sub": "u",
        "department": "civil_affairs",
        "org": "o",
        "regions": ["5104"],
        "exp": int((datetime.now(UTC) + timedelta(hours=1)).timestamp()),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


EXPIRED = int((datetime.now(UTC) - timedelta(minutes=5)).timestamp())
BAD_HEADERS: list[tuple[str, dict[str, str], str]] = [
    ("missing", {}, "missing Authorization"),
    ("not bearer", {"Authorization": "Basic dXNlcjpwYXNz"}, "malformed Authorization"),
    ("bearer without token", {"Authorization": "Bearer"}, "malformed Authorization"),
    ("garbage", {"Authorization": "Bearer not.a.jwt"}, "malformed token"),
    (
        "bad signature",
        {"Authorization": f"Bearer {_forge(_claims(), 'other-secret-' + 'y' * 40)}"},
        "signature",
    ),
    ("expired", {"Authorization": f"Bearer {_forge(_claims(exp=EXPIRED))}"}, "expired"),
    ("no exp", {"Authorization": f"Bearer {_forge(_claims(exp=None))}"}, "'exp'"),
    ("no sub", {"Authorization": f"Bearer {_forge(_claims(sub=None))}"}, "'sub'"),
    (
        "unknown department",
        {"Authorization": f"Bearer {_forge(_claims(department='tax_bureau'))}"},
        "unknown department 'tax_bureau'",
    ),
    ("no org", {"Authorization": f"Bearer {_forge(_claims(org=None))}"}, "'org'"),
    ("bad regions", {"Authorization": f"Bearer {_forge(_claims(regions=['51x']))}"}, "regions"),
    ("empty regions", {"Authorization": f"Bearer {_forge(_claims(regions=[]))}"}, "regions"),
    (
        "alg none",
        {"Authorization": "Bearer " + jwt.encode(_claims(), None, algorithm="none")},
        "malformed token",
    ),
]


@pytest.mark.parametrize(
    ("case", "headers", "reason"), BAD_HEADERS, ids=[c[0] for c in BAD_HEADERS]
)
async def test_bad_credentials_get_401_json_and_nothing_is_stored(
    http: httpx.AsyncClient, db: Database, case: str, headers: dict[str, str], reason: str
) -> None:
    response = await http.post("/graphql", json={"query": REGISTER}, headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert reason in body["errors"][0]["message"]
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(models.Beneficiary)) == 0


async def test_a_valid_token_is_accepted_over_http(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql",
        json={"query": "{ beneficiaries(first: 1) { edges { cursor } } }"},
        headers=bearer(),
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"beneficiaries": {"edges": []}}}


def test_unknown_department_is_unauthenticated_even_when_signed() -> None:
    with pytest.raises(Unauthenticated, match="unknown department"):
        authenticate(f"Bearer {make_token(department='police')}", SECRET, DEPARTMENTS)
