"""Payment files (issue 13): GET /exports/payments.csv|.xlsx and ``medgw export payments`` on a
real server: what the assistance fund owes each hospital and person in a year or month, equal to
the same token's GraphQL read of the claims' settlement events (summed here, independently of
the ledgers), audited like every export."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.cli import app
from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from gateway.tables import Format
from tests.conftest import GraphQLClient, bearer
from tests.resolvers.test_exports import read_back
from tests.resolvers.test_statements import scenario

CHINA = ZoneInfo("Asia/Shanghai")
CLAIMS = """query($y: Int!) { claims(year: $y, first: 100) { edges { node { hospitalCode
  dischargeDate beneficiary { id idNumber name regionCode }
  settlements { kind assistance secondaryAssistance createdAt } } } } }"""
KINDS = ["text"] * 8 + ["money"]
MI = {"department": "medical_insurance", "org": "mi-5104", "regions": ("5104",)}


def owed(claims: dict[str, Any], start: date, end: date) -> dict[tuple[str, str, str], Decimal]:
    """What the assistance fund owes each payee for the events booked from start to end: at
    discharge to the hospital (to the person without one), later adjustments and recoveries
    to (from) the person, a reversal cancelling each as it was owed."""
    due: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for edge in claims["claims"]["edges"]:
        claim = edge["node"]
        person = claim["beneficiary"]
        region = person["regionCode"]
        hospital = ("HOSPITAL", claim["hospitalCode"], region) if claim["hospitalCode"] else None
        personal = ("PERSON", person["id"], region)
        posted: list[tuple[tuple[str, str, str], Decimal]] = []
        for event in claim["settlements"]:
            amount = Decimal(event["assistance"]) + Decimal(event["secondaryAssistance"])
            day = datetime.fromisoformat(event["createdAt"]).astimezone(CHINA).date()
            if event["kind"] == "ORIGINAL":
                day = date.fromisoformat(claim["dischargeDate"])
                entries = [(hospital or personal, amount)]
            elif event["kind"] == "REVERSAL":
                entries = [(payee, -value) for payee, value in posted]
            else:
                entries = [(personal, amount)]
            posted += entries
            if start <= day <= end:
                for payee, value in entries:
                    due[payee] += value
    return {payee: value for payee, value in due.items() if value}


def exported_rows(rows: list[dict[str, str]]) -> dict[tuple[str, str, str], Decimal]:
    return {
        (r["payee"], r["hospitalCode"] or r["beneficiaryId"], r["regionCode"]): Decimal(r["amount"])
        for r in rows
    }


@pytest.mark.parametrize("shape", [Format.CSV, Format.XLSX])
async def test_the_payment_file_equals_the_graphql_read_of_the_same_token(
    gql: GraphQLClient, http: httpx.AsyncClient, db: Database, shape: Format
) -> None:
    await scenario(gql)
    today = datetime.now(CHINA).date()
    checked = 0
    for year, month in ((2023, None), (2023, 2), (2023, 11), (today.year, None)):
        params: dict[str, Any] = {"year": year}
        if month:
            params["month"] = month
        response = await http.get(f"/exports/payments.{shape}", params=params, headers=bearer(**MI))
        assert response.status_code == 200, response.text
        rows = read_back(response.content, shape, KINDS)
        start = date(year, month or 1, 1)
        end = date(year, month or 12, 28 if month == 2 else 30 if month == 11 else 31)
        expected = owed(await gql.data(CLAIMS, {"y": 2023}, **MI), start, end)
        assert exported_rows(rows) == expected, (year, month)
        for row in rows:
            assert (row["periodStart"], row["periodEnd"]) == (start.isoformat(), end.isoformat())
            # hospitals carry no person; persons carry their name and ID number
            assert bool(row["hospitalCode"]) == (row["payee"] == "HOSPITAL")
            assert bool(row["idNumber"]) == (row["payee"] == "PERSON")
        checked += len(rows)
    assert checked >= 4
    # one READ record per export that listed persons, naming them
    async with db.sessions() as session:
        records = (
            await session.scalars(
                select(models.AuditRecord).where(
                    models.AuditRecord.operation == "query ExportPayments"
                )
            )
        ).all()
    assert records
    assert all(r.action == "READ" and r.beneficiary_ids for r in records)


async def test_the_payment_file_is_medical_insurances(
    gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    await scenario(gql)
    for department in ("insurer", "health", "finance"):
        token = {"department": department, "org": "picc", "purpose": "claim_handling"}
        response = await http.get(
            "/exports/payments.csv", params={"year": 2023}, headers=bearer(**token)
        )
        assert response.status_code == 403, (department, response.text)
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    response = await http.get(
        "/exports/payments.csv", params={"year": 2023, "fund": "finance"}, headers=bearer(**MI)
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["field"] == "fund"


async def test_medgw_export_payments_writes_the_same_rows(
    gql: GraphQLClient, http: httpx.AsyncClient, settings: Settings, database_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    await scenario(gql)
    out = tmp_path / "payments.xlsx"
    args = ["export", "payments", "--as", "medical_insurance", "--org", "mi-5104",
            "--region", "5104", "--year", "2023", "--format", "xlsx", "-o", str(out)]  # fmt: skip
    env = {"DATABASE_URL": database_url, "MEDGW_DATA_DIR": str(settings.data_dir)}
    result = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)
    assert result.exit_code == 0, result.output
    written = read_back(await asyncio.to_thread(out.read_bytes), Format.XLSX, KINDS)
    response = await http.get("/exports/payments.csv", params={"year": 2023}, headers=bearer(**MI))
    assert written
    assert written == read_back(response.content, Format.CSV, KINDS)


STATEMENT = """query($y: Int!, $f: AccountKind, $p: StatementPeriod!, $n: Int, $party: String) {
  fundStatement(year: $y, fund: $f, period: $p, number: $n, party: $party) {
  fund party periodStart periodEnd opening closing lines { kind flow debit credit } } }"""
STATEMENT_KINDS = ["text"] * 4 + ["money"] + ["text"] * 2 + ["money"] * 3


def statement_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    s = data["fundStatement"]
    head = {k: s[k] for k in ("fund", "party", "periodStart", "periodEnd", "opening")}
    return [{**head, **line, "closing": s["closing"]} for line in s["lines"]]


@pytest.mark.parametrize("shape", [Format.CSV, Format.XLSX])
@pytest.mark.parametrize(
    ("token", "params"),
    [
        (MI, {"fund": "ASSISTANCE_FUND"}),
        (MI, {"fund": "HOSPITAL", "hospital": "H-1", "month": 2}),
        ({"department": "hospital", "org": "H-1", "regions": ("5104",)}, {}),
        ({"department": "insurer", "org": "picc", "regions": ("5104",)}, {"month": 11}),
        ({"department": "finance", "org": "f", "regions": ("5104",)}, {"quarter": 1}),
        (MI, {"fund": "HOSPITAL", "hospital": "H-1", "quarter": 1}),
    ],
    ids=[
        "mi-assistance",
        "mi-hospital-month",
        "hospital",
        "insurer-month",
        "finance-quarter",
        "mi-hospital-quarter",
    ],
)
async def test_the_statement_file_equals_the_graphql_statement_of_the_same_token(
    gql: GraphQLClient, http: httpx.AsyncClient, shape: Format, token: dict[str, Any],
    params: dict[str, Any],
) -> None:  # fmt: skip
    await scenario(gql)
    response = await http.get(
        f"/exports/statements.{shape}", params={"year": 2023, **params}, headers=bearer(**token)
    )
    assert response.status_code == 200, response.text
    exported = read_back(response.content, shape, STATEMENT_KINDS)
    variables = {
        "y": 2023,
        "f": params.get("fund"),
        "p": "MONTH" if "month" in params else "QUARTER" if "quarter" in params else "YEAR",
        "n": params.get("month", params.get("quarter")),
        "party": params.get("hospital"),
    }
    api = statement_rows(await gql.data(STATEMENT, variables, **token))
    assert exported == api
    assert any(row["debit"] != "0.00" or row["credit"] != "0.00" for row in api)


async def test_an_insurer_cannot_export_another_fund_or_carrier(
    gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    await scenario(gql)
    insurer = {"department": "insurer", "org": "picc", "regions": ("5104",)}
    for params in ({"fund": "BASIC_FUND"}, {"hospital": "cpic"}):
        response = await http.get(
            "/exports/statements.csv", params={"year": 2023, **params}, headers=bearer(**insurer)
        )
        assert response.status_code == 403, response.text
    response = await http.get(
        "/exports/statements.csv", params={"year": 2023}, headers=bearer(department="health")
    )
    assert response.status_code == 403, response.text


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"quarter": 5}, "quarter = 5: expected 1 to 4"),
        ({"quarter": 1, "month": 2}, "quarter = 1: give a month or a quarter, not both"),
    ],
)
async def test_a_statement_file_with_a_bad_quarter_is_refused_naming_it(
    http: httpx.AsyncClient, params: dict[str, Any], named: str
) -> None:
    response = await http.get(
        "/exports/statements.csv", params={"year": 2023, **params}, headers=bearer(**MI)
    )
    assert response.status_code == 400, response.text
    assert named in response.text
    response = await http.get(
        "/exports/payments.csv", params={"year": 2023, "quarter": 1}, headers=bearer(**MI)
    )
    assert response.status_code == 400
    assert "quarter = 1: applies to the statements export only" in response.text
