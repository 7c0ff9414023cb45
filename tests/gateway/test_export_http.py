"""GET /exports/{kind}.csv|.xlsx on a real server: streamed, equal to the GraphQL read of the
same token, refusals in the gateway's one JSON error shape."""

from __future__ import annotations

import httpx
import pytest

from gateway.tables import Format
from tests.conftest import GraphQLClient, bearer
from tests.resolvers.test_exports import (
    INSURER,
    INSURER_SETTLEMENTS,
    SETTLEMENTS,
    build_world,
    by,
    read_back,
    settlement_rows,
)


@pytest.fixture
async def world(gql: GraphQLClient) -> None:
    await build_world(gql)


MONEY = {"totalCost", "policyScopeCost", "basicInsurance", "criticalIllness"}


def _kinds(header: list[str]) -> list[str]:
    money = MONEY | {
        "inclusiveCommercial",
        "assistance",
        "secondaryAssistance",
        "outOfPocket",
        "adjustments",
        "recoveries",
    }
    return ["money" if name in money else "text" for name in header]


@pytest.mark.parametrize("shape", [Format.CSV, Format.XLSX])
async def test_an_export_streams_what_the_api_answers_the_same_token(
    world: None, gql: GraphQLClient, http: httpx.AsyncClient, shape: Format
) -> None:
    async with http.stream(
        "GET",
        f"/exports/settlements.{shape}",
        params={"year": 2023, "region": "5104"},
        headers=bearer(**INSURER),
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith(shape.media_type.split(";")[0])
        assert "content-length" not in response.headers  # streamed (chunked)
        assert "settlements-2023-5104" in response.headers["content-disposition"]
        body = b"".join([chunk async for chunk in response.aiter_bytes()])
    header_names = _header(body, shape)
    exported = read_back(body, shape, _kinds(header_names))
    api = settlement_rows(await gql.data(INSURER_SETTLEMENTS, **INSURER))
    assert by("claimNumber", exported) == by("claimNumber", api)
    assert {row["name"] for row in exported} == {"张**"}


def _header(body: bytes, shape: Format) -> list[str]:
    if shape is Format.CSV:
        first = body.decode("utf-8-sig").splitlines()[0]
        assert first.startswith("结算单号 claimNumber,定点医疗机构编码 hospitalCode")
        return [cell.split(" ")[-1] for cell in first.split(",")]
    import io

    import openpyxl

    sheet = openpyxl.load_workbook(io.BytesIO(body), read_only=True).active
    header = [str(cell) for cell in next(sheet.iter_rows(values_only=True))]
    assert header[:2] == ["结算单号 claimNumber", "定点医疗机构编码 hospitalCode"]
    return [cell.split(" ")[-1] for cell in header]


async def test_medical_insurance_gets_every_settlement_column(
    world: None, gql: GraphQLClient, http: httpx.AsyncClient
) -> None:
    response = await http.get("/exports/settlements.csv?year=2023", headers=bearer())
    assert response.status_code == 200, response.text
    names = _header(response.content, Format.CSV)
    exported = read_back(response.content, Format.CSV, _kinds(names))
    assert by("claimNumber", exported) == by(
        "claimNumber", settlement_rows(await gql.data(SETTLEMENTS))
    )


@pytest.mark.parametrize(
    ("url", "token", "status", "code", "extra"),
    [
        ("/exports/alerts.csv?year=2023", None, 401, "UNAUTHENTICATED", {}),
        (
            "/exports/subsidies.csv?year=2023",
            {"department": "finance"},
            403,
            "FORBIDDEN",
            {"forbidden": ["regionCode", "year", "assistanceFund", "finance", "individual"]},
        ),
        (
            "/exports/settlements.xlsx?year=2023&columns=claimNumber,assistance",
            INSURER,
            403,
            "FORBIDDEN",
            {"forbidden": ["assistance"]},
        ),
        (
            "/exports/subsidies.csv?year=2023&region=3708",
            {"regions": ("5104",)},
            403,
            "FORBIDDEN",
            {"field": "region", "value": "3708"},
        ),
        (
            "/exports/alerts.csv?year=twenty",
            {},
            400,
            "BAD_INPUT",
            {"field": "year", "value": "twenty"},
        ),
        ("/exports/alerts.csv", {}, 400, "BAD_INPUT", {"field": "year", "value": ""}),
        (
            "/exports/alerts.pdf?year=2023",
            {},
            400,
            "BAD_INPUT",
            {"field": "format", "value": "pdf"},
        ),
        (
            "/exports/invoices.csv?year=2023",
            {},
            400,
            "BAD_INPUT",
            {"field": "kind", "value": "invoices"},
        ),
        (
            "/exports/alerts.csv?year=2023&yaer=1",
            {},
            400,
            "BAD_INPUT",
            {"field": "yaer", "value": "1"},
        ),
    ],
)
async def test_refusals_are_json_errors_in_the_gateway_shape(
    db: object,
    http: httpx.AsyncClient,
    url: str,
    token: dict[str, object] | None,
    status: int,
    code: str,
    extra: dict[str, object],
) -> None:
    response = await http.get(url, headers={} if token is None else bearer(**token))
    assert response.status_code == status, response.text
    [error] = response.json()["errors"]
    extensions = error["extensions"]
    assert extensions["code"] == code
    assert extensions["requestId"] == response.headers["x-request-id"]
    assert {key: extensions[key] for key in extra} == extra
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_only_get_is_allowed(http: httpx.AsyncClient) -> None:
    response = await http.post("/exports/alerts.csv?year=2023", headers=bearer())
    assert response.status_code == 405
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_INPUT"
