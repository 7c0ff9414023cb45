"""the audit shard's lock and head in one round trip: ``audit_take_shard``

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01

An audit append took its shard's lock in one statement and read the shard's head in the next
(the head must be read by a statement younger than the lock, or it could miss the record the
lock's previous holder committed: a statement's snapshot is taken when it starts). The function
``audit_take_shard(first, shards, chain, ids)`` does both in one call: a PL/pgSQL function
declared VOLATILE runs each of its statements with a fresh snapshot (READ COMMITTED), so its
head query, run after its lock query, sees every commit made before the lock was granted.

It returns one row ``(shard, head, new_ids)``: the first shard from ``first`` (modulo
``shards``) whose transaction-scoped advisory lock (``chain + shard``) is free, or, when every
one is held, a random one waited for; that shard's newest record's hash (NULL when empty); and
``ids`` new record ids from the log's sequence. The lock is the caller's transaction's (the
function is called inside it), which must be READ COMMITTED: in REPEATABLE READ or SERIALIZABLE
every statement reads the transaction's first snapshot, which may be older than the lock, so the
function raises there instead of linking to a stale head. SECURITY INVOKER: the app role needs SELECT on ``audit_log`` and
the sequence's USAGE, which it has; EXECUTE is granted to it alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "medgw_app"
SIGNATURE = "audit_take_shard(integer, integer, bigint, integer)"
FUNCTION = """CREATE FUNCTION audit_take_shard(first integer, shards integer, chain bigint,
                                 ids integer)
RETURNS TABLE (shard integer, head text, new_ids bigint[])
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    taken integer;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'audit_take_shard needs READ COMMITTED (a head read after the lock), not %',
            current_setting('transaction_isolation');
    END IF;
    SELECT o.s INTO taken
    FROM (SELECT (g + first) % shards AS s FROM generate_series(0, shards - 1) g) o
    WHERE pg_try_advisory_xact_lock(chain + o.s) LIMIT 1;
    IF taken IS NULL THEN
        taken := floor(random() * shards)::integer;
        PERFORM pg_advisory_xact_lock(chain + taken);
    END IF;
    -- A statement of its own, after the lock: a snapshot younger than the lock.
    RETURN QUERY SELECT taken,
        (SELECT a.hash FROM audit_log a WHERE a.shard = taken ORDER BY a.id DESC LIMIT 1)::text,
        ARRAY(SELECT nextval(pg_get_serial_sequence('audit_log', 'id'))
              FROM generate_series(1, ids));
END
$$"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
