"""Operations (issue 10, point 13): ``/metrics`` in Prometheus text, one structured log line per
request, CORS for configured dashboard origins; all over a real HTTP server, none of them
showing a personal value."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import logs
from gateway.app import create_app
from gateway.config import Settings
from gateway.storage.audit import query_hash
from gateway.storage.database import Database
from policies.benefits import PolicySet
from tests.conftest import GraphQLClient, bearer, in_process, serving
from tests.resolvers.test_settlement import ID, person, stay

NAME = "王五"  # the name tests.resolvers.test_settlement.person registers with ID
DASHBOARD = "https://dashboard.example.cn"
SETTLE = "mutation($i: SettleClaimInput!) { settleClaim(input: $i) { basicInsurance } }"
REVERSE = """mutation { reverseSettlement(claimNumber: "C1", reason: "duplicate") {
  settlement { assistance } } }"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], Decimal]


async def scrape(http: httpx.AsyncClient) -> tuple[str, Samples]:
    """The /metrics text (fetched without a token) and its samples by name and labels."""
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = Decimal(repr(s.value))
    return response.text, samples


def change(before: Samples, after: Samples, name: str, **labels: str) -> Decimal:
    """How much a sample grew between two scrapes, to the cent (float sums of yuan)."""
    key = (name, tuple(sorted(labels.items())))
    return (after.get(key, Decimal(0)) - before.get(key, Decimal(0))).quantize(Decimal("0.01"))


async def test_metrics_count_settlements_and_their_amounts_by_payer(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    gql = GraphQLClient(http)
    text_before, before = await scrape(http)
    await person(gql, ("MINIMUM_LIVING", "2021-06-01", None))
    settled = await gql.data(SETTLE, {"i": stay("C1", "2023-03-01", "30000.00", "26000.00")})
    assert settled["settleClaim"]["basicInsurance"] == "20480.00"
    assert (await gql.data(REVERSE))["reverseSettlement"]["settlement"]["assistance"] == "0.00"
    text, after = await scrape(http)

    settlements = "medgw_settlements_total"
    assert change(before, after, settlements, kind="ORIGINAL") == 1
    assert change(before, after, settlements, kind="REVERSAL") == 1
    yuan = "medgw_settled_yuan_total"
    paid = {p: change(before, after, yuan, payer=p, direction="paid") for p in PAYERS}
    recovered = {p: change(before, after, yuan, payer=p, direction="recovered") for p in PAYERS}
    # 王五's stay (tests/resolvers/test_settlement.py): 20480.00 basic, 3864.00 assistance.
    assert paid == {
        **ZEROS,
        "basicInsurance": Decimal("20480.00"),
        "assistance": Decimal("3864.00"),
    }
    assert recovered == paid
    # register, enrollment, settlement and reversal by medical_insurance; the identity by another.
    requests = "medgw_requests_total"
    assert change(before, after, requests, department="medical_insurance", operation="mutation",
                  code="OK") == 4  # fmt: skip
    assert change(before, after, "medgw_audit_append_duration_seconds_count") >= 5
    assert after[("medgw_db_pool_size", ())] == settings.pool_size
    assert 0 <= after[("medgw_db_pool_in_use", ())] <= settings.pool_size
    assert change(before, after, "medgw_request_duration_seconds_count", operation="mutation") == 5
    for personal in (ID, NAME, 'C1"', "duplicate"):
        assert personal not in text
    assert text_before != text


PAYERS = ("basicInsurance", "criticalIllness", "inclusiveCommercial", "assistance",
          "secondaryAssistance")  # fmt: skip
ZEROS = dict.fromkeys(PAYERS, Decimal("0.00"))


async def test_metrics_count_refusals_by_their_code(http: httpx.AsyncClient) -> None:
    _, before = await scrape(http)
    assert (await http.post("/graphql", json={"query": "{ __typename }"})).status_code == 401
    bad = await http.post(
        "/graphql",
        json={"query": "query($n: String) { beneficiary(idNumber: $n) { nope } }",
              "variables": {"n": ID}},
        headers=bearer(),
    )  # fmt: skip
    assert bad.json()["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    text, after = await scrape(http)
    requests = "medgw_requests_total"
    assert change(before, after, requests, department="none", operation="none",
                  code="UNAUTHENTICATED") == 1  # fmt: skip
    assert change(before, after, requests, department="medical_insurance", operation="query",
                  code="BAD_INPUT") == 1  # fmt: skip
    assert ID not in text


class Captured:
    """The lines the ``medgw`` loggers write, formatted as MEDGW_LOG_FORMAT=json would."""

    def __init__(self) -> None:
        self.out = io.StringIO()
        self.handler = logging.StreamHandler(self.out)
        self.handler.setFormatter(logs.formatter("json"))

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]

    def of(self, request_id: str, count: int = 1) -> list[dict[str, object]]:
        """The request lines of ``request_id``: the server writes them just after answering."""
        deadline = time.monotonic() + 5
        while True:
            found = [
                line for line in self.lines()
                if line["logger"] == "medgw.requests" and line.get("request_id") == request_id
            ]  # fmt: skip
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


@pytest.fixture
def captured() -> Iterator[Captured]:
    capture = Captured()
    logger = logging.getLogger("medgw")
    logger.addHandler(capture.handler)
    yield capture
    logger.removeHandler(capture.handler)


async def test_a_request_leaves_one_json_line_without_personal_values(
    http: httpx.AsyncClient, captured: Captured
) -> None:
    gql = GraphQLClient(http)
    await person(gql)
    response = await http.post(
        "/graphql",
        json={"query": "query Person($n: String) { beneficiary(idNumber: $n) { name } }",
              "variables": {"n": ID}},
        headers=bearer(org="mi-5104"),
    )  # fmt: skip
    assert response.json() == {"data": {"beneficiary": {"name": NAME}}}
    request_id = response.headers["x-request-id"]
    [line] = captured.of(request_id)
    assert {k: v for k, v in line.items() if k not in ("time", "message")} == {
        "level": "INFO",
        "logger": "medgw.requests",
        "request_id": request_id,
        "method": "POST",
        "path": "/graphql",
        "department": "medical_insurance",
        "org": "mi-5104",
        "operation": "Person",
        "operation_type": "query",
        "status": 200,
        "code": "OK",
        "duration_ms": line["duration_ms"],
    }
    assert isinstance(line["duration_ms"], float)
    assert 0 < line["duration_ms"] < 30_000
    assert [x for x in captured.lines() if x.get("request_id") == request_id] == [line]
    output = captured.out.getvalue()
    assert ID not in output
    assert NAME not in output
    assert "idNumber" not in output


async def test_a_refused_value_is_logged_by_its_code_only(
    http: httpx.AsyncClient, captured: Captured
) -> None:
    wrong = ID[:-1] + ("4" if ID[-1] != "4" else "5")  # a wrong check character
    response = await http.post(
        "/graphql",
        json={"query": "mutation Register($i: RegisterBeneficiaryInput!) { "
                       "registerBeneficiary(input: $i) { id } }",
              "variables": {"i": {"idNumber": wrong, "name": NAME, "regionCode": "510402"}}},
        headers=bearer(),
    )  # fmt: skip
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    [line] = captured.of(response.headers["x-request-id"])
    assert (line["operation"], line["operation_type"], line["code"], line["status"]) == (
        "Register",
        "mutation",
        "BAD_INPUT",
        200,
    )
    output = captured.out.getvalue()
    assert wrong not in output
    assert NAME not in output


async def test_an_unauthenticated_request_has_its_line_too(
    http: httpx.AsyncClient, captured: Captured
) -> None:
    response = await http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": "Bearer x"}
    )
    assert response.status_code == 401
    [line] = captured.of(response.headers["x-request-id"])
    assert (line["department"], line["org"], line["operation"]) == ("none", None, None)
    assert (line["operation_type"], line["code"], line["status"]) == (
        "none",
        "UNAUTHENTICATED",
        401,
    )


@pytest.fixture(scope="module")
async def dashboard(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway with CORS for one dashboard origin and without metrics."""
    configured = settings.model_copy(update={"cors_origins": (DASHBOARD,), "metrics": False})
    with serving(create_app(configured)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_cors_preflight_from_the_dashboard_needs_no_token(
    dashboard: httpx.AsyncClient,
) -> None:
    response = await dashboard.options("/graphql", headers=preflight(DASHBOARD))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == DASHBOARD
    assert set(response.headers["access-control-allow-methods"].split(", ")) >= {"GET", "POST"}
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "content-type"} <= allowed
    assert "access-control-allow-credentials" not in response.headers
    query = await dashboard.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": DASHBOARD, **bearer()}
    )
    assert query.json() == {"data": {"__typename": "Query"}}
    assert query.headers["access-control-allow-origin"] == DASHBOARD
    assert query.headers["access-control-expose-headers"].lower() == "x-request-id"


async def test_cors_headers_only_for_configured_origins(
    dashboard: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    other = await dashboard.options("/graphql", headers=preflight("https://evil.example.com"))
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    query = await dashboard.post(
        "/graphql",
        json={"query": "{ __typename }"},
        headers={"Origin": "https://evil.example.com", **bearer()},
    )
    assert "access-control-allow-origin" not in query.headers
    # No origin configured (the default): no CORS headers at all, even for the dashboard.
    default = await http.options("/graphql", headers=preflight(DASHBOARD))
    assert not [h for h in default.headers if h.startswith("access-control-")]


async def test_metrics_can_be_turned_off(dashboard: httpx.AsyncClient) -> None:
    response = await dashboard.get("/metrics")
    assert response.status_code == 404
    assert "medgw_" not in response.text


async def test_traces_carry_no_query_text_and_no_argument_values(
    settings: Settings, db: Database, policies: PolicySet
) -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exported = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    trace.set_tracer_provider(provider)
    query = f'query Person {{ beneficiary(idNumber: "{ID}") {{ name }} }}'
    async with in_process(settings.model_copy(update={"otel": True}), db, policies) as client:
        gql = GraphQLClient(client)
        await person(gql)
        assert await gql.data(query) == {"beneficiary": {"name": NAME}}
    spans = [
        s for s in exported.get_finished_spans() if s.attributes.get("query") == query_hash(query)
    ]
    [operation] = spans
    assert operation.name == "GraphQL query: Person"
    children = [
        s
        for s in exported.get_finished_spans()
        if s.parent and s.parent.span_id == operation.context.span_id
    ]
    assert {s.name for s in children} >= {
        "GraphQL Parsing",
        "GraphQL Validation",
        "GraphQL Resolving: beneficiary",
    }
    recorded = json.dumps(
        [[s.name, dict(s.attributes or {})] for s in exported.get_finished_spans()],
        ensure_ascii=False,
    )
    assert ID not in recorded
    assert NAME not in recorded
    assert "graphql.param" not in recorded
