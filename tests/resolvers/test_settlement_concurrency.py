"""Many settlements for one person at once, through two server processes sharing the database:
each claim is paid once, yearly caps hold, and the totals equal settling them one by one."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from gateway.transport import UVICORN_HTTP
from policies.benefits import PolicySet
from policies.settlement.engine import CategoryRecord, Person, Visit, settle_visits
from policies.vocabulary import PAYERS, Category, HospitalLevel, VisitType
from tests.conftest import SECRET, GraphQLClient, bearer
from tests.factories import category_document

ID = "510402197001010013"
CLAIMS = 40
DUPLICATES = 10
SETTLE = """mutation($i: SettleClaimInput!) { settleClaim(input: $i) {
  claimNumber basicInsurance criticalIllness inclusiveCommercial assistance secondaryAssistance
  outOfPocket } }"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def servers(settings: Settings, database_url: str, db: Database) -> Iterator[list[str]]:
    """Two separate uvicorn processes of the gateway on the test database."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MEDGW_JWT_SECRET": SECRET,
        "MEDGW_DATA_DIR": str(settings.data_dir),
        # Fifty settlements of one person queue on the person's lock: on a loaded 2-core
        # machine the last waits longer than the 5 s default. This test is about correctness
        # under concurrency, not latency (a busy database answers UNAVAILABLE: tests/gateway).
        "MEDGW_STATEMENT_TIMEOUT_MS": "120000",
    }
    ports = [_free_port(), _free_port()]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "gateway.main:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--http",
                UVICORN_HTTP,
            ],
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + 60
        for url in urls:
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not start")
                time.sleep(0.2)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)


def _claim(n: int) -> dict[str, str]:
    return {
        "claimNumber": f"C{n:03d}",
        "idNumber": ID,
        "type": "INPATIENT",
        "hospitalLevel": "SECONDARY",
        "admissionDate": "2023-03-01",
        "dischargeDate": "2023-03-10",
        "totalCost": "30000.00",
        "policyScopeCost": "26000.00",
    }


async def test_fifty_settlements_at_once_pay_each_claim_once_within_caps(
    gql: GraphQLClient, servers: list[str], db: Database, policies: PolicySet
) -> None:
    await gql.data(
        "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }",
        {"i": {"idNumber": ID, "name": "并发", "regionCode": "510402"}},
    )
    await gql.data(
        "mutation($i: RecordEnrollmentInput!) { recordEnrollment(input: $i) { year } }",
        {"i": {"idNumber": ID, "year": 2023, "contribution": "380.00", "enrolledOn": "2022-12-01"}},
    )
    await gql.data(
        category_document("MINIMUM_LIVING"),
        {
            "i": {
                "idNumber": ID,
                "category": "MINIMUM_LIVING",
                "validFrom": "2021-06-01",
                "reference": "R",
            }
        },
        department="civil_affairs",
    )
    requests = [_claim(n) for n in range(CLAIMS)] + [_claim(n) for n in range(DUPLICATES)]
    headers = bearer(department="medical_insurance")
    async with httpx.AsyncClient(timeout=120) as client:

        async def fire(i: int, claim: dict[str, str]) -> dict[str, str]:
            response = await client.post(
                f"{servers[i % 2]}/graphql",
                json={"query": SETTLE, "variables": {"i": claim}},
                headers=headers,
            )
            body = response.json()
            assert "errors" not in body, body
            return dict(body["data"]["settleClaim"])

        answers = await asyncio.gather(*(fire(i, c) for i, c in enumerate(requests)))

    by_number: dict[str, dict[str, str]] = {}
    for answer in answers:
        first = by_number.setdefault(answer["claimNumber"], answer)
        assert answer == first  # a duplicate gets the stored result
    assert len(by_number) == CLAIMS

    async with db.sessions() as session:
        originals = await session.scalar(select(func.count()).select_from(models.Settlement))
        ledger = (await session.scalars(select(models.Ledger))).one()
        order = (
            await session.scalars(select(models.Claim.claim_number).order_by(models.Claim.id))
        ).all()
    assert originals == CLAIMS
    assert ledger.visits == CLAIMS
    assert ledger.basic_insurance <= Decimal("200000.00")
    assert ledger.assistance == Decimal("70000.00")  # 40 × 3,864 would be 154,560

    # Sequential truth: the same visits settled one after another, in the order they were.
    person = Person(
        "510402",
        date(1970, 1, 1),
        categories=(CategoryRecord(Category.MINIMUM_LIVING, date(2021, 6, 1)),),
    )
    visits = [
        Visit(
            number,
            VisitType.INPATIENT,
            HospitalLevel.SECONDARY,
            date(2023, 3, 1),
            date(2023, 3, 10),
            Decimal("30000.00"),
            Decimal("26000.00"),
        )
        for number in order
    ]
    sequential = settle_visits(policies, person, visits)
    for result in sequential:
        answer = by_number[result.visit_id]
        assert [Decimal(answer[p.value]) for p in PAYERS] == [result.payments[p] for p in PAYERS]
    totals = {p: sum((r.payments[p] for r in sequential), Decimal(0)) for p in PAYERS}
    assert ledger.basic_insurance == totals[PAYERS[0]]
    assert ledger.assistance == totals[PAYERS[3]]
