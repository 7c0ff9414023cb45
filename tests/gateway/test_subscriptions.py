"""GraphQL subscriptions over a real WebSocket (graphql-transport-ws) on the real HTTP server:
the token at connection_init, the department's schema and field rules, the batch read audit;
and the whole discovery loop pushed to civil affairs by subscription and webhook
(gateway/events.py, schema/change.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

import pytest
import websockets
from sqlalchemy import select

from gateway.auth import issue_token
from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from policies.benefits import PolicySet
from tests.conftest import GraphQLClient, make_token
from tests.factories import id_number
from tests.gateway.test_webhooks import dispatching, register_hook
from tests.gateway.webhook_receiver import SECRET, receiving, verify
from tests.resolvers.test_settlement_governance import (
    PANZHIHUA,
    enroll,
    record,
    register,
    settle,
    stay,
)

PERSON = id_number(PANZHIHUA, date(1966, 6, 6), 61)
CIVIL = {"department": "civil_affairs", "org": "mz-5104", "regions": ("5104",)}
PICC = {"department": "insurer", "org": "picc-5104", "purpose": "claim_handling"}
PROTOCOL = "graphql-transport-ws"
COSTLY = ("200000.00", "150000.00")  # past 攀枝花's threshold (50% of PCDI) in one stay


def ws_url(http_server: str) -> str:
    return http_server.replace("http://", "ws://") + "/graphql"


class Socket:
    """One graphql-transport-ws connection."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, seconds: float = 20) -> dict[str, Any]:
        return dict(json.loads(await asyncio.wait_for(self.ws.recv(), seconds)))

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> None:
        payload = {"query": query, "variables": variables or {}}
        await self.send({"id": "1", "type": "subscribe", "payload": payload})

    async def next(self, seconds: float = 20) -> dict[str, Any]:
        message = await self.receive(seconds)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        return dict(message["payload"]["data"])


@asynccontextmanager
async def connected(http_server: str, payload: dict[str, Any]) -> AsyncIterator[Socket]:
    async with websockets.connect(ws_url(http_server), subprotocols=[PROTOCOL]) as ws:
        socket = Socket(ws)
        await socket.send({"type": "connection_init", "payload": payload})
        yield socket


@asynccontextmanager
async def session_of(http_server: str, **token: Any) -> AsyncIterator[Socket]:
    bearer = {"Authorization": f"Bearer {make_token(**token)}"}
    async with connected(http_server, bearer) as socket:
        assert (await socket.receive())["type"] == "connection_ack"
        yield socket


async def cursor_now(gql: GraphQLClient) -> str:
    """The feed's position now: a subscription from it misses nothing written after."""
    return str((await gql.data("{ changes(first: 100) { cursor } }"))["changes"]["cursor"])


async def insured(gql: GraphQLClient) -> None:
    await register(gql, PERSON, PANZHIHUA)
    await enroll(gql, PERSON, 2023)


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
        {
            "Authorization": "Bearer "
            + issue_token(
                "forged-secret-" + "y" * 40,
                subject="mallory",
                department="medical_insurance",
                org="mi-5104",
                regions=("5104",),
            )
        },
    ],
    ids=["missing", "malformed", "forged"],
)
async def test_a_connection_without_a_valid_token_is_closed_before_any_operation(
    http_server: str, db: Database, payload: dict[str, Any]
) -> None:
    async with connected(http_server, payload) as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.receive()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, "Forbidden")


async def test_a_forbidden_field_or_subscription_is_refused_with_its_paths(
    http_server: str, db: Database
) -> None:
    async with session_of(http_server, **CIVIL) as socket:
        await socket.subscribe("subscription { claimChanged { cursor } }")
        message = await socket.receive()
    assert message["type"] == "error"
    [error] = message["payload"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["extensions"]["forbidden"] == ["claimChanged"]
    async with session_of(http_server, **PICC) as socket:
        await socket.subscribe(
            "subscription { claimChanged { claim { settlement { assistance outOfPocket } } } }"
        )
        message = await socket.receive()
    [error] = message["payload"]
    assert error["extensions"]["forbidden"] == [
        "claimChanged.claim.settlement.assistance",
        "claimChanged.claim.settlement.outOfPocket",
    ]
    async with session_of(http_server, **CIVIL) as socket:  # no query over the socket
        await socket.subscribe("{ changes { cursor } }")
        message = await socket.receive()
    assert message["type"] == "error"


async def test_an_insurer_follows_its_own_claims_masked_and_each_batch_is_audited(
    http_server: str, gql: GraphQLClient, db: Database
) -> None:
    await insured(gql)
    since = await cursor_now(gql)
    async with session_of(http_server, **PICC) as socket:
        await socket.subscribe(
            """subscription($s: String) { claimChanged(since: $s) { type claim {
              claimNumber totalCost beneficiary { name } } } }""",
            {"s": since},
        )
        for number, carrier in (("S-OTHER", "cpic-5104"), ("S-OWN", "picc-5104")):
            await settle(
                gql, stay(PERSON, number, "2023-03-01", "9000.00", "8000.00", carrier=carrier)
            )
        change = (await socket.next())["claimChanged"]
    assert change == {
        "type": "CLAIM_CHANGED",
        "claim": {"claimNumber": "S-OWN", "totalCost": "9000.00", "beneficiary": {"name": "治*"}},
    }
    async with db.sessions() as session:
        records = (
            await session.scalars(
                select(models.AuditRecord).where(models.AuditRecord.department == "insurer")
            )
        ).all()
    reads = [r for r in records if r.action == "READ"]
    assert [r.operation for r in reads] == ["subscription claimChanged"]
    assert set(reads[0].field_paths) >= {
        "claimChanged.claim.totalCost",
        "claimChanged.claim.beneficiary.name",
    }
    assert len(reads[0].beneficiary_ids) == 1


async def test_the_discovery_loop_is_pushed_and_fed_back(
    http_server: str,
    gql: GraphQLClient,
    local: GraphQLClient,
    db: Database,
    settings: Settings,
    policies: PolicySet,
) -> None:
    """Settle past the threshold → alert → civil affairs' subscription and webhook deliver it →
    civil affairs records 低保 → the alert is RECOGNISED and assistance re-run (ADJUSTMENT)."""
    await insured(gql)
    with receiving() as receiver:
        await register_hook(local, receiver.url, ["ALERT_CHANGED"], **CIVIL)
        since = await cursor_now(gql)
        async with (
            dispatching(settings, db, policies),
            session_of(http_server, **CIVIL) as civil,
            session_of(http_server) as medical,
        ):
            await civil.subscribe(
                """subscription($s: String) { alertChanged(since: $s) { type alert {
                  id status outOfPocket threshold identity { category } } } }""",
                {"s": since},
            )
            await medical.subscribe(
                """subscription($s: String) { claimChanged(since: $s) { claim { claimNumber
                  settlements { kind } } } }""",
                {"s": since},
            )
            await settle(gql, stay(PERSON, "L-1", "2023-03-01", *COSTLY))
            raised = (await civil.next())["alertChanged"]["alert"]
            assert raised["status"] == "OPEN"
            assert float(raised["outOfPocket"]) > float(raised["threshold"])
            await receiver.wait_for(1)
            assert receiver.bodies()[0]["data"]["alert"]["id"] == raised["id"]
            assert verify(SECRET, *receiver.accepted[0])
            # civil affairs recognises the person: 追溯 re-runs the year
            assert "errors" not in await record(gql, PERSON, "MINIMUM_LIVING", "2023-06-01")
            recognised = (await civil.next())["alertChanged"]["alert"]
            while recognised["status"] != "RECOGNISED":  # the figure may move first
                recognised = (await civil.next())["alertChanged"]["alert"]
            assert recognised["identity"] == {"category": "MINIMUM_LIVING"}
            assert float(recognised["outOfPocket"]) < float(raised["outOfPocket"])
            kinds = [
                [e["kind"] for e in (await medical.next())["claimChanged"]["claim"]["settlements"]]
                for _ in range(2)
            ]
            assert kinds[-1] == ["ORIGINAL", "ADJUSTMENT"]
            await receiver.wait_for(2)
    statuses = [body["data"]["alert"]["status"] for body in receiver.bodies()]
    assert statuses[0] == "OPEN"
    assert statuses[-1] == "RECOGNISED"


async def test_rural_revitalisation_follows_the_identities_recorded_by_civil_affairs(
    http_server: str, gql: GraphQLClient, db: Database
) -> None:
    await insured(gql)
    since = await cursor_now(gql)
    rural = {"department": "rural_revitalisation", "org": "xczx-5104", "regions": ("5104",)}
    async with session_of(http_server, **rural) as socket:
        await socket.subscribe(
            """subscription($s: String) { identityChanged(since: $s) { type
              beneficiary { regionCode identities { category validFrom } } } }""",
            {"s": since},
        )
        assert "errors" not in await record(gql, PERSON, "MINIMUM_LIVING", "2023-06-01")
        change = (await socket.next())["identityChanged"]
    assert change == {
        "type": "IDENTITY_CHANGED",
        "beneficiary": {
            "regionCode": PANZHIHUA,
            "identities": [{"category": "MINIMUM_LIVING", "validFrom": "2023-06-01"}],
        },
    }
    async with session_of(http_server, **PICC) as socket:  # insurers read no identities
        await socket.subscribe("subscription { identityChanged { type } }")
        message = await socket.receive()
    assert message["payload"][0]["extensions"]["forbidden"] == ["identityChanged"]
