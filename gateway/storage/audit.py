"""The audit trail: who read or wrote whose personal data, append-only and hash-chained.

The chain is split into shards (``audit_log.shard``), each a chain of its own: a record's
``hash`` is SHA-256 over the hash of the record before it in its shard and the record's own
canonical JSON, so changing, inserting or deleting a row breaks every later link of its shard;
:func:`verify` walks every shard and finds the first broken link.

An append takes the lock of one shard (a transaction-scoped advisory lock) until its transaction
ends, reads that shard's head and links the new record to it. It takes the first shard whose
lock is free, from 0 up (:data:`TAKE_SHARD`): concurrent writers each find their own shard and
never wait for one another (up to :func:`shards` of them, then they queue on one), while a
writer alone always writes to shard 0, so that without concurrency the log is one chain in id
order. Reads' records are appended in group commits (:func:`append` with the
:class:`~gateway.storage.database.Database`): the records of concurrent requests chained and
inserted together in one transaction, each request released once it committed. A point read's
record, committed on its own outside any transaction, is one statement (:data:`APPEND`): the
database takes the lock, reads the head, hashes and inserts.

What links cannot show (the newest records deleted, or the whole chain recomputed by someone
with the database's full rights) the signed checkpoints kept outside the database show:
:func:`checkpoint` signs the head of every shard, :func:`verify` compares each shard with every
checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import graphql
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import metrics
from gateway.auth import Principal
from gateway.errors import is_transient
from gateway.storage import checkpoints
from gateway.storage.checkpoints import Checkpoint, ShardHead
from gateway.storage.database import COMMITS, Database
from gateway.storage.group_commit import GroupCommit
from gateway.storage.models import AuditRecord

log = logging.getLogger("medgw.audit")
GENESIS = "0" * 64
# Arbitrary constant naming "the audit chain" among advisory locks; shard s locks _CHAIN_LOCK + s.
_CHAIN_LOCK = 0x6D656467_77617564
_SHARDS = 16

TAKE_SHARD = "SELECT shard, head, new_ids FROM audit_take_shard($1, $2, $3, $4)"
"""Takes the lock of the first free shard, trying ``$1`` then the next ones (modulo ``$2``
shards; ``$3`` the chain's lock key), or waits for a random one when every one is held by
another transaction (a lock this transaction holds counts as free: advisory locks nest); then
reads that shard's head (NULL when empty) and ``$4`` new record ids, in a statement younger than
the lock (migration 0020's function ``audit_take_shard``): one round trip."""


@dataclass(frozen=True)
class Taken:
    """A shard whose lock the transaction holds, its head's hash and new record ids."""

    shard: int
    head: str
    ids: list[int]


def configure(shards: int) -> None:
    """How many shards this process appends to (``MEDGW_AUDIT_SHARDS``; at least 1). Processes
    may differ: :func:`verify` and :func:`checkpoint` take whichever shards the log has."""
    global _SHARDS
    if shards < 1:
        raise ValueError(f"audit shards must be at least 1, not {shards}")
    _SHARDS = shards


def shards() -> int:
    """The number of shards this process appends to."""
    return _SHARDS


def query_hash(query: str | None) -> str | None:
    """Example:

    >>> query_hash("{ beneficiary { name } }")[:12]
    '03ca28f88fe7'
    """
    return hashlib.sha256(query.encode()).hexdigest() if query else None


@dataclass(slots=True)
class Entry:
    """A record being appended: the columns of :class:`AuditRecord` as a plain object (made on
    every audited request; an ORM instance costs more to make than the rest of the record);
    ``id``, ``shard``, ``prev_hash`` and ``hash`` are set when it is linked."""

    at: datetime
    action: str
    department: str
    org: str
    subject: str
    purpose: str | None
    operation: str | None
    query_hash: str | None
    query_text: str | None
    beneficiary_ids: list[uuid.UUID]
    field_paths: list[str]
    detail: dict[str, Any]
    id: int = 0
    shard: int = 0
    prev_hash: str = ""
    hash: str = ""


def canonical(record: AuditRecord | Entry) -> str:
    """The record's canonical JSON, which its hash covers after the previous record's hash
    (:func:`record_digest`): every column but the id, the shard and the hashes, keys sorted,
    UTF-8 text (no escapes), no spaces."""
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
    return _CANONICAL(body)


_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode
"""``json.dumps`` with these options, without making its encoder anew for every record."""


def record_digest(prev_hash: str, record: AuditRecord | Entry) -> str:
    """The record's link: SHA-256 (hex) of ``prev_hash`` and :func:`canonical`, as UTF-8."""
    return _digest(prev_hash, canonical(record))


def _digest(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


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


async def _take_shard(
    fetchrow: Callable[[str, tuple[Any, ...]], Awaitable[Any]], first: int, records: int
) -> Taken:
    """Take a shard's lock for the rest of the transaction and read its head
    (:data:`TAKE_SHARD`), with ids for ``records`` records. ``fetchrow`` runs a statement in the
    transaction and returns its row."""
    count = _SHARDS
    shard, head, ids = await fetchrow(TAKE_SHARD, (first % count, count, _CHAIN_LOCK, records))
    return Taken(int(shard), head or GENESIS, sorted(ids))


async def _lock_shard(session: AsyncSession, first: int, records: int) -> tuple[Taken, Any]:
    """:func:`_take_shard` in the session's transaction (begun here if it was not). Returns the
    shard taken and the session's asyncpg connection, which is inside that transaction."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection

    async def fetchrow(sql: str, args: tuple[Any, ...]) -> Any:
        if driver is not None and driver.is_in_transaction():  # begun by an earlier statement
            return await driver.fetchrow(sql, *args)
        # Through SQLAlchemy (its driver SQL, not compiled): it begins the transaction it
        # manages (its asyncpg transaction starts with the first statement).
        return (await connection.exec_driver_sql(sql, args)).one()

    taken = await _take_shard(fetchrow, first, records)
    if driver is None or not driver.is_in_transaction():  # the lock would be gone already
        raise RuntimeError("the audit shard's lock is held by a transaction")
    return taken, driver


async def _append_committed(session: AsyncSession, record: Entry) -> Entry:
    """Append ``record`` on the session's connection and commit it: in a transaction of its
    own when the session has none open (:func:`_append_alone`: one statement, no ORM work on
    the record every read writes), else in the session's, which is committed (rolled back when
    either fails)."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    if driver is not None and not driver.is_in_transaction():
        return await _append_alone(driver, record)
    try:
        await _append_in(session, record)
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    return record


APPEND = (
    "SELECT id, shard, prev_hash, hash FROM audit_append("
    f"$1, $2, $3, $4, {', '.join(f'${n}' for n in range(5, 17))})"
)
"""One record appended by the database (migration 0021's ``audit_append``): the first free
shard from ``$1`` (of ``$2``, chain lock ``$3``), its head, a new id, the hash of the head and
``$4`` (the record's :func:`canonical` JSON) and the row of :data:`APPENDED` values ``$5``…
``$16``; returns ``(id, shard, prev_hash, hash)``."""
APPENDED = (
    "at",
    "action",
    "department",
    "org",
    "subject",
    "purpose",
    "operation",
    "query_hash",
    "query_text",
    "beneficiary_ids",
    "field_paths",
    "detail",
)
"""The columns :data:`APPEND` takes, in its order: every column of the log but those it
computes (``id``, ``shard``, ``prev_hash``, ``hash``)."""


async def _append_alone(driver: Any, record: Entry) -> Entry:
    """Append ``record`` by one statement on ``driver`` (asyncpg) outside any transaction: the
    statement is a transaction of its own, committed when this returns (:data:`APPEND`), one
    round trip instead of five (BEGIN, lock and head, INSERT, COMMIT). The hash the database
    computed is checked against the chain's own (:func:`record_digest`); when they differ (a
    database whose text is not the bytes Python hashes) it raises, so that the read's answer
    carries no data, though the record stays and :func:`verify` reports its link."""
    body = canonical(record)
    values = [_value(record, name) for name in APPENDED]
    row = await driver.fetchrow(APPEND, 0, _SHARDS, _CHAIN_LOCK, body, *values)
    record.id, record.shard, record.prev_hash, record.hash = row
    if record.hash != _digest(record.prev_hash, body):
        raise RuntimeError(f"audit record {record.id}: the database's hash is not the chain's")
    return record


async def _link(driver: Any, taken: Taken, records: Sequence[Entry]) -> None:
    """Give ``records`` (in chain order) the ids taken, link them after the head of the shard
    taken and insert them, on ``driver`` (asyncpg) in the transaction that holds the shard's
    lock.

    An audit record is written on every read: the statements go to asyncpg directly, without
    the ORM's work per statement (more than the rest of a point read's audit)."""
    prev = taken.head
    for record, record_id in zip(records, taken.ids, strict=True):
        record.id, record.shard, record.prev_hash = record_id, taken.shard, prev
        record.hash = prev = record_digest(prev, record)
    rows = [_values(record) for record in records]
    if len(rows) == 1:
        await driver.execute(INSERT, *rows[0])
    else:  # one round trip: asyncpg pipelines the rows
        await driver.executemany(INSERT, rows)


def _record(
    principal: Principal,
    *,
    action: str,
    operation: str | None,
    query: str | None,
    beneficiary_ids: Iterable[uuid.UUID],
    field_paths: Iterable[str],
    detail: dict[str, Any] | None,
) -> Entry:
    """The record, not yet linked (no id, shard or hashes); the query's secrets redacted."""
    query = redacted(query)
    return Entry(
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
        detail=as_stored(detail) if detail else {},
    )


def as_stored(value: Any) -> Any:
    """``value`` (a record's ``detail``) as the log's JSONB column gives it back, so that the
    hash made now is the one :func:`verify` makes from the stored row: a float Python writes
    with an exponent (1e16 and above, all integers) is stored as a ``numeric`` and read back as
    the integer written out; NaN and infinities, which JSON cannot hold, raise ``ValueError``.

    >>> as_stored({"ratio": 1e16, "part": [0.5, 2.0, "x"]})
    {'ratio': 10000000000000000, 'part': [0.5, 2.0, 'x']}
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"audit detail: {value} is not a JSON number")
        written = repr(value)
        return int(Decimal(written)) if "e+" in written else value
    if isinstance(value, dict):
        return {key: as_stored(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_stored(item) for item in value]
    return value


_TABLE: Table = AuditRecord.__table__  # type: ignore[assignment]
_COLUMNS = list(_TABLE.columns)
INSERT = (
    f"INSERT INTO audit_log ({', '.join(c.name for c in _COLUMNS)}) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(_COLUMNS) + 1))})"
)
"""One record, its values in the table's column order (:func:`_values`)."""


def _values(record: Entry) -> list[Any]:
    """The record's column values in :data:`INSERT`'s order, as asyncpg takes them on the
    engine's connections (JSONB as JSON text: SQLAlchemy's codec)."""
    return [_value(record, c.key) for c in _COLUMNS]


def _value(record: Entry, name: str) -> Any:
    """The value of the record's column ``name`` as asyncpg takes it on the engine's
    connections (JSONB as JSON text: SQLAlchemy's codec)."""
    return json.dumps(record.detail) if name == "detail" else getattr(record, name)


_SHARD_OF_TRANSACTION = "medgw.audit_shard"
INSERT_NEXT = (
    f"INSERT INTO audit_log ({', '.join(c.name for c in _COLUMNS if c.key != 'id')}) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(_COLUMNS)))}) RETURNING id"
)
"""One record after the one this transaction linked last in the shard it holds: its id from
the sequence (:func:`_values` without the id)."""


@dataclass(frozen=True)
class _Held:
    """The shard a session's transaction holds, and the hash of the record it linked last there
    (None: not known, the lock and the head are read again)."""

    transaction: object
    shard: int
    last_hash: str | None


async def _append_in(session: AsyncSession, record: Entry) -> Entry:
    """Append ``record`` in the session's transaction, which holds its shard until it ends.

    A transaction that appends again, outside any savepoint, to the shard whose last record it
    linked itself (outside any savepoint too) links the record after that one in one statement:
    the lock taken outside a savepoint is held until the transaction ends, so no other writer
    has appended to the shard since (a settlement's WRITE record and its answer's READ record).
    Otherwise the lock is taken again (a rolled-back savepoint may have released it, or taken
    back a record) and the head read after it."""
    sync = session.sync_session
    transaction = sync.get_transaction()
    held = session.info.get(_SHARD_OF_TRANSACTION)
    mine = held if held is not None and held.transaction is transaction else None
    in_savepoint = sync.get_nested_transaction() is not None
    if mine is not None and mine.last_hash is not None and not in_savepoint:
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        if driver is not None and driver.is_in_transaction():
            record.shard, record.prev_hash = mine.shard, mine.last_hash
            record.hash = record_digest(mine.last_hash, record)
            values = [v for c, v in zip(_COLUMNS, _values(record), strict=True) if c.key != "id"]
            record.id = await driver.fetchval(INSERT_NEXT, *values)
            session.info[_SHARD_OF_TRANSACTION] = _Held(transaction, mine.shard, record.hash)
            return record
    taken, driver = await _lock_shard(session, mine.shard if mine is not None else 0, 1)
    # Not added to the session (no unit of work): returned with its id, shard and hashes.
    await _link(driver, taken, [record])
    known = None if in_savepoint else record.hash
    session.info[_SHARD_OF_TRANSACTION] = _Held(transaction, taken.shard, known)
    return record


_GROUPS: dict[tuple[int, int], tuple[Database, GroupCommit[Entry, Entry]]] = {}


def group(db: Database) -> GroupCommit[Entry, Entry]:
    """The group commit of ``db``'s audit records in the running event loop (one per process
    and loop)."""
    key = (id(db), id(asyncio.get_running_loop()))
    found = _GROUPS.get(key)
    if found is None or found[0] is not db:

        async def write(records: Sequence[Entry]) -> Sequence[Entry]:
            async with db.transaction() as session:
                taken, driver = await _lock_shard(session, 0, len(records))
                await _link(driver, taken, records)
            return records

        # A group refused for one record's sake (text the database cannot store) is written
        # again record by record: the others' answers do not depend on it. Not when the
        # database is out of reach or busy (each record alone would wait as long again).
        alone = GroupCommit(write, alone=lambda exc: not is_transient(exc))
        found = _GROUPS[key] = (db, alone)
    return found[1]


@metrics.timed(metrics.AUDIT_APPEND_SECONDS)
async def append(
    session: AsyncSession | Database | asyncpg.Connection,
    principal: Principal,
    *,
    action: str,
    operation: str | None,
    query: str | None = None,
    beneficiary_ids: Iterable[uuid.UUID] = (),
    field_paths: Iterable[str] = (),
    detail: dict[str, Any] | None = None,
    committed: bool = False,
) -> Entry:
    """Add one record to the chain.

    With a session: inside the caller's transaction, which holds the record's shard until it
    ends (commit is the caller's); ``committed``: committed before this returns, on the
    session's connection (:func:`_append_committed`). With the :class:`Database`: in a group
    commit with the records of concurrent callers of this process (:func:`group`), one
    transaction of its own; returns once that transaction committed, raises what made it fail
    (then no record of the group was written). With an asyncpg connection outside any
    transaction (a bare connection, :meth:`resolvers.context.Context.read`): committed by one
    statement (:func:`_append_alone`); ``committed`` must be true, and a connection inside a
    transaction raises ``ValueError`` (its session links the record).

    ``query`` is kept as text and as its SHA-256, with every secret written in it redacted
    (:func:`redacted`): whichever path writes a record, no secret reaches the audit log.
    """
    record = _record(
        principal,
        action=action,
        operation=operation,
        query=query,
        beneficiary_ids=beneficiary_ids,
        field_paths=field_paths,
        detail=detail,
    )
    if isinstance(session, AsyncSession):
        if committed:
            return await _append_committed(session, record)
        return await _append_in(session, record)
    if isinstance(session, asyncpg.Connection):
        if not committed or session.is_in_transaction():
            raise ValueError("a bare connection appends committed records outside a transaction")
        return await _append_alone(session, record)
    written = await group(session).submit(record)
    commits = COMMITS.get()
    if commits is not None:  # as if the caller had committed it (gateway/reconnection.py)
        commits.count += 1
    return written


@dataclass
class Verification:
    """``checked`` records hold their links; ``broken_at`` (a record id) and ``reason`` name the
    first that does not; ``problem`` says how the chain disagrees with the checkpoints;
    ``shards`` counts the records of each shard checked."""

    checked: int
    broken_at: int | None = None
    reason: str | None = None
    problem: str | None = None
    checkpoints: int = 0
    shards: dict[int, int] = field(default_factory=dict)

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


def _rewritten(
    record: AuditRecord, position: int, checkpoint: Checkpoint, signed: ShardHead
) -> str | None:
    if (record.id, record.hash) == (signed.last_id, signed.head):
        return None
    return (
        f"rewritten: record {position} of the chain is id {record.id} with hash "
        f"{record.hash[:16]}…, the checkpoint of {checkpoint.at} signed id "
        f"{signed.last_id} with hash {signed.head[:16]}… (shard {signed.shard})"
    )


async def verify(session: AsyncSession, trusted: Sequence[Checkpoint] = ()) -> Verification:
    """Walk the log in id order, each record linked to the one before it in its shard; report
    the first record whose links do not hold, else the first checkpoint of ``trusted``
    (signatures already checked) that a shard contradicts: its record at the count signed
    differs (rewrite) or the shard has fewer records than it counted (truncation).
    """
    at_count: dict[tuple[int, int], list[tuple[Checkpoint, ShardHead]]] = {}
    for checkpoint in trusted:
        for signed in checkpoint.heads():
            at_count.setdefault((signed.shard, signed.count), []).append((checkpoint, signed))
    heads: dict[int, str] = {}
    result = Verification(checked=0, checkpoints=len(trusted), shards={})
    async for record in _records(session):
        prev = heads.get(record.shard, GENESIS)
        if record.prev_hash != prev:
            result.broken_at = record.id
            result.reason = "prev_hash does not match the record before"
            return result
        if record_digest(prev, record) != record.hash:
            result.broken_at, result.reason = record.id, "content does not match its hash"
            return result
        heads[record.shard] = record.hash
        result.checked += 1
        position = result.shards[record.shard] = result.shards.get(record.shard, 0) + 1
        for checkpoint, signed in at_count.get((record.shard, position), ()):
            result.problem = result.problem or _rewritten(record, position, checkpoint, signed)
        if result.problem:
            return result
    longest: dict[int, tuple[Checkpoint, ShardHead]] = {}
    for checkpoint in trusted:
        for signed in checkpoint.heads():
            if signed.shard not in longest or signed.count > longest[signed.shard][1].count:
                longest[signed.shard] = (checkpoint, signed)
    for shard, (checkpoint, signed) in sorted(longest.items()):
        found = result.shards.get(shard, 0)
        if signed.count > found:
            result.problem = (
                f"truncated: the checkpoint of {checkpoint.at} counts {signed.count} records up "
                f"to id {signed.last_id}, the log has {found} (shard {shard})"
            )
            break
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


async def head(session: AsyncSession) -> list[ShardHead]:
    """Every shard's head (records, newest id, its hash), shard by shard, read in one
    snapshot; no shard when the log is empty."""
    per_shard = (
        select(
            AuditRecord.shard,
            func.count().label("count"),
            func.max(AuditRecord.id).label("last_id"),
        )
        .group_by(AuditRecord.shard)
        .subquery()
    )
    rows = await session.execute(
        select(per_shard.c.shard, per_shard.c.count, per_shard.c.last_id, AuditRecord.hash)
        .join(AuditRecord, AuditRecord.id == per_shard.c.last_id)
        .order_by(per_shard.c.shard)
    )
    return [ShardHead(shard, count, last_id, hash_) for shard, count, last_id, hash_ in rows]


async def checkpoint(
    db: Database, key: bytes, path: Path, previous: Checkpoint | None = None
) -> Checkpoint:
    """Sign every shard's head with ``key`` and append it to ``path``, unless these are the
    heads ``previous`` already signed; returns the checkpoint of the current heads. Its totals:
    all records, the newest of all and its hash."""
    async with db.sessions() as session:
        heads = await head(session)
    newest = max(heads, key=lambda h: h.last_id or 0, default=None)
    signed = Checkpoint.signed(
        key,
        count=sum(h.count for h in heads),
        last_id=newest.last_id if newest else None,
        head=newest.head if newest else GENESIS,
        at=datetime.now(UTC).isoformat(),
        shards=heads,
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
    on_read_connection: bool = False
    """The record is appended on the read's own session and connection (a compiled point read,
    set by ``gateway.read_compiler``) and committed there before the response leaves, not in a
    group commit (``gateway.access.ReadAudit``)."""

    def note(self, beneficiary_id: uuid.UUID | None, path: str) -> None:
        if beneficiary_id is not None:
            self.beneficiary_ids.add(beneficiary_id)
        self.field_paths.add(path)

    def __bool__(self) -> bool:
        return bool(self.field_paths)
