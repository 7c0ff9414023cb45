"""Change notifications at the edge: GraphQL subscriptions over WebSocket (graphql-transport-ws
on ``/graphql``) and the webhook dispatcher.

**Subscriptions.** A WebSocket carries no ``Authorization`` header from a browser, so the token
comes in ``connection_init``'s payload (``{"Authorization": "Bearer <JWT>"}``) and is checked
exactly as the HTTP one (:func:`gateway.auth.authenticate`): missing, forged, expired or of an
unknown department, the socket is closed with 4403 before any operation. Each ``subscribe`` then
runs on the schema of the token's department (its extensions refuse forbidden fields with the
paths, mask, limit), as a subscription only (no query or mutation over the socket), with a
context of its own that is closed when the subscription ends.

**Webhooks.** :class:`WebhookDispatcher` (``MEDGW_WEBHOOKS``, one per process) fans the outbox
out to deliveries and sends the due ones (:mod:`resolvers.webhooks`). A delivery's body is the
change read *as the registering department*: one GraphQL document, run on that department's
schema with the webhook's token claims, selects every field the department may use on the
change (and one level below), so row rules, masks, the purpose rule and the read audit record
are those of a query (:func:`change_document`). Each POST goes only where the egress rules allow
at that moment, to the address they checked (:mod:`resolvers.egress`: no SSRF, no DNS
rebinding, no redirect), its answer read up to a cap within the timeout; the dispatcher also
prunes the outbox (:mod:`resolvers.retention`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import graphql
import httpx
from sqlalchemy import exists, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.graphql import OperationType

from gateway.auth import Principal, Unauthenticated, authenticate
from gateway.documents import Gateway
from gateway.middleware import REQUEST_ID
from gateway.storage.outbox import (
    OutboxEvent,
    Webhook,
    close_listeners,
    listener,
    webhooks_changed,
)
from policies.errors import InvalidInput
from resolvers import egress, outbox, retention, webhooks
from resolvers.context import Context

log = logging.getLogger("medgw.events")
WEBHOOKS_RECHECK_S = 30.0
"""How long a dispatcher trusts what it knows of whether any webhook exists (a registration
in any process tells it sooner: :func:`gateway.storage.outbox.webhooks_changed`)."""

GatewayOf = Callable[[Scope], Gateway]


def context_for(gateway: Gateway, principal: Principal, request: Any, request_id: str) -> Context:
    return Context(
        request=request,
        response=Response(),
        request_id=request_id,
        principal=principal,
        settings=gateway.settings,
        db=gateway.db,
        policies=gateway.policies,
        access=gateway.access,
    )


# -- subscriptions ------------------------------------------------------------------------------


@dataclass
class Connection:
    """One WebSocket: its principal once ``connection_init`` carried a valid token."""

    websocket: WebSocket
    gateway: Gateway
    connection_params: dict[str, Any] = field(default_factory=dict)
    principal: Principal | None = None


class _Departments:
    """Stands in for the schema of the WebSocket view: runs each subscription on the schema of
    the connection's department."""

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Connection | None = None,
        root_value: Any = None,
        operation_name: str | None = None,
        **_: Any,
    ) -> AsyncGenerator[Any, None]:
        assert context_value is not None
        connection, principal = context_value, context_value.principal
        assert principal is not None  # on_ws_connect refused the socket otherwise
        gateway = connection.gateway
        request_id = connection.websocket.scope.get(REQUEST_ID) or uuid.uuid4().hex
        context = context_for(gateway, principal, connection.websocket, request_id)
        source = await gateway.views[principal.department].schema.stream(
            query,
            variable_values=variable_values,
            context_value=context,
            root_value=root_value,
            operation_name=operation_name,
            allowed_operation_types=(OperationType.SUBSCRIPTION,),
        )

        async def closing() -> AsyncGenerator[Any, None]:
            try:
                async with aclosing(source):
                    async for result in source:
                        yield result
            finally:
                await context.close()

        return closing()


class Subscriptions(GraphQL[Any, None]):
    """``/graphql`` over WebSocket, graphql-transport-ws only."""

    def __init__(self, gateway_of: GatewayOf) -> None:
        self.gateway_of = gateway_of
        super().__init__(
            schema=_Departments(),  # type: ignore[arg-type]
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=10,
        )

    async def get_context(self, request: Any, response: Any) -> Connection:
        return Connection(websocket=request, gateway=self.gateway_of(request.scope))

    async def on_ws_connect(self, context: Connection) -> None:
        """Check the token of ``connection_init`` (``Authorization`` or ``authorization``:
        ``Bearer <JWT>``); refuse the connection (4403) otherwise."""
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        settings = context.gateway.settings
        try:
            context.principal = authenticate(
                header if isinstance(header, str) else None,
                settings.jwt_secret,
                context.gateway.access.departments.keys(),
                settings.max_token_regions,
            )
        except Unauthenticated as exc:
            log.info("websocket refused: %s", exc)
            raise ConnectionRejectionError from exc


# -- webhooks -----------------------------------------------------------------------------------


def _selection(
    type_: graphql.GraphQLObjectType, may_read: Callable[[str, str], bool], depth: int
) -> str:
    parts: list[str] = []
    for name, definition in type_.fields.items():
        if definition.args or not may_read(type_.name, name):
            continue  # fields with arguments (a page, a date) are left to a query
        target = graphql.get_named_type(definition.type)
        if isinstance(target, graphql.GraphQLObjectType):
            inner = _selection(target, may_read, depth - 1) if depth > 0 else ""
            if inner:
                parts.append(f"{name} {{ {inner} }}")
        else:
            parts.append(name)
    return " ".join(parts)


def change_document(schema: graphql.GraphQLSchema, may_read: Callable[[str, str], bool]) -> str:
    """The document a webhook's body is read with: ``changes(since:, first: 1)`` selecting
    every field of ``Change`` in ``schema`` (a department's) that ``may_read`` allows, its
    subject's fields and one level below (fields with arguments left out).

    >>> s = graphql.build_schema("type Query { changes(since: String!, first: Int): F } "
    ...     "type F { changes: [Change!]! } type Change { type: String claim: Claim } "
    ...     "type Claim { claimNumber: String totalCost: String }")
    >>> change_document(s, lambda t, f: f != "totalCost").split("{", 2)[2]
    ' changes { type claim { claimNumber } } } }'
    """
    change = schema.get_type("Change")
    assert isinstance(change, graphql.GraphQLObjectType)
    return (
        "query WebhookDelivery($since: String!) { changes(since: $since, first: 1) "
        f"{{ changes {{ {_selection(change, may_read, 2)} }} }} }}"
    )


def _request(request_id: str) -> Request:
    """A stand-in HTTP request for a read the dispatcher does (no client behind it)."""
    return Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/webhooks",
            "headers": [],
            "query_string": b"",
            REQUEST_ID: request_id,
        }
    )


class WebhookDispatcher:
    """Fans out the outbox and sends due deliveries until stopped (see the module)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings
        self.documents: dict[str, str] = {}
        self.rules = egress.Rules.of(self.settings)
        self.next_prune = 0.0  # the first prune when the dispatcher starts
        self.any_webhook = False
        self.known_until = 0.0  # when what it knows of the webhooks is to be checked again
        self.known_changes = -1
        # no proxy from the environment: it would connect to the host name, not the address
        # checked; no redirects: a 3xx is a failed attempt, never a second destination
        self.client = httpx.AsyncClient(
            timeout=self.settings.webhook_timeout_s, trust_env=False, follow_redirects=False
        )

    def document(self, hook: Webhook) -> str | None:
        """The department's webhook document (None: it may not read changes at all)."""
        key = f"{hook.department}/{hook.purpose}"
        if key not in self.documents:
            view = self.gateway.views[hook.department]
            policy, access = view.schema.policy, self.gateway.access
            raw: graphql.GraphQLSchema = view.schema._schema
            if raw.get_type("Change") is None:
                return None
            personal_ok = not policy.needs_purpose(hook.purpose)
            self.documents[key] = change_document(
                raw, lambda t, f: personal_ok or not access.is_personal(t, f)
            )
        return self.documents[key]

    async def render(self, hook: Webhook, event: OutboxEvent) -> bytes | None:
        """The body of ``event`` for ``hook`` as its department reads it, or None when the
        subject is not in its rows. Raises RuntimeError when the read fails."""
        document = self.document(hook)
        if document is None:
            return None
        principal = Principal(
            hook.subject, hook.department, hook.org, tuple(hook.regions), hook.purpose
        )
        request_id = uuid.uuid4().hex
        context = context_for(self.gateway, principal, _request(request_id), request_id)
        since = outbox.Position(event.txid, event.id - 1).encode()
        try:
            result = await self.gateway.views[hook.department].schema.execute(
                document,
                variable_values={"since": since},
                context_value=context,
                operation_name="WebhookDelivery",
            )
        finally:
            await context.close()
        if result.errors:
            raise RuntimeError("; ".join(e.message for e in result.errors)[:200])
        found = ((result.data or {}).get("changes") or {}).get("changes") or []
        if not found:
            return None
        body = {"type": event.type, "timestamp": event.at.isoformat(), "data": found[0]}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    async def send(self, due: webhooks.Due) -> str | None:
        """One attempt: None when delivered (2xx), else why not; ``skip`` when not the
        webhook's to read."""
        try:
            body = await self.render(due.webhook, due.event)
        except Exception as exc:
            log.warning("webhook delivery %s not rendered: %r", due.delivery.id, exc)
            return f"not rendered: {exc}"
        if body is None:
            return "skip"
        message_id = f"msg_{due.delivery.id}"
        stamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": webhooks.sign(due.webhook.secret, message_id, stamp, body),
        }
        return await self.post(due.webhook.url, body, headers)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        """POST ``body`` to ``url`` once its host passed the egress rules again (now: DNS may
        have changed since the registration), to the very address checked, redirects not
        followed, at most ``webhook_max_response_bytes`` of the answer read, all within
        ``webhook_timeout_s``; None when answered 2xx, else why not."""
        try:
            _, address = await egress.check(url, self.rules)
        except (egress.Refused, InvalidInput) as exc:
            return f"refused: {exc}"
        target, host, extensions = egress.pin(url, address)
        try:
            async with asyncio.timeout(self.settings.webhook_timeout_s):
                async with self.client.stream(
                    "POST",
                    target,
                    content=body,
                    headers={**headers, **host},
                    extensions=extensions,
                    follow_redirects=False,
                ) as response:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= self.settings.webhook_max_response_bytes:
                            break  # the rest is not ours to hold
        except TimeoutError:
            return f"no answer within {self.settings.webhook_timeout_s} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def webhooks_exist(self) -> bool:
        """Whether any webhook is registered, as last looked up: again after
        :data:`WEBHOOKS_RECHECK_S`, or at once when a registration was heard of. With none,
        there is nothing to fan out or send (deliveries go with their webhook), so a commit
        notification costs the database nothing; a webhook registered later still gets every
        event after its registration (the fan-out starts from where the webhook does)."""
        changes = webhooks_changed()
        now = time.monotonic()
        if changes != self.known_changes or now >= self.known_until:
            async with self.gateway.db.sessions() as session:
                found = await session.scalar(select(exists().where(Webhook.id.is_not(None))))
            self.any_webhook = bool(found)
            self.known_changes, self.known_until = changes, now + WEBHOOKS_RECHECK_S
        return self.any_webhook

    async def step(self) -> int:
        """Fan out what is final, send what is due; how much was done (0: nothing to do, or
        no webhook: then no statement at all, :meth:`webhooks_exist`)."""
        if not await self.webhooks_exist():
            return 0
        db = self.gateway.db
        async with db.transaction() as session:
            fanned = await webhooks.fan_out(session)
        async with db.transaction() as session:
            batch = await webhooks.due(session)
            outcomes = await asyncio.gather(*(self.send(d) for d in batch))
            for item, error in zip(batch, outcomes, strict=True):
                if error == "skip":
                    item.delivery.status = "SKIPPED"
                else:
                    webhooks.record_attempt(
                        item.delivery,
                        error,
                        max_attempts=self.settings.webhook_max_attempts,
                        backoff_s=self.settings.webhook_backoff_s,
                    )
        return fanned + len(batch)

    async def prune(self) -> int:
        """Every ``outbox_prune_s``: delete the outbox events retention lets go
        (:mod:`resolvers.retention`); how many were deleted."""
        now = time.monotonic()
        if now < self.next_prune:
            return 0
        self.next_prune = now + self.settings.outbox_prune_s
        older_than = timedelta(days=self.settings.outbox_retention_days)
        pruned = await retention.prune(self.gateway.db, older_than)
        if pruned:
            log.info("outbox: %d events older than %s pruned", pruned, older_than)
        return pruned

    async def run(self) -> None:
        wake = listener(self.gateway.db.engine)
        while True:
            try:
                await self.prune()
                done = await self.step()
            except Exception:  # the database is away, a bug: log, wait, go on
                log.exception("webhook dispatcher step failed")
                done = 0
            if not done:
                await wake.wait(self.settings.outbox_poll_s)

    async def close(self) -> None:
        await self.client.aclose()


@asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[None]:
    """The app's lifespan part: the webhook dispatcher (when ``MEDGW_WEBHOOKS``), and the
    outbox listener closed at the end."""
    task: asyncio.Task[None] | None = None
    dispatcher = WebhookDispatcher(gateway) if gateway.settings.webhooks else None
    if dispatcher is not None:
        task = asyncio.create_task(dispatcher.run(), name="medgw-webhooks")
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if dispatcher is not None:
            await dispatcher.close()
        await close_listeners(gateway.db.engine)
