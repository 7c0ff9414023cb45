"""The audit trail, for the auditor: who read or wrote whose data, when, and why."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import strawberry

from gateway.storage import models
from gateway.storage.checkpoints import Checkpoint


@strawberry.type(description="One audited response or write.")
class AuditRecord:
    id: strawberry.ID = strawberry.field(description="Position in the audit chain.")
    at: datetime = strawberry.field(description="When the response or write happened.")
    action: str = strawberry.field(description="READ or WRITE.")
    department: str = strawberry.field(description="The caller's department (of the token).")
    org: str = strawberry.field(description="The caller's organisation (of the token).")
    subject: str = strawberry.field(description="The user or system of the token.")
    purpose: str | None = strawberry.field(
        description="The purpose of processing the token declares (ACCESS.md)."
    )
    operation: str | None = strawberry.field(description="The GraphQL operation or mutation.")
    query_hash: str | None = strawberry.field(description="SHA-256 of the query text.")
    query_text: str | None = strawberry.field(
        description="The query text as the caller sent it (null on writes and older records)."
    )
    beneficiary_ids: list[strawberry.ID] = strawberry.field(
        description="The persons whose data was read or written (Beneficiary.id)."
    )
    field_paths: list[str] = strawberry.field(
        description="What was read, by the schema's field names (never the response's aliases)."
    )

    @classmethod
    def from_model(cls, m: models.AuditRecord) -> AuditRecord:
        return cls(
            id=strawberry.ID(str(m.id)),
            at=m.at,
            action=m.action,
            department=m.department,
            org=m.org,
            subject=m.subject,
            purpose=m.purpose,
            operation=m.operation,
            query_hash=m.query_hash,
            query_text=m.query_text,
            beneficiary_ids=[strawberry.ID(str(b)) for b in m.beneficiary_ids],
            field_paths=list(m.field_paths),
        )


@strawberry.type(description="Who saw or changed this person's data (PIPL access report).")
class AccessReport:
    id_number: str = strawberry.field(description="The person's resident ID number.")
    beneficiary_id: strawberry.ID = strawberry.field(description="The person's Beneficiary.id.")
    records: list[AuditRecord] = strawberry.field(
        description="Every audit record naming the person, oldest first."
    )

    @classmethod
    def of(cls, person: models.Beneficiary, records: Sequence[models.AuditRecord]) -> AccessReport:
        return cls(
            id_number=person.id_number,
            beneficiary_id=strawberry.ID(str(person.id)),
            records=[AuditRecord.from_model(r) for r in records],
        )


@strawberry.type(
    description="A signed checkpoint of the audit chain's head, kept outside the database: "
    "records deleted after it, or a chain recomputed before it, no longer match."
)
class AuditCheckpoint:
    count: int = strawberry.field(description="Records in the chain.")
    last_id: strawberry.ID | None = strawberry.field(description="Id of the newest record.")
    head: str = strawberry.field(description="Hash of the newest record.")
    at: datetime = strawberry.field(description="When the checkpoint was signed.")
    signature: str = strawberry.field(
        description="HMAC-SHA256 (hex) of count, last id, head and time, with a key the "
        "database does not hold."
    )
    signature_valid: bool = strawberry.field(description="Whether the gateway's key verifies it.")

    @classmethod
    def of(cls, checkpoint: Checkpoint, valid: bool) -> AuditCheckpoint:
        return cls(
            count=checkpoint.count,
            last_id=None if checkpoint.last_id is None else strawberry.ID(str(checkpoint.last_id)),
            head=checkpoint.head,
            at=checkpoint.time,
            signature=checkpoint.signature,
            signature_valid=valid,
        )
