"""The audit trail, for the auditor: who read or wrote whose data, when, and why."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import strawberry

from gateway.storage import models


@strawberry.type(description="One audited response or write.")
class AuditRecord:
    id: strawberry.ID
    at: datetime
    action: str = strawberry.field(description="READ or WRITE.")
    department: str
    org: str
    subject: str = strawberry.field(description="The user or system of the token.")
    purpose: str | None
    operation: str | None
    query_hash: str | None = strawberry.field(description="SHA-256 of the query text.")
    beneficiary_ids: list[strawberry.ID]
    field_paths: list[str]

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
            beneficiary_ids=[strawberry.ID(str(b)) for b in m.beneficiary_ids],
            field_paths=list(m.field_paths),
        )


@strawberry.type(description="Who saw or changed this person's data (PIPL access report).")
class AccessReport:
    id_number: str
    beneficiary_id: strawberry.ID
    records: list[AuditRecord]

    @classmethod
    def of(cls, person: models.Beneficiary, records: Sequence[models.AuditRecord]) -> AccessReport:
        return cls(
            id_number=person.id_number,
            beneficiary_id=strawberry.ID(str(person.id)),
            records=[AuditRecord.from_model(r) for r in records],
        )
