"""The 一单制 结算单 (issue 13, point 4): ``GET /documents/claims/{claimNumber}.pdf`` and ``.html``
on a real uvicorn, read with the caller's rules (rows, masks, purpose), audited per download,
and one answer for a missing claim and another's claim.
"""

from __future__ import annotations

import io
import re
import shutil
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import text

from gateway.storage.database import Database
from tests.browser import ARTIFACTS
from tests.conftest import GraphQLClient, bearer
from tests.factories import recorder

PERSON = "510402197001010013"
NAME = "张三丰"
OTHER = "51040219850202002X"
OTHER_NAME = "李四娘"
HOSPITAL = "H-510402-01"
OTHER_HOSPITAL = "H-510402-02"
CLAIM = "C-DOC-1"
OTHER_CLAIM = "C-DOC-2"
MI = {"department": "medical_insurance", "purpose": "seeding"}
HOSPITAL_TOKEN = {"department": "hospital", "org": HOSPITAL, "purpose": "treatment"}
INSURER_A = {"department": "insurer", "org": "insurer-a", "purpose": "claim_handling"}
INSURER_B = {"department": "insurer", "org": "insurer-b", "purpose": "claim_handling"}
PAYERS = ("basicInsurance", "criticalIllness", "inclusiveCommercial", "assistance")
LABELS = {
    "basicInsurance": "基本医保",
    "criticalIllness": "大病保险",
    "inclusiveCommercial": "普惠型商业健康保险",
    "assistance": "医疗救助",
    "secondaryAssistance": "倾斜救助 / 再救助",
    "outOfPocket": "个人自付",
}

REGISTER = "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }"
ENROLL = "mutation($i: RecordEnrollmentInput!) { recordEnrollment(input: $i) { year } }"
IDENTITY = "mutation($i: RecordCategoryInput!) { recordIdentity(input: $i) { __typename } }"
SETTLE = "mutation($i: SettleClaimInput!) { settleClaim(input: $i) { outOfPocket } }"
AMOUNTS = (
    "basicInsurance criticalIllness inclusiveCommercial assistance secondaryAssistance outOfPocket"
)
READ = f"""query($n: String!) {{ claim(claimNumber: $n) {{
  settlement {{ {AMOUNTS} }} settlements {{ kind createdAt {AMOUNTS} }} }} }}"""


def claim(number: str, person: str, hospital: str, carrier: str) -> dict[str, Any]:
    return {
        "i": {
            "claimNumber": number,
            "idNumber": person,
            "type": "INPATIENT",
            "hospitalLevel": "SECONDARY",
            "hospitalCode": hospital,
            "admissionDate": "2023-03-01",
            "dischargeDate": "2023-03-11",
            "totalCost": "100000.00",
            "policyScopeCost": "40000.00",
            "diagnosis": "C34.9",
            "carrier": carrier,
            "reported": {"basicInsurance": "31680.00"},
        }
    }


async def seed(gql: GraphQLClient) -> dict[str, Any]:
    """Two persons of 攀枝花, each with a claim: CLAIM at HOSPITAL carried by insurer-a (settled
    by the hospital itself, then recognised 低保 from 1 January: an ADJUSTMENT), OTHER_CLAIM at
    OTHER_HOSPITAL carried by insurer-b. Returns CLAIM as medical insurance reads it."""
    for number, name in ((PERSON, NAME), (OTHER, OTHER_NAME)):
        person = {"idNumber": number, "name": name, "regionCode": "510402"}
        await gql.data(REGISTER, {"i": person}, **MI)
        enrollment = {"idNumber": number, "year": 2023, "contribution": "380.00"}
        await gql.data(ENROLL, {"i": {**enrollment, "enrolledOn": "2022-12-01"}}, **MI)
    await gql.data(SETTLE, claim(CLAIM, PERSON, HOSPITAL, "insurer-a"), **HOSPITAL_TOKEN)
    await gql.data(SETTLE, claim(OTHER_CLAIM, OTHER, OTHER_HOSPITAL, "insurer-b"), **MI)
    category = {"idNumber": PERSON, "category": "MINIMUM_LIVING", "validFrom": "2023-01-01"}
    by = recorder("MINIMUM_LIVING")
    await gql.data(
        IDENTITY,
        {"i": {**category, "reference": "低保-2023-001", "decidedOn": "2023-05-01"}},
        department=by,
        org=f"{by}-5104",
    )
    found: dict[str, Any] = (await gql.data(READ, {"n": CLAIM}, **MI))["claim"]
    assert [e["kind"] for e in found["settlements"]] == ["ORIGINAL", "ADJUSTMENT"]
    assert Decimal(found["settlement"]["assistance"]) > 0
    return found


def shown(amount: str) -> str:
    """An amount as the document prints it (thousands separators, two decimals)."""
    return f"{Decimal(amount):,.2f}"


async def download(http: httpx.AsyncClient, number: str, kind: str, **token: Any) -> httpx.Response:
    headers = bearer(**token) if token else {}
    return await http.get(f"/documents/claims/{quote(number, safe='')}.{kind}", headers=headers)


def pdf_text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["cache-control"] == "no-store"
    reader = PdfReader(io.BytesIO(response.content))
    return "\n".join(page.extract_text() for page in reader.pages)


def html_text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def adjustment_day(found: dict[str, Any]) -> str:
    created = datetime.fromisoformat(found["settlements"][1]["createdAt"])
    return created.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d")


@pytest.mark.parametrize("kind", ["pdf", "html"])
async def test_the_hospitals_document_shows_every_payer_the_patient_and_the_adjustment(
    gql: GraphQLClient, http: httpx.AsyncClient, kind: str
) -> None:
    found = await seed(gql)
    response = await download(http, CLAIM, kind, **HOSPITAL_TOKEN)
    body = pdf_text(response) if kind == "pdf" else html_text(response)
    for expected in (NAME, PERSON, HOSPITAL, "医疗费用一站式结算单", "2023-03-01 至 2023-03-11"):
        assert expected in body
    assert "100,000.00" in body
    assert "40,000.00" in body
    totals = found["settlement"]
    for field, label in LABELS.items():
        assert re.search(
            rf"{re.escape(label)}\s*(</th><td[^>]*>)?{re.escape(shown(totals[field]))}", body
        ), (
            field,
            totals[field],
        )
    adjustment = found["settlements"][1]
    assert adjustment_day(found) in body
    assert "追溯调整" in body
    assert f"医疗救助 +{shown(adjustment['assistance'])}" in body
    assert OTHER_NAME not in body
    assert body.count("（不予显示）") == 1  # the footer's legend only: the hospital sees all


async def test_an_insurer_reads_the_document_of_its_claim_masked_and_without_assistance(
    gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    found = await seed(gql)
    body = pdf_text(await download(http, CLAIM, "pdf", **INSURER_A))
    assert "张**" in body
    assert "5104**********0013" in body
    assert NAME not in body
    assert PERSON not in body
    assert f"基本医保\n{shown(found['settlement']['basicInsurance'])}" in body
    # ACCESS.md: no assistance lines and no out-of-pocket for insurers (they name the category).
    assert "医疗救助\n（不予显示）" in body
    assert "个人自付\n（不予显示）" in body
    for field in ("assistance", "outOfPocket"):
        assert shown(found["settlement"][field]) not in body
    assert f"+{shown(found['settlements'][1]['assistance'])}" not in body


async def last_record(db: Database) -> int:
    """The id of the newest audit record (0 when none)."""
    async with db.engine.connect() as conn:
        return int(await conn.scalar(text("SELECT coalesce(max(id), 0) FROM audit_log")) or 0)


def refusal(response: httpx.Response) -> tuple[int, dict[str, Any]]:
    """Status and the one error, checked to be in the gateway's JSON shape."""
    body = response.json()
    assert body["data"] is None, body
    assert len(body["errors"]) == 1, body
    error: dict[str, Any] = body["errors"][0]
    assert error["extensions"].pop("requestId") == response.headers["x-request-id"]
    return response.status_code, error


@pytest.mark.parametrize(
    ("token", "theirs"),
    [(INSURER_B, CLAIM), (INSURER_A, OTHER_CLAIM), (HOSPITAL_TOKEN, OTHER_CLAIM)],
    ids=["insurer-b", "insurer-a", "hospital"],
)
async def test_another_insurers_or_hospitals_claim_is_answered_as_a_missing_one(
    gql: GraphQLClient, http: httpx.AsyncClient, token: dict[str, Any], theirs: str
) -> None:
    await seed(gql)
    for kind in ("pdf", "html"):
        other = refusal(await download(http, theirs, kind, **token))
        missing = refusal(await download(http, "C-NOPE", kind, **token))
        for number, (status, error) in ((theirs, other), ("C-NOPE", missing)):
            assert status == 404
            assert error == {
                "message": f"claimNumber = {number}: no such claim",
                "extensions": {"code": "NOT_FOUND", "field": "claimNumber", "value": number},
            }


@pytest.mark.parametrize(
    "token",
    [
        {"department": "finance", "org": "财政局"},
        {"department": "auditor", "org": "审计"},
        {"department": "insurer", "org": "insurer-a"},  # no purpose
        {"department": "hospital", "org": HOSPITAL},  # no purpose
    ],
    ids=["finance", "auditor", "insurer-without-purpose", "hospital-without-purpose"],
)
async def test_a_caller_who_may_not_read_claims_is_refused_the_same_for_any_claim_number(
    gql: GraphQLClient, http: httpx.AsyncClient, db: Database, token: dict[str, Any]
) -> None:
    await seed(gql)
    before = await last_record(db)
    answers = []
    for number in (CLAIM, OTHER_CLAIM, "C-NOPE"):
        status, error = refusal(await download(http, number, "pdf", **token))
        assert (status, error["extensions"]["code"]) == (403, "FORBIDDEN"), error
        answers.append(error)
    assert answers[0] == answers[1] == answers[2]
    async with db.engine.connect() as conn:
        written = await conn.scalar(
            text("SELECT count(*) FROM audit_log WHERE id > :b"), {"b": before}
        )
    assert written == 0


async def test_no_token_is_401_and_an_unknown_kind_404_in_the_json_error_shape(
    gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    await seed(gql)
    status, error = refusal(await download(http, CLAIM, "pdf"))
    assert (status, error["extensions"]["code"]) == (401, "UNAUTHENTICATED")
    status, error = refusal(await download(http, CLAIM, "docx", **HOSPITAL_TOKEN))
    assert (status, error["extensions"]["code"]) == (404, "NOT_FOUND")


async def test_every_download_writes_one_read_record_with_the_schema_field_paths(
    gql: GraphQLClient, http: httpx.AsyncClient, db: Database
) -> None:
    await seed(gql)
    async with db.engine.connect() as conn:
        person = await conn.scalar(
            text("SELECT id FROM beneficiaries WHERE id_number = :n"), {"n": PERSON}
        )
    before = await last_record(db)
    for kind in ("pdf", "html", "pdf"):
        assert (await download(http, CLAIM, kind, **INSURER_A)).status_code == 200
    assert (await download(http, OTHER_CLAIM, "pdf", **INSURER_A)).status_code == 404
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT operation, department, org, purpose, beneficiary_ids, field_paths "
                    "FROM audit_log WHERE id > :b ORDER BY id"
                ),
                {"b": before},
            )
        ).all()
    assert [r.operation for r in rows] == [
        "query SettlementDocumentPdf",
        "query SettlementDocumentHtml",
        "query SettlementDocumentPdf",
    ]
    for row in rows:
        assert (row.department, row.org, row.purpose) == ("insurer", "insurer-a", "claim_handling")
        assert row.beneficiary_ids == [person]
        assert {"claim.beneficiary.name", "claim.beneficiary.idNumber", "claim.totalCost"} <= set(
            row.field_paths
        )
        assert "claim.settlement.assistance" not in row.field_paths


async def test_the_html_document_escapes_what_it_prints(
    gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    await seed(gql)
    number = 'C-<b onmouseover="x">&1'
    await gql.data(SETTLE, claim(number, OTHER, '<img src=x onerror="alert(1)">', "x"), **MI)
    body = html_text(await download(http, number, "html", **MI))
    assert "<b " not in body
    assert "<img" not in body
    assert "C-&lt;b onmouseover=&quot;x&quot;&gt;&amp;1" in body
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in body


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("SKIPPED LOUDLY: no Chromium (make test installs Debian's chromium as root)")
    return path


async def test_the_html_document_renders_in_headless_chromium_to_a_screenshot(
    gql: GraphQLClient, http_server: str
) -> None:
    executable = chromium()
    playwright = pytest.importorskip("playwright.async_api")
    found = await seed(gql)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "settlement-document.png"
    async with playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 900, "height": 1000})
        await page.set_extra_http_headers(bearer(**HOSPITAL_TOKEN))
        await page.goto(f"{http_server}/documents/claims/{CLAIM}.html")
        await page.wait_for_selector("h1")
        rendered = await page.inner_text("main")
        await page.screenshot(path=str(shot), full_page=True)
        await browser.close()
    assert NAME in rendered
    assert shown(found["settlement"]["outOfPocket"]) in rendered
    print(f"screenshot of the 结算单: {shot}")
    assert shot.stat().st_size > 10_000
