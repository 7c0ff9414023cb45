"""The audit trail: who read or wrote whose personal data, append-only and hash-chained.

Each record's ``hash`` is SHA-256 over the previous record's hash and the record's own canonical
JSON, so changing, inserting or deleting a row breaks every later link; :func:`verify` finds the
first broken one. Appends take a transaction-scoped advisory lock so the chain stays linear when
many processes write at once.

What links cannot show (the newest records deleted, or the whole chain recomputed by someone
with the database's full rights) the signed checkpoints kept outside the database show:
:func:`checkpoint` signs the head, :func:`verify` compares the chain with every checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import graphql
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import metrics
from gateway.auth import Principal
from gateway.storage import checkpoints
from gateway.storage.checkpoints import Checkpoint
from gateway.storage.database import Database
from gateway.storage.models import AuditRecord

log = logging.getLogger("medgw.audit")
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
    if record.query_text is not None:
        # Records from before the query text was kept (None) hash as they always did.
        body["query_text"] = record.query_text
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


SECRET_ARGUMENTS = frozenset({"secret"})
"""Arguments and input fields whose literal value is a secret (``registerWebhook``'s signing
secret): never kept in an audit record's query text."""


class _Redact(graphql.Visitor):
    """Replaces the string written as a secret argument or input field by ``…``."""

    def enter_object_field(self, node: graphql.ObjectFieldNode, *_: Any) -> Any:
        if node.name.value in SECRET_ARGUMENTS and isinstance(node.value, graphql.StringValueNode):
            return graphql.ObjectFieldNode(name=node.name, value=graphql.StringValueNode(value="…"))
        return None

    def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> Any:
        if node.name.value in SECRET_ARGUMENTS and isinstance(node.value, graphql.StringValueNode):
            return graphql.ArgumentNode(name=node.name, value=graphql.StringValueNode(value="…"))
        return None


def redacted(query: str | None) -> str | None:
    """The query text to keep: a secret written in it (not passed as a variable) replaced by
    ``…``; a text that does not parse is kept as it is (it ran nothing).

    >>> text = redacted('mutation { registerWebhook(input: {secret: "whsec_x"}) { id } }')
    >>> "whsec_x" in text, 'secret: "…"' in text
    (False, True)
    """
    if query is None or not any(name in query for name in SECRET_ARGUMENTS):
        return query
    try:
        document = graphql.parse(query)
    except graphql.GraphQLError:
        return query
    return graphql.print_ast(graphql.visit(document, _Redact()))


@metrics.timed(metrics.AUDIT_APPEND_SECONDS)
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
    """Add one record to the chain inside the caller's transaction (commit is the caller's).

    ``query`` is kept as text and as its SHA-256, with every secret written in it redacted
    (:func:`redacted`): whichever path writes a record, no secret reaches the audit log.
    """
    query = redacted(query)
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
        query_text=query or None,
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
    """``checked`` records hold their links; ``broken_at`` (a record id) and ``reason`` name the
    first that does not; ``problem`` says how the chain disagrees with the checkpoints."""

    checked: int
    broken_at: int | None = None
    reason: str | None = None
    problem: str | None = None
    checkpoints: int = 0

    @property
    def ok(self) -> bool:
        return self.broken_at is None and self.problem is None


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


def _rewritten(record: AuditRecord, position: int, checkpoint: Checkpoint) -> str | None:
    if (record.id, record.hash) == (checkpoint.last_id, checkpoint.head):
        return None
    return (
        f"rewritten: record {position} of the chain is id {record.id} with hash "
        f"{record.hash[:16]}…, the checkpoint of {checkpoint.at} signed id "
        f"{checkpoint.last_id} with hash {checkpoint.head[:16]}…"
    )


async def verify(session: AsyncSession, trusted: Sequence[Checkpoint] = ()) -> Verification:
    """Walk the chain in id order; report the first record whose links do not hold, else the
    first checkpoint of ``trusted`` (signatures already checked) that the chain contradicts:
    its record differs (rewrite) or the chain has fewer records than it counted (truncation).
    """
    at_count: dict[int, list[Checkpoint]] = {}
    for checkpoint in trusted:
        at_count.setdefault(checkpoint.count, []).append(checkpoint)
    prev = GENESIS
    result = Verification(checked=0, checkpoints=len(trusted))
    async for record in _records(session):
        if record.prev_hash != prev:
            result.broken_at = record.id
            result.reason = "prev_hash does not match the record before"
            return result
        if record_digest(prev, record) != record.hash:
            result.broken_at, result.reason = record.id, "content does not match its hash"
            return result
        prev = record.hash
        result.checked += 1
        for checkpoint in at_count.get(result.checked, ()):
            result.problem = result.problem or _rewritten(record, result.checked, checkpoint)
        if result.problem:
            return result
    newest = max(trusted, key=lambda c: c.count, default=None)
    if newest is not None and newest.count > result.checked:
        result.problem = (
            f"truncated: the checkpoint of {newest.at} counts {newest.count} records up to id "
            f"{newest.last_id}, the log has {result.checked}"
        )
    return result


async def verify_with_checkpoints(session: AsyncSession, path: Path, key: bytes) -> Verification:
    """:func:`verify` against the checkpoint file at ``path``, signed with ``key``: a missing
    file (while records exist), a line that is not a checkpoint or a bad signature fails too."""
    try:
        found = checkpoints.read(path)
    except FileNotFoundError:
        found = []
    except checkpoints.CheckpointFileError as exc:
        return Verification(checked=0, problem=str(exc))
    for number, checkpoint in enumerate(found, start=1):
        if not checkpoint.valid(key):
            return Verification(
                checked=0,
                problem=f"{path}: checkpoint {number} (of {checkpoint.at}) has a bad signature",
            )
    result = await verify(session, found)
    if result.ok and not found and result.checked:
        result.problem = (
            f"no checkpoint in {path}: {result.checked} records, nothing to tell whether "
            "newer ones were deleted or the chain recomputed"
        )
    return result


async def head(session: AsyncSession) -> tuple[int, int | None, str]:
    """(records, id of the newest or None, its hash or GENESIS), read in one snapshot."""
    newest = select(AuditRecord.id, AuditRecord.hash).order_by(AuditRecord.id.desc()).limit(1)
    newest_sq = newest.subquery()
    row = (
        await session.execute(
            select(
                select(func.count()).select_from(AuditRecord).scalar_subquery(),
                select(newest_sq.c.id).scalar_subquery(),
                select(newest_sq.c.hash).scalar_subquery(),
            )
        )
    ).one()
    return int(row[0]), row[1], row[2] or GENESIS


async def checkpoint(
    db: Database, key: bytes, path: Path, previous: Checkpoint | None = None
) -> Checkpoint:
    """Sign the chain's head with ``key`` and append it to ``path``, unless it is the head
    ``previous`` already signed; returns the checkpoint of the current head."""
    async with db.sessions() as session:
        count, last_id, head_hash = await head(session)
    signed = Checkpoint.signed(
        key, count=count, last_id=last_id, head=head_hash, at=datetime.now(UTC).isoformat()
    )
    if signed.same_head(previous):
        assert previous is not None
        return previous
    checkpoints.append(path, signed)
    return signed


class Checkpointer:
    """While the gateway runs (``async with``): signs the chain's head at start, every
    ``seconds``, and once more on the way out. A failed checkpoint is logged, never fatal."""

    def __init__(self, db: Database, key: bytes, path: Path, seconds: float) -> None:
        self.db, self.key, self.path, self.seconds = db, key, path, seconds
        self.last: Checkpoint | None = None
        self._task: asyncio.Task[None] | None = None

    async def write(self) -> None:
        try:
            self.last = await checkpoint(self.db, self.key, self.path, self.last)
        except Exception:
            log.exception("audit checkpoint not written to %s", self.path)

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(self.seconds)
            await self.write()

    async def __aenter__(self) -> Checkpointer:
        # The first one before serving, unless the database is too slow to answer.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.write(), timeout=10)
        self._task = asyncio.create_task(self._every(), name="audit checkpoints")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.write()


@dataclass
class ReadTrail:
    """Personal data returned by one response, collected while fields resolve: whose, which
    field paths (the schema's field names), and the operation that ran (e.g. ``query People``).
    ``paths`` remembers the field path of each response path already seen."""

    beneficiary_ids: set[uuid.UUID] = field(default_factory=set)
    field_paths: set[str] = field(default_factory=set)
    operation: str | None = None
    paths: dict[tuple[tuple[str, str | None], ...], str] = field(default_factory=dict)

    def note(self, beneficiary_id: uuid.UUID | None, path: str) -> None:
        if beneficiary_id is not None:
            self.beneficiary_ids.add(beneficiary_id)
        self.field_paths.add(path)

    def __bool__(self) -> bool:
        return bool(self.field_paths)
