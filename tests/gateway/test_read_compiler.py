"""The read compiler (resolvers/compiler.py, gateway/read_compiler.py) against the resolvers: the
same request sent to an app with the compiler and to one without must get the same bytes and
write the same READ audit record (operation, beneficiary ids, field paths), for every department
of policies/access; what the compiler does not cover falls back to the resolvers."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gateway.app import create_app, load_access_for_schema
from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from policies.access.policy import DepartmentPolicy
from policies.benefits import PolicySet
from resolvers import compiler
from tests.conftest import make_token
from tests.factories import add_people

ACCESS = load_access_for_schema()[1]
DEPARTMENTS = sorted(ACCESS.departments)
INSURER = "insurer-a"
HOSPITAL = "H1"
REGIONS = ("5104", "3201")
EXAMPLES = int(os.environ.get("COMPILER_EXAMPLES", "15"))


@pytest.fixture(scope="module")
async def resolver_app(settings: Settings, db: Database, policies: PolicySet) -> AsyncIterator[Any]:
    """The same gateway with the read compiler off: every read goes through the resolvers."""
    application = create_app(settings.model_copy(update={"read_compiler": False}), db=db, policies=policies)
    async with application.router.lifespan_context(application):
        yield application


@dataclass
class Both:
    compiled: httpx.AsyncClient
    resolved: httpx.AsyncClient
    db: Database


@pytest.fixture
async def both(app: Any, resolver_app: Any, db: Database) -> AsyncIterator[Both]:
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=resolver_app), base_url="http://g") as b,
    ):
        yield Both(a, b, db)


@dataclass
class Seeded:
    ids: list[uuid.UUID]
    id_numbers: list[str]
    claim_ids: list[int]


async def seed(db: Database) -> Seeded:
    """Persons in two regions: claims carried by the insurer or not, of hospital H1 or not, some
    settled (an original, an adjustment and a reversal), a person without any claim, an ended
    identity, a masked name of one character."""
    people = [
        *await add_people(db, 4, region="510402", claims_each=3, carrier=INSURER),
        *await add_people(db, 3, region="510402", claims_each=2, carrier="other", start=10),
        *await add_people(db, 2, region="320102", claims_each=1, carrier=INSURER, start=20),
        *await add_people(db, 1, region="510402", claims_each=0, start=30),
        *await add_people(db, 1, region="370202", claims_each=1, start=40),
    ]
    async with db.transaction() as session:
        first = people[0]
        person = await session.get(models.Beneficiary, first.id)
        assert person is not None
        person.name = "张"
        claims = (await session.scalars(select(models.Claim).order_by(models.Claim.id))).all()
        for n, claim in enumerate(claims):
            if n % 4 == 1:
                claim.hospital_code = "H2"
            if n % 5 == 2:
                claim.hospital_level = None
                claim.diagnosis = None
            if n % 3 == 0:
                continue
            events = [("ORIGINAL", Decimal("120.50"), "510400-2023", "MINIMUM_LIVING")]
            if n % 3 == 2:
                events.append(("ADJUSTMENT", Decimal("-20.25"), "510400-2024", None))
            if n % 7 == 2:
                events.append(("REVERSAL", Decimal("-100.25"), "510400-2024", None))
            for kind, oop, policy, category in events:
                event = models.Settlement(
                    claim_id=claim.id,
                    beneficiary_id=claim.beneficiary_id,
                    year=claim.year,
                    kind=kind,
                    policy=policy,
                    category=category,
                    out_of_pocket=oop,
                    explanation={},
                    department="medical_insurance",
                    org="o",
                )
                session.add(event)
                await session.flush()
                session.add_all(
                    models.SettlementLine(settlement_id=event.id, payer=payer, amount=amount)
                    for payer, amount in (
                        ("basicInsurance", Decimal("500.00") if kind == "ORIGINAL" else Decimal("-10.10")),
                        ("assistance", Decimal("79.50")),
                        ("secondaryAssistance", Decimal("0.00")),
                    )
                )
        identity = (await session.scalars(select(models.Identity).limit(1))).one()
        identity.valid_to = date(2022, 6, 30)
        identity.decided_on = date(2022, 6, 1)
        identity.recorded_at = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    return Seeded(
        [p.id for p in people],
        [p.id_number for p in people],
        [c.id for c in claims],
    )


@pytest.fixture
async def seeded(db: Database) -> Seeded:
    return await seed(db)


def token_of(department: str) -> dict[str, str]:
    policy = ACCESS.departments[department]
    purpose = min(policy.purposes_for_personal) if policy.purposes_for_personal else None
    org = {"insurer": INSURER, "hospital": HOSPITAL}.get(department, "o-1")
    token = make_token(department=department, org=org, regions=REGIONS, purpose=purpose)
    return {"Authorization": f"Bearer {token}"}


async def audit_count(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(models.AuditRecord)) or 0)


async def audit_since(db: Database, count: int) -> list[tuple[Any, ...]]:
    async with db.transaction() as session:
        rows = (
            await session.scalars(
                select(models.AuditRecord).order_by(models.AuditRecord.id).offset(count)
            )
        ).all()
    return [
        (r.action, r.operation, r.department, sorted(r.beneficiary_ids), sorted(r.field_paths), r.query_text)
        for r in rows
    ]


def _without_request_ids(body: dict[str, Any]) -> dict[str, Any]:
    for error in body.get("errors") or []:
        (error.get("extensions") or {}).pop("requestId", None)
    return body


async def compare(
    both: Both, department: str, query: str, variables: dict[str, Any] | None = None
) -> tuple[bytes, list[tuple[Any, ...]]]:
    """Sends the request through both apps; asserts the same answer and the same audit records;
    returns the compiled app's body and records."""
    payload = {"query": query, "variables": variables or {}}
    headers = token_of(department)
    before = await audit_count(both.db)
    compiled = await both.compiled.post("/graphql", json=payload, headers=headers)
    records_compiled = await audit_since(both.db, before)
    middle = before + len(records_compiled)
    resolved = await both.resolved.post("/graphql", json=payload, headers=headers)
    records_resolved = await audit_since(both.db, middle)
    assert compiled.status_code == resolved.status_code
    if b'"errors"' in compiled.content or b'"errors"' in resolved.content:
        assert _without_request_ids(compiled.json()) == _without_request_ids(resolved.json())
    else:
        assert compiled.content == resolved.content, (query, variables)
    assert records_compiled == records_resolved, (query, variables)
    return compiled.content, records_compiled


def spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each request the compiler saw was answered compiled (True) or fell back."""
    answered: list[bool] = []
    run = compiler.run

    async def recording(*args: Any, **kwargs: Any) -> compiler.Answer | None:
        answer = await run(*args, **kwargs)
        answered.append(answer is not None)
        return answer

    monkeypatch.setattr(compiler, "run", recording)
    return answered


# -- the bench's queries --------------------------------------------------------------------------

PAGE = """query Page($first: Int!) { beneficiaries(regionPrefix: "5104", first: $first) {
  edges { node { id idNumber name regionCode
    identities { category validFrom validTo }
    monitoringFlags { category validFrom validTo }
    enrollments { year contribution inclusiveCommercial }
    claims(first: 5) { edges { node { claimNumber admissionDate totalCost
      settlement { basicInsurance criticalIllness inclusiveCommercial assistance
        secondaryAssistance outOfPocket } } } } } } } }"""
POINT = """query Point($n: String!) { beneficiary(idNumber: $n) {
  id name regionCode identities { category validFrom validTo } } }"""


@pytest.mark.parametrize("department", ["medical_insurance", "insurer", "hospital", "civil_affairs"])
async def test_the_bench_queries_are_compiled_and_answer_as_the_resolvers(
    both: Both, seeded: Seeded, monkeypatch: pytest.MonkeyPatch, department: str
) -> None:
    answered = spy(monkeypatch)
    policy = ACCESS.departments[department]
    page = PAGE if _may_use(policy, PAGE) else None
    if page:
        body, records = await compare(both, department, page, {"first": 3})
        assert answered.pop() is True
        assert b'"edges"' in body
        await compare(both, department, page, {"first": 50})
        assert answered.pop() is True
    if _may_use(policy, POINT):
        body, records = await compare(both, department, POINT, {"n": seeded.id_numbers[0]})
        assert answered.pop() is True
        assert records and records[0][1] == "query Point"
        assert records[0][3] == [seeded.ids[0]] or department in {"insurer", "hospital"}


def _may_use(policy: DepartmentPolicy, query: str) -> bool:
    from policies.access.walker import forbidden_paths
    import graphql

    full = load_access_for_schema()[0]
    return not forbidden_paths(graphql.parse(query), full, policy, None)
