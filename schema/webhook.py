"""Webhooks of a department (registerWebhook, webhooks, webhookDeliveries, deleteWebhook,
redeliverWebhook): what they are and what their deliveries did."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import strawberry

from gateway.storage.outbox import Webhook as WebhookRow
from gateway.storage.outbox import WebhookDelivery as DeliveryRow
from schema.change import ChangeType
from schema.enums import described


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    DEAD = "DEAD"
    SKIPPED = "SKIPPED"


described(
    DeliveryStatus,
    "Where a webhook delivery stands.",
    {
        DeliveryStatus.PENDING: "Not yet delivered; its next attempt is due at nextAttemptAt.",
        DeliveryStatus.DELIVERED: "The receiver answered 2xx.",
        DeliveryStatus.DEAD: "Every attempt failed (MEDGW_WEBHOOK_MAX_ATTEMPTS): the dead "
        "letters; redeliverWebhook sends it again.",
        DeliveryStatus.SKIPPED: "Not sent: the subject is not in the webhook's rows.",
    },
)


@strawberry.input(description="A departmental system's endpoint for change notifications.")
class RegisterWebhookInput:
    url: str = strawberry.field(
        description="An https URL that accepts POST (http only to addresses the operator "
        "allows); at most 2000 characters, no user name or password; its host must not "
        "resolve to a loopback, private, link-local, multicast or reserved address unless "
        "allowed (MEDGW_WEBHOOK_ALLOW_PRIVATE, MEDGW_WEBHOOK_ALLOW_NETWORKS)."
    )
    events: list[ChangeType] = strawberry.field(
        description="The kinds of change to deliver, each once (the department must be able "
        "to read them)."
    )
    secret: str = strawberry.field(
        description="The signing secret, Standard Webhooks form: whsec_ and the base64 of 24 "
        "to 64 random bytes. Never shown again."
    )


@strawberry.type(
    description="A registered endpoint. Each delivery is a POST of {type, timestamp, data} where "
    "data is the Change as the registering department reads it, with the headers webhook-id, "
    "webhook-timestamp and webhook-signature (v1,base64 HMAC-SHA256 of id.timestamp.body)."
)
class Webhook:
    id: strawberry.ID = strawberry.field(description="Opaque identifier.")
    url: str = strawberry.field(description="Where deliveries go.")
    events: list[ChangeType] = strawberry.field(description="The kinds delivered.")
    created_at: datetime = strawberry.field(description="When it was registered.")

    @classmethod
    def from_model(cls, m: WebhookRow) -> Webhook:
        return cls(
            id=strawberry.ID(str(m.id)),
            url=m.url,
            events=[ChangeType(e) for e in m.events],
            created_at=m.created_at,
        )


@strawberry.type(description="One change for one webhook.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(
        description="Opaque identifier (redeliverWebhook takes it); webhook-id is msg_ + it."
    )
    webhook_id: strawberry.ID = strawberry.field(description="The webhook.")
    status: DeliveryStatus = strawberry.field(description="Where it stands.")
    attempts: int = strawberry.field(description="Attempts made since it was last (re)queued.")
    next_attempt_at: datetime = strawberry.field(
        description="When the next attempt is due (PENDING)."
    )
    last_error: str | None = strawberry.field(
        description="Why the last failed attempt failed (the receiver's status or the network "
        "error); kept once delivered."
    )
    delivered_at: datetime | None = strawberry.field(description="When it was delivered.")

    @classmethod
    def from_model(cls, m: DeliveryRow) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(str(m.id)),
            webhook_id=strawberry.ID(str(m.webhook_id)),
            status=DeliveryStatus(m.status),
            attempts=m.attempts,
            next_attempt_at=m.next_attempt_at,
            last_error=m.last_error,
            delivered_at=m.delivered_at,
        )
