"""Webhooks probed by a department token as an attacker would: internal receivers (SSRF) refused
at registration and again at delivery (DNS rebinding), no redirect followed, endless answers cut
off, the secret never shown again nor kept in the audit trail, limits on what one registers, and
no department reaching another's webhooks or deliveries (resolvers/egress.py,
resolvers/webhooks.py, gateway/events.py)."""

from __future__ import annotations

import base64
import json
import logging
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select, text

from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from gateway.storage.outbox import Webhook, WebhookDelivery, emit
from policies.benefits import PolicySet
from tests.conftest import GraphQLClient
from tests.factories import id_number
from tests.gateway.test_webhooks import (
    DELIVERIES,
    PICC,
    REGISTER,
    claim,
    dispatching,
    insured,
    register_hook,
    statuses,
    until,
)
from tests.gateway.webhook_receiver import SECRET, Receiver, receiving
from tests.resolvers.test_settlement_governance import PANZHIHUA

CIVIL = {"department": "civil_affairs", "org": "mz-5104", "regions": ("5104",)}
CIVIL_ELSEWHERE = {"department": "civil_affairs", "org": "mz-3708", "regions": ("3708",)}

INTERNAL_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://2130706433/hook",  # 127.0.0.1 in decimal
    "http://0177.0.0.1/hook",  # in octal
    "http://0x7f.0.0.1/hook",  # in hex
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud metadata
    "http://10.0.0.1/hook",
    "http://192.168.0.10/hook",
    "http://[fe80::1]/hook",
    "http://224.0.0.1/hook",
    "http://0.0.0.0/hook",
    "https://user:password@example.com/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
]


async def count(db: Database, table: type[Any]) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_internal_receivers_are_refused_naming_the_url_and_nothing_is_stored(
    gql: GraphQLClient, db: Database
) -> None:
    for url in INTERNAL_URLS:
        variables = {"i": {"url": url, "events": ["CLAIM_CHANGED"], "secret": SECRET}}
        error = await gql.error(REGISTER, variables)
        extensions = error["extensions"]
        assert (extensions["code"], extensions["field"], extensions["value"]) == (
            "BAD_INPUT",
            "url",
            url,
        ), error
    assert await count(db, Webhook) == 0
    async with db.sessions() as session:
        written = await session.scalar(
            select(func.count()).where(models.AuditRecord.operation == "registerWebhook")
        )
    assert written == 0


async def test_a_public_receiver_over_plain_http_is_refused(
    gql: GraphQLClient, db: Database, dns: dict[str, list[str]]
) -> None:
    dns["hooks.example"] = ["93.184.216.34"]
    variables = {"i": {"url": "http://hooks.example/h", "events": ["CLAIM_CHANGED"]}}
    error = await gql.error(REGISTER, {"i": {**variables["i"], "secret": SECRET}})
    assert error["extensions"]["field"] == "url"
    assert "https is required" in error["message"]
    https = {"url": "https://hooks.example/h", "events": ["CLAIM_CHANGED"], "secret": SECRET}
    assert (await gql.data(REGISTER, {"i": https}))["registerWebhook"]["events"] == [
        "CLAIM_CHANGED"
    ]


async def test_a_host_rebound_to_loopback_after_registration_receives_nothing(
    gql: GraphQLClient,
    db: Database,
    settings: Settings,
    policies: PolicySet,
    dns: dict[str, list[str]],
) -> None:
    """DNS rebinding: public when registered, 127.0.0.1 when delivered; the delivery re-checks
    and never connects."""
    await insured(gql)
    with receiving() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        dns["rebind.example"] = ["93.184.216.34"]
        await register_hook(gql, f"https://rebind.example:{port}/hook", ["CLAIM_CHANGED"])
        dns["rebind.example"] = ["127.0.0.1"]
        async with dispatching(settings, db, policies, webhook_allow_private=False):
            await claim(gql, "R-1")

            async def tried() -> bool:
                return any(a >= 1 for _, a in await statuses(db))

            await until(tried)
        assert receiver.accepted == []
        assert receiver.refused == 0
    [row] = (await gql.data(DELIVERIES))["webhookDeliveries"]
    assert row["status"] == "PENDING"
    assert row["lastError"] == "refused: rebind.example: 127.0.0.1 is loopback"


async def test_a_delivery_goes_to_the_address_checked_with_the_host_name_kept(
    gql: GraphQLClient,
    local: GraphQLClient,
    db: Database,
    settings: Settings,
    policies: PolicySet,
    dns: dict[str, list[str]],
    receiver: Receiver,
) -> None:
    """receiver.test exists only in the egress rules' DNS: the delivery reaches the receiver
    because it connects to the address checked, not to a name resolved again."""
    await insured(gql)
    port = receiver.url.split(":")[2].split("/")[0]
    dns["receiver.test"] = ["127.0.0.1"]
    await register_hook(local, f"http://receiver.test:{port}/hook", ["CLAIM_CHANGED"])
    async with dispatching(settings, db, policies):
        await claim(gql, "H-1")
        await receiver.wait_for(1)
    [(headers, _)] = receiver.accepted
    assert headers["host"] == f"receiver.test:{port}"


async def test_redirects_are_not_followed(
    gql: GraphQLClient,
    local: GraphQLClient,
    db: Database,
    settings: Settings,
    policies: PolicySet,
    receiver: Receiver,
) -> None:
    await insured(gql)
    await register_hook(local, receiver.url, ["CLAIM_CHANGED"])
    receiver.redirecting = True
    async with dispatching(settings, db, policies, webhook_max_attempts=2):
        await claim(gql, "X-1")

        async def dead() -> bool:
            return await statuses(db) == [("DEAD", 2)]

        await until(dead)
    assert receiver.elsewhere == 0
    [row] = (await gql.data(DELIVERIES))["webhookDeliveries"]
    assert row["lastError"] == "HTTP 307"


@pytest.mark.parametrize(
    ("how", "outcome"),
    [("endless", ("DELIVERED", 1)), ("trickling", ("DEAD", 1))],
)
async def test_an_endless_answer_is_cut_off_at_the_cap_or_the_timeout(
    gql: GraphQLClient,
    local: GraphQLClient,
    db: Database,
    settings: Settings,
    policies: PolicySet,
    receiver: Receiver,
    how: str,
    outcome: tuple[str, int],
) -> None:
    """An answer that never ends is read up to MEDGW_WEBHOOK_MAX_RESPONSE_BYTES (fast) or until
    MEDGW_WEBHOOK_TIMEOUT_S (slow): the dispatcher is never held by a receiver."""
    await insured(gql)
    await register_hook(local, receiver.url, ["CLAIM_CHANGED"])
    setattr(receiver, how, True)
    overrides = {"webhook_max_attempts": 1, "webhook_timeout_s": 1.5}
    async with dispatching(settings, db, policies, **overrides):
        await claim(gql, "E-1")

        async def done() -> bool:
            return await statuses(db) == [outcome]

        await until(done)
    [row] = (await gql.data(DELIVERIES))["webhookDeliveries"]
    if how == "trickling":
        assert row["lastError"] == "no answer within 1.5 s"


async def test_the_secret_is_validated_write_only_and_never_audited(
    gql: GraphQLClient, local: GraphQLClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = "http://127.0.0.1:9/hook"
    bad = {
        "plain-text": "expected whsec_",
        "whsec_not*base64!": "not base64",
        "whsec_" + base64.b64encode(b"k" * 16).decode(): "the key is 16 bytes",
        "whsec_" + base64.b64encode(b"k" * 65).decode(): "the key is 65 bytes",
    }
    for secret, reason in bad.items():
        variables = {"i": {"url": url, "events": ["CLAIM_CHANGED"], "secret": secret}}
        error = await local.error(REGISTER, variables)
        assert (error["extensions"]["field"], error["extensions"]["value"]) == (
            "secret",
            "whsec_…",
        )
        assert reason in error["message"]
        assert secret not in json.dumps(error)
    # written inline next to a field that reads personal data: the read audit keeps the query
    # text, but not the secret
    other = id_number(PANZHIHUA, date(1980, 1, 2), 33)
    inline = (
        f'mutation {{ registerWebhook(input: {{url: "{url}", events: [CLAIM_CHANGED], '
        f'secret: "{SECRET}"}}) {{ id url events }} registerBeneficiary(input: {{idNumber: '
        f'"{other}", name: "某人", regionCode: "{PANZHIHUA}"}}) {{ id name }} }}'
    )
    written = await local.data(inline)
    assert set(written["registerWebhook"]) == {"id", "url", "events"}
    assert written["registerBeneficiary"]["name"] == "某人"
    webhook_type = await gql.data('{ __type(name: "Webhook") { fields { name } } }')
    assert "secret" not in {f["name"] for f in webhook_type["__type"]["fields"]}
    listed = await local.data("{ webhooks { id url events createdAt } }")
    assert SECRET not in json.dumps(listed)
    async with db.sessions() as session:
        trail = await session.scalar(
            text("SELECT string_agg(to_jsonb(a)::text, ' ') FROM audit_log a")
        )
    assert trail is not None
    assert "registerWebhook" in trail
    assert other in trail  # the read record of the same document is there, with its query
    assert SECRET not in trail
    assert SECRET.removeprefix("whsec_") not in trail
    assert caplog.records  # the requests were logged, the secrets were not
    assert all(secret not in caplog.text for secret in [SECRET, *bad])


async def test_events_are_known_named_once_and_webhooks_limited_per_organisation(
    gql: GraphQLClient, local: GraphQLClient, db: Database, settings: Settings
) -> None:
    url = "http://127.0.0.1:9/hook"
    twice = {"url": url, "events": ["CLAIM_CHANGED", "CLAIM_CHANGED"], "secret": SECRET}
    error = await local.error(REGISTER, {"i": twice})
    assert (error["extensions"]["field"], error["extensions"]["value"]) == (
        "events",
        "CLAIM_CHANGED",
    )
    assert "named twice" in error["message"]
    unknown = {"url": url, "events": ["EVERYTHING"], "secret": SECRET}
    error = await local.error(REGISTER, {"i": unknown})
    assert error["extensions"]["code"] == "BAD_INPUT"
    assert "EVERYTHING" in error["message"]
    long = {"url": url + "?" + "a" * 2000, "events": ["CLAIM_CHANGED"], "secret": SECRET}
    error = await local.error(REGISTER, {"i": long})
    assert error["extensions"]["field"] == "url"
    assert "longer than 2000" in error["message"]
    assert await count(db, Webhook) == 0
    limit = settings.webhooks_per_org
    for _ in range(limit):
        await register_hook(local, url, ["CLAIM_CHANGED"])
    error = await local.error(REGISTER, {"i": {**twice, "events": ["CLAIM_CHANGED"]}})
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("CONFLICT", "url")
    assert f"MEDGW_WEBHOOKS_PER_ORG = {limit}" in error["message"]
    assert await count(db, Webhook) == limit
    await register_hook(local, url, ["CLAIM_CHANGED"], org="mi-3708")  # another organisation
    assert await count(db, Webhook) == limit + 1


async def test_no_department_or_organisation_reaches_another_s_webhooks(
    gql: GraphQLClient, local: GraphQLClient, db: Database
) -> None:
    await insured(gql)
    hook = await register_hook(local, "http://127.0.0.1:9/hook", ["ALERT_CHANGED"], **CIVIL)
    async with db.transaction() as session:
        person = await session.scalar(select(models.Beneficiary.id))
        assert person is not None
        await emit(session, "ALERT_CHANGED", person, "1")
        event_id = await session.scalar(text("SELECT max(id) FROM outbox_events"))
        session.add(
            WebhookDelivery(webhook_id=hook["id"], event_id=event_id, status="DEAD", attempts=8)
        )
    [owned] = (await gql.data(DELIVERIES, **CIVIL))["webhookDeliveries"]
    assert owned["status"] == "DEAD"
    by_hook = "query($w: ID) { webhookDeliveries(webhookId: $w) { id } }"
    for other in ({}, PICC, CIVIL_ELSEWHERE):
        assert (await gql.data("{ webhooks { id } }", **other))["webhooks"] == []
        assert (await gql.data(DELIVERIES, **other))["webhookDeliveries"] == []
        assert (await gql.data(by_hook, {"w": hook["id"]}, **other))["webhookDeliveries"] == []
        for mutation, key in (
            ("mutation($id: ID!) { deleteWebhook(id: $id) { id } }", hook["id"]),
            ("mutation($id: ID!) { redeliverWebhook(id: $id) { id } }", owned["id"]),
        ):
            error = await gql.error(mutation, {"id": key}, **other)
            assert (error["extensions"]["code"], error["extensions"]["field"]) == (
                "NOT_FOUND",
                "id",
            )
    assert await statuses(db) == [("DEAD", 8)]
    assert [h["id"] for h in (await gql.data("{ webhooks { id } }", **CIVIL))["webhooks"]] == [
        hook["id"]
    ]


@pytest.mark.parametrize(
    "written",
    [
        'mutation {{ registerWebhook(input: {{url: "u", events: [], secret: "{s}"}}) {{ id }} }}',
        'mutation {{ registerWebhook(input: {{url: "u", secret: """{s}"""}}) {{ id }} }}',
        'mutation {{ x(secret: "{s}") {{ id }} }}',
    ],
    ids=["input-field", "block-string", "argument"],
)
async def test_no_audit_record_keeps_a_secret_whichever_path_writes_it(
    db: Database, written: str
) -> None:
    """The redaction is the audit store's (audit.append), not one writer's: any record whose
    query text carries a secret literal keeps ``…`` instead, and the chain still verifies."""
    from gateway.auth import Principal
    from gateway.storage import audit

    query = written.format(s=SECRET)
    async with db.transaction() as session:
        await audit.append(
            session,
            Principal("t", "medical_insurance", "mi", ("5104",)),
            action="WRITE",
            operation="registerWebhook",
            query=query,
        )
    async with db.sessions() as session:
        kept = await session.scalar(
            select(models.AuditRecord.query_text).order_by(models.AuditRecord.id.desc()).limit(1)
        )
    assert kept is not None
    assert SECRET not in kept
    assert "…" in kept
    assert "registerWebhook" in kept or "x(" in kept
    async with db.sessions() as session:
        checked = await audit.verify(session)
    assert (checked.broken_at, checked.reason) == (None, None)
    assert checked.checked >= 1
