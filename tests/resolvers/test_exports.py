"""Exports (resolvers/exports.py): the rows, columns, masks and audit record of each kind are
those of the equivalent GraphQL read of the same caller, compared value by value."""

from __future__ import annotations

import csv
import io
import tracemalloc
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import openpyxl
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import load_access_for_schema
from gateway.auth import Principal
from gateway.errors import Forbidden
from gateway.storage import models
from gateway.storage.database import Database
from gateway.tables import Format, write_table
from policies.errors import InvalidInput
from resolvers.exports import Export, ExportRequest, plan
from tests.conftest import GraphQLClient
from tests.factories import id_number, recorder

A = id_number("510402", date(1970, 1, 1), 21)  # 低保 ended back-dated: a recovery
B = id_number("510402", date(1980, 5, 5), 22)  # 低保 recognised late: an adjustment
C = id_number("370802", date(1975, 7, 7), 23)  # 济宁: outside a 5104 token
PICC = "picc-5104"
SCHEMA, ACCESS = load_access_for_schema()
INSURER = {"department": "insurer", "org": PICC, "regions": ("5104",), "purpose": "claim_handling"}


# -- the world: three persons, enrollments, claims, an adjustment, a recovery, an alert ----------


async def _write(
    gql: GraphQLClient, mutation: str, kind: str, item: dict[str, Any], **token: Any
) -> None:
    await gql.data(
        f"mutation($i: {kind}!) {{ {mutation}(input: $i) {{ __typename }} }}", {"i": item}, **token
    )


async def _category(
    gql: GraphQLClient, verb: str, number: str, category: str, **dates: str
) -> None:
    item = {"idNumber": number, "category": category, **dates}
    kind = "RecordCategoryInput" if verb == "record" else "EndCategoryInput"
    if verb == "record":
        item["reference"] = f"{category}-{number[-4:]}"
    await _write(gql, f"{verb}Identity", kind, item, department=recorder(category))


def _stay(
    number: str, claim: str, admitted: str, total: str, scope: str, **extra: Any
) -> dict[str, Any]:
    return {
        "claimNumber": claim,
        "idNumber": number,
        "type": "INPATIENT",
        "hospitalLevel": "TERTIARY",
        "admissionDate": admitted,
        "dischargeDate": admitted,
        "totalCost": total,
        "policyScopeCost": scope,
        **extra,
    }


async def build_world(gql: GraphQLClient) -> None:
    """A, B in 攀枝花东区, C in 济宁; claims at H001/H002/H009 carried by picc-5104 or not."""
    for number, name, region in (
        (A, "张三丰", "510402"),
        (B, "李四", "510402"),
        (C, "王五", "370802"),
    ):
        await _write(
            gql,
            "registerBeneficiary",
            "RegisterBeneficiaryInput",
            {"idNumber": number, "name": name, "regionCode": region},
        )
    await _category(gql, "record", A, "MINIMUM_LIVING", validFrom="2021-06-01")
    for number in (A, B, C):
        await _write(
            gql,
            "recordEnrollment",
            "RecordEnrollmentInput",
            {
                "idNumber": number,
                "year": 2023,
                "contribution": "380.00",
                "enrolledOn": "2022-12-01",
            },
        )
    await _write(
        gql,
        "recordEnrollment",
        "RecordEnrollmentInput",
        {"idNumber": B, "year": 2022, "contribution": "350.00", "enrolledOn": "2021-12-01"},
    )
    settle = "settleClaim"
    claims = [
        _stay(A, "X-A1", "2023-03-01", "160000.00", "150000.00", hospitalCode="H001", carrier=PICC),
        _stay(A, "X-A2", "2023-05-10", "300000.00", "200000.00", hospitalCode="H002", carrier=PICC),
        _stay(
            B, "X-B1", "2023-03-15", "20000.00", "18000.00", hospitalCode="H001", carrier="other"
        ),
        _stay(C, "X-C1", "2023-03-20", "30000.00", "25000.00", hospitalCode="H009", carrier=PICC),
    ]
    for claim in claims:
        await _write(gql, settle, "SettleClaimInput", claim)
    # B recognised 低保 from January: more assistance, paid as an ADJUSTMENT.
    await _category(gql, "record", B, "MINIMUM_LIVING", validFrom="2023-01-01")
    # A's 低保 ended back-dated: pending recoveries, which medical insurance recovers.
    await _category(gql, "end", A, "MINIMUM_LIVING", validTo="2022-12-31", decidedOn="2023-06-01")
    pending = await gql.data("{ recoveries(status: PENDING, first: 50) { edges { node { id } } } }")
    for edge in pending["recoveries"]["edges"]:
        await gql.data(
            "mutation($id: ID!) { decideRecovery(id: $id, decision: RECOVER) { __typename } }",
            {"id": edge["node"]["id"]},
        )


@pytest.fixture
async def world(gql: GraphQLClient) -> None:
    await build_world(gql)


# -- running an export and reading it back ---------------------------------------------------


def principal(
    department: str = "medical_insurance",
    org: str = "mi-5104",
    regions: tuple[str, ...] = ("5104", "3708"),
    purpose: str | None = None,
) -> Principal:
    return Principal("tester", department, org, regions, purpose)


async def export(
    db: Database, who: Principal, request: ExportRequest, shape: Format = Format.CSV
) -> list[dict[str, str]]:
    """The export's rows as {column name: cell text}, read back from the file's bytes."""
    planned = plan(request, who, ACCESS, SCHEMA)
    sink = io.BytesIO()
    async with await Export.open(db, who, planned) as opened:
        await write_table(planned.columns, opened.rows(), shape, sink)
    return read_back(sink.getvalue(), shape, [c.kind.value for c in planned.columns])


def read_back(data: bytes, shape: Format, kinds: list[str]) -> list[dict[str, str]]:
    """CSV (UTF-8 with BOM) or XLSX bytes as rows of text keyed by the English column name
    (``kinds``: each column's :class:`gateway.tables.Kind`, to read XLSX numbers back)."""
    if shape is Format.CSV:
        assert data.startswith(b"\xef\xbb\xbf")
        table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    else:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
        header, *cells = book.active.iter_rows(values_only=True)
        # Read-only openpyxl leaves trailing empty cells out of a row.
        table = [list(header)]
        for row in cells:
            padded = [*row, *[None] * (len(kinds) - len(row))]
            table.append([_cell(v, k) for v, k in zip(padded, kinds, strict=True)])
    header, *rows = table
    names = [str(h).split(" ")[-1] for h in header]
    return [dict(zip(names, row, strict=True)) for row in rows]


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind == "money":
        return format(Decimal(repr(value)).quantize(Decimal("0.01")), "f")
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value)


def text_of(value: Any) -> str:
    """A GraphQL value as an export cell shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- the equivalent GraphQL reads, flattened to rows -------------------------------------------

SUBSIDIES = """{ beneficiaries(first: 100) { edges { node { id idNumber name regionCode
  enrollments { year scheme enrolledOn contribution
    subsidy { policy category assistanceFund finance individual } } } } } }"""
ALERTS = """{ highCostAlerts(year: 2023, first: 100) { edges { node { id year outOfPocket threshold
  status resolution resolvedAt beneficiary { id idNumber name regionCode } } } } }"""
PAYERS = "basicInsurance criticalIllness inclusiveCommercial assistance secondaryAssistance"
SETTLEMENTS = f"""{{ claims(year: 2023, first: 100) {{ edges {{ node {{ claimNumber hospitalCode
  year type admissionDate dischargeDate carrier reversed totalCost policyScopeCost
  beneficiary {{ id idNumber name regionCode }}
  settlement {{ {PAYERS} outOfPocket }} settlements {{ kind assistance secondaryAssistance }}
}} }} }} }}"""
INSURER_SETTLEMENTS = """{ claims(year: 2023, first: 100) { edges { node { claimNumber
  hospitalCode year type admissionDate dischargeDate carrier reversed totalCost policyScopeCost
  beneficiary { id idNumber name regionCode }
  settlement { basicInsurance criticalIllness inclusiveCommercial } } } } }"""


def _person(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "beneficiaryId": node["id"],
        "idNumber": node["idNumber"],
        "name": node["name"],
        "regionCode": node["regionCode"],
    }


def subsidy_rows(data: dict[str, Any], year: int) -> list[dict[str, str]]:
    rows = []
    for edge in data["beneficiaries"]["edges"]:
        node = edge["node"]
        for e in node["enrollments"]:
            if e["year"] == year:
                values = {
                    **_person(node),
                    **{k: e[k] for k in ("year", "scheme", "enrolledOn", "contribution")},
                    **e["subsidy"],
                }
                rows.append({k: text_of(v) for k, v in values.items()})
    return rows


def alert_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for edge in data["highCostAlerts"]["edges"]:
        node = dict(edge["node"])
        person = _person(node.pop("beneficiary"))
        values = {"alertId": node.pop("id"), **node, **person}
        rows.append({k: text_of(v) for k, v in values.items()})
    return rows


def settlement_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for edge in data["claims"]["edges"]:
        node = dict(edge["node"])
        values = {**node, **_person(node.pop("beneficiary")), **(node.pop("settlement") or {})}
        events = node.pop("settlements", None)
        values.pop("beneficiary")
        values.pop("settlement", None)
        values.pop("settlements", None)
        if events is not None:
            for kind, column in (("ADJUSTMENT", "adjustments"), ("RECOVERY", "recoveries")):
                values[column] = str(
                    sum(
                        (
                            Decimal(e["assistance"]) + Decimal(e["secondaryAssistance"])
                            for e in events
                            if e["kind"] == kind
                        ),
                        Decimal("0.00"),
                    )
                )
        rows.append({k: text_of(v) for k, v in values.items()})
    return rows


def by(key: str, rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    keyed = {row[key]: row for row in rows}
    assert len(keyed) == len(rows)
    return keyed


# -- equal to the API, for medical insurance, civil affairs, rural revitalisation, an insurer ---


@pytest.mark.parametrize(
    "department", ["medical_insurance", "civil_affairs", "rural_revitalisation"]
)
@pytest.mark.parametrize("shape", [Format.CSV, Format.XLSX])
async def test_the_subsidy_list_equals_the_graphql_read_of_the_same_caller(
    world: None, gql: GraphQLClient, db: Database, department: str, shape: Format
) -> None:
    exported = await export(db, principal(department), ExportRequest("subsidies", 2023), shape)
    api = subsidy_rows(
        await gql.data(SUBSIDIES, department=department, regions=("5104", "3708")), 2023
    )
    assert by("idNumber", exported) == by("idNumber", api)
    assert {row["name"] for row in exported} == {"张三丰", "李四", "王五"}
    [a] = [row for row in exported if row["idNumber"] == A]
    # 低保 held on the enrollment date: 攀枝花 subsidises the contribution (values from the API).
    assert a["category"] == "MINIMUM_LIVING"
    assert Decimal(a["individual"]) < Decimal("380.00")


async def test_the_subsidy_list_filters_by_fund_and_region(world: None, db: Database) -> None:
    paid = await export(db, principal(), ExportRequest("subsidies", 2023, fund="assistanceFund"))
    assert paid
    assert all(Decimal(row["assistanceFund"]) > 0 for row in paid)
    assert A in {row["idNumber"] for row in paid}
    region = await export(db, principal(), ExportRequest("subsidies", 2023, region="3708"))
    assert [row["idNumber"] for row in region] == [C]
    earlier = await export(db, principal(), ExportRequest("subsidies", 2022))
    assert [(row["idNumber"], row["contribution"]) for row in earlier] == [(B, "350.00")]


@pytest.mark.parametrize(
    "department", ["civil_affairs", "rural_revitalisation", "medical_insurance"]
)
async def test_the_high_cost_list_equals_the_graphql_read(
    world: None, gql: GraphQLClient, db: Database, department: str
) -> None:
    exported = await export(db, principal(department), ExportRequest("alerts", 2023), Format.XLSX)
    api = alert_rows(await gql.data(ALERTS, department=department, regions=("5104", "3708")))
    assert exported, "the costly stays of A raise an alert"
    assert by("alertId", exported) == by("alertId", api)
    assert A in {row["idNumber"] for row in exported}


async def test_the_settlements_of_medical_insurance_equal_the_graphql_read(
    world: None, gql: GraphQLClient, db: Database
) -> None:
    exported = await export(db, principal(), ExportRequest("settlements", 2023))
    api = settlement_rows(await gql.data(SETTLEMENTS))
    assert by("claimNumber", exported) == by("claimNumber", api)
    rows = by("claimNumber", exported)
    # The late news is in the columns: B's adjustment paid, A's assistance recovered.
    assert Decimal(rows["X-B1"]["adjustments"]) > 0
    assert Decimal(rows["X-A1"]["recoveries"]) < 0
    assert rows["X-A1"]["assistance"] == "0.00"
    # Per hospital, then admission date.
    assert [row["claimNumber"] for row in exported] == ["X-A1", "X-B1", "X-A2", "X-C1"]
    march = await export(
        db, principal(), ExportRequest("settlements", 2023, month=3, hospital="H001")
    )
    assert [row["claimNumber"] for row in march] == ["X-A1", "X-B1"]


@pytest.mark.parametrize("shape", [Format.CSV, Format.XLSX])
async def test_an_insurers_settlements_are_masked_and_limited_like_its_queries(
    world: None, gql: GraphQLClient, db: Database, shape: Format
) -> None:
    who = principal("insurer", PICC, ("5104",), "claim_handling")
    exported = await export(db, who, ExportRequest("settlements", 2023), shape)
    api = settlement_rows(await gql.data(INSURER_SETTLEMENTS, **INSURER))
    assert by("claimNumber", exported) == by("claimNumber", api)
    # Only the claims it carries, of its regions (not B's, not C's in 济宁), masked.
    assert [row["claimNumber"] for row in exported] == ["X-A1", "X-A2"]
    assert {row["name"] for row in exported} == {"张**"}
    assert {row["idNumber"] for row in exported} == {A[:4] + "*" * 10 + A[-4:]}
    # No assistance line, out-of-pocket, adjustment or recovery: they would name the category.
    assert not {
        "assistance",
        "secondaryAssistance",
        "outOfPocket",
        "adjustments",
        "recoveries",
    } & set(exported[0])


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "request_", "columns"),
    [
        (principal("finance"), ExportRequest("subsidies", 2023), ["regionCode", "assistanceFund"]),
        (principal("health"), ExportRequest("settlements", 2023), ["regionCode", "basicInsurance"]),
        (principal("civil_affairs"), ExportRequest("settlements", 2023), ["claimNumber"]),
        (
            principal("insurer", PICC, ("5104",), "claim_handling"),
            ExportRequest("alerts", 2023),
            ["alertId"],
        ),
        (
            principal("insurer", PICC, ("5104",), "claim_handling"),
            ExportRequest(
                "settlements", 2023, columns=["claimNumber", "assistance", "outOfPocket"]
            ),
            ["assistance", "outOfPocket"],
        ),
        (
            principal("insurer", PICC, ("5104",)),
            ExportRequest("settlements", 2023),
            ["idNumber", "name"],
        ),
    ],
    ids=[
        "finance-subsidies",
        "health-settlements",
        "civil-affairs-settlements",
        "insurer-alerts",
        "insurer-assistance-columns",
        "insurer-without-purpose",
    ],
)
def test_what_the_department_may_not_read_is_refused_naming_the_columns(
    who: Principal, request_: ExportRequest, columns: list[str]
) -> None:
    with pytest.raises(Forbidden) as refused:
        plan(request_, who, ACCESS, SCHEMA)
    forbidden = refused.value.extensions["forbidden"]
    assert set(columns) <= set(forbidden), forbidden
    assert who.department in str(refused.value) or "purpose" in str(refused.value)


@pytest.mark.parametrize(
    ("request_", "field", "value"),
    [
        (ExportRequest("invoices", 2023), "kind", "invoices"),
        (ExportRequest("alerts", 1800), "year", 1800),
        (ExportRequest("alerts", 2023, month=3), "month", 3),
        (ExportRequest("settlements", 2023, month=13), "month", 13),
        (ExportRequest("subsidies", 2023, fund="lottery"), "fund", "lottery"),
        (ExportRequest("subsidies", 2023, region="51x"), "region", "51x"),
        (ExportRequest("subsidies", 2023, columns=["salary"]), "columns", "salary"),
        (ExportRequest("settlements", 2023, hospital="H\x00"), "hospital", "H\\u0000"),
    ],
)
def test_a_bad_request_names_the_option_and_the_value(
    request_: ExportRequest, field: str, value: object
) -> None:
    with pytest.raises(InvalidInput) as bad:
        plan(request_, principal(), ACCESS, SCHEMA)
    assert (bad.value.field, bad.value.value) == (field, value)


async def test_rows_follow_the_token_regions(world: None, db: Database) -> None:
    only = principal(regions=("5104",))
    rows = await export(db, only, ExportRequest("subsidies", 2023))
    assert {row["idNumber"] for row in rows} == {A, B}
    with pytest.raises(Forbidden) as outside:
        plan(ExportRequest("subsidies", 2023, region="3708"), only, ACCESS, SCHEMA)
    assert (outside.value.extensions["field"], outside.value.extensions["value"]) == (
        "region",
        "3708",
    )


# -- the audit record ---------------------------------------------------------------------------


async def _records(db: Database) -> list[models.AuditRecord]:
    async with db.sessions() as session:
        return list(
            (
                await session.scalars(
                    select(models.AuditRecord)
                    .where(models.AuditRecord.action == "READ")
                    .order_by(models.AuditRecord.id)
                )
            ).all()
        )


@pytest.mark.parametrize(
    ("kind", "token"),
    [
        ("settlements", INSURER),
        ("alerts", {"department": "civil_affairs", "regions": ("5104", "3708")}),
        ("subsidies", {"department": "medical_insurance", "regions": ("5104", "3708")}),
    ],
)
async def test_one_audit_record_per_export_as_the_graphql_read_writes_it(
    world: None, gql: GraphQLClient, db: Database, kind: str, token: dict[str, Any]
) -> None:
    who = principal(
        token["department"], token.get("org", "mi-5104"), token["regions"], token.get("purpose")
    )
    planned = plan(ExportRequest(kind, 2023), who, ACCESS, SCHEMA)
    before = len(await _records(db))
    rows = await export(db, who, ExportRequest(kind, 2023))
    records = await _records(db)
    assert len(records) == before + 1
    exported = records[-1]
    # The same document run through the API writes its own record: the export's must match it.
    await gql.data(planned.document, **token)
    read = (await _records(db))[-1]
    assert exported.operation == read.operation == f"query Export{kind.capitalize()}"
    assert exported.query_text == read.query_text == planned.document
    assert sorted(exported.field_paths) == sorted(read.field_paths)
    assert set(exported.beneficiary_ids) == set(read.beneficiary_ids)
    assert {str(b) for b in exported.beneficiary_ids} == {row["beneficiaryId"] for row in rows}
    assert exported.department == who.department
    assert exported.detail == {"export": kind}


async def test_an_empty_export_writes_no_record(db: Database) -> None:
    assert await export(db, principal(), ExportRequest("alerts", 2023)) == []
    assert await _records(db) == []


# -- size --------------------------------------------------------------------------------------

LARGE = 50_000


async def test_a_large_export_streams_in_bounded_memory(db: Database, admin: AsyncEngine) -> None:
    async with admin.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO beneficiaries (id, id_number, name, gender, birth_date, region_code, "
                "created_by) SELECT gen_random_uuid(), '510402' || lpad(i::text, 12, '0'), "
                "'测试' || i, 'MALE', "
                "DATE '1970-01-01', '510402', 'test' FROM generate_series(1, :n) AS i"
            ),
            {"n": LARGE},
        )
        await conn.execute(
            text(
                "INSERT INTO enrollments (beneficiary_id, year, scheme, contribution, "
                "inclusive_commercial, enrolled_on, subsidy_assistance_fund, subsidy_finance, "
                "subsidy_individual, department, org) "
                "SELECT id, 2023, 'RESIDENT', 380, false, DATE '2022-12-01', 285, 0, 95, "
                "'medical_insurance', 'o' FROM beneficiaries"
            )
        )
    who = principal()
    planned = plan(ExportRequest("subsidies", 2023), who, ACCESS, SCHEMA)
    sink = _Counting()
    async with await Export.open(db, who, planned) as opened:
        assert len(opened.beneficiary_ids) == LARGE
        tracemalloc.start()
        try:
            await write_table(planned.columns, opened.rows(), Format.CSV, sink)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert sink.lines == LARGE + 1
    # The rows alone, held at once, would take tens of megabytes; streamed, a few fetches.
    assert peak < 4_000_000, f"peak {peak:,} bytes"
    async with db.sessions() as session:
        [record] = (await session.scalars(select(models.AuditRecord))).all()
        assert (
            await session.scalar(select(func.cardinality(models.AuditRecord.beneficiary_ids)))
            == LARGE
        )
        assert record.operation == "query ExportSubsidies"


class _Counting(io.RawIOBase):
    """A file that keeps nothing but the count of lines written."""

    def __init__(self) -> None:
        self.lines = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.lines += bytes(data).count(b"\n")
        return len(data)
