"""The audit trail: who read or wrote whose personal data, append-only and hash-chained.

Each record's ``hash`` is SHA-256 over the previous record's hash and the record's own canonical
JSON, so changing, inserting or deleting a row breaks every later link; :func:`verify` finds the
first broken one. Appends take a transaction-scoped advisory lock so the chain stays linear when
many processes write at once.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import Principal
from gateway.storage.models import AuditRecord

GENESIS = "0" * 64
# Arbitrary constant naming "the audit chain" among advisory locks.
_CHAIN_LOCK = 0x6D656467_77617564


def query_hash(query: str | None) -> str | None:
    """Example:

    >>> query_hash("{ beneficiary { name } }")[:12]
    '03ca28f88fe7'
    """
    return hashlib.sha256(query.encode()).hexdigest() if query else None


def record_digest(prev_hash: str, record: AuditRecord) -> str:
    body = {
        "at": record.at.astimezone(UTC).isoformat(),
        "action": record.action,
        "department": record.department,
        "org": record.org,
        "subject": record.subject,
        "purpose": record.purpose,
        "operation": record.operation,
        "query_hash": record.query_hash,
        "beneficiary_ids": sorted(str(b) for b in record.beneficiary_ids),
        "field_paths": sorted(record.field_paths),
        "detail": record.detail,
    }
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


async def append(
    session: AsyncSession,
    principal: Principal,
    *,
    action: str,
    operation: str | None,
    query: str | None = None,
    beneficiary_ids: Iterable[uuid.UUID] = (),
    field_paths: Iterable[str] = (),
    detail: dict[str, Any] | None = None,
) -> AuditRecord:
    """Add one record to the chain inside the caller's transaction (commit is the caller's)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    prev = await session.scalar(select(AuditRecord.hash).order_by(AuditRecord.id.desc()).limit(1))
    record = AuditRecord(
        at=datetime.now(UTC),
        action=action,
        department=principal.department,
        org=principal.org,
        subject=principal.subject,
        purpose=principal.purpose,
        operation=operation,
        query_hash=query_hash(query),
        beneficiary_ids=sorted(set(beneficiary_ids)),
        field_paths=sorted(set(field_paths)),
        detail=detail or {},
        prev_hash=prev or GENESIS,
    )
    record.hash = record_digest(record.prev_hash, record)
    session.add(record)
    await session.flush()
    return record


@dataclass
class Verification:
    checked: int
    broken_at: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


async def _records(session: AsyncSession, batch: int = 5000) -> AsyncIterator[AuditRecord]:
    last = 0
    while True:
        rows = (
            await session.scalars(
                select(AuditRecord)
                .where(AuditRecord.id > last)
                .order_by(AuditRecord.id)
                .limit(batch)
            )
        ).all()
        if not rows:
            return
        for row in rows:
            yield row
        last = rows[-1].id


async def verify(session: AsyncSession) -> Verification:
    """Walk the chain in id order; report the first record whose links do not hold."""
    prev = GENESIS
    result = Verification(checked=0)
    async for record in _records(session):
        if record.prev_hash != prev:
            return Verification(
                result.checked, record.id, "prev_hash does not match the record before"
            )
        if record_digest(prev, record) != record.hash:
            return Verification(result.checked, record.id, "content does not match its hash")
        prev = record.hash
        result.checked += 1
    return result


@dataclass
class ReadTrail:
    """Personal data returned by one response, collected while fields resolve."""

    beneficiary_ids: set[uuid.UUID] = field(default_factory=set)
    field_paths: set[str] = field(default_factory=set)

    def note(self, beneficiary_id: uuid.UUID | None, path: str) -> None:
        if beneficiary_id is not None:
            self.beneficiary_ids.add(beneficiary_id)
        self.field_paths.add(path)

    def __bool__(self) -> bool:
        return bool(self.field_paths)
