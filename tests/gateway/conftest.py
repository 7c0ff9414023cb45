"""Fixtures of the webhook tests: an app whose egress rules let webhooks reach the local test
receivers (``MEDGW_WEBHOOK_ALLOW_PRIVATE``, off in the shared app and by default)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.storage.database import Database
from policies.benefits import PolicySet
from resolvers import egress
from tests.conftest import GraphQLClient
from tests.gateway.webhook_receiver import Receiver, receiving

LOCAL_RECEIVERS = {"webhook_allow_private": True}
"""What tests that deliver to a receiver on 127.0.0.1 set explicitly."""


@pytest.fixture(scope="session")
async def local_app(settings: Settings, db: Database, policies: PolicySet) -> AsyncIterator[Any]:
    application = create_app(settings.model_copy(update=LOCAL_RECEIVERS), db=db, policies=policies)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def local(local_app: Any) -> AsyncIterator[GraphQLClient]:
    """A GraphQL client of the app that accepts local receivers."""
    transport = httpx.ASGITransport(app=local_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield GraphQLClient(client)


def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Replace the egress rules' resolver by a table, host → addresses, that the test fills
    and may change (a host not in it does not resolve)."""
    records: dict[str, list[str]] = {}

    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in records:
            raise OSError(f"no such host {host}")
        return list(records[host])

    monkeypatch.setattr(egress, "resolve", resolve)
    return records


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    return fake_dns(monkeypatch)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real local HTTP receiver (tests/gateway/webhook_receiver.py)."""
    with receiving() as r:
        yield r
