"""one audit record appended in one statement: ``audit_append``

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01

A read's record committed on its own (a point read's, outside any transaction) took five round
trips: BEGIN, the shard's lock and head (``audit_take_shard``), the INSERT, COMMIT — with the
hash computed in Python between the second and the third. ``audit_append`` does it in one
statement, which run outside a transaction is a transaction of its own, committed before its
answer is sent: the lock of the first free shard (as ``audit_take_shard``: the function is
called by it), the head read after the lock, the record's id from the log's sequence, its hash
and the row inserted.

The hash is the chain's (``gateway.storage.audit.record_digest``): SHA-256, in hex, of the
UTF-8 bytes of the previous record's hash followed by the record's canonical JSON. The caller
sends that canonical JSON (``body``), made by the same code that :func:`verify` uses, so the
database computes only ``sha256(convert_to(head || body, 'UTF8'))``; the function refuses a
database whose encoding is not UTF-8 (its text would not be the bytes Python hashes).

It returns one row ``(id, shard, prev_hash, hash)``. Inside a transaction it works too (the
lock is then held until that transaction ends, as ``audit_take_shard``'s), and refuses the same
isolation levels. EXECUTE is granted to the app role alone; SECURITY INVOKER (the app role may
INSERT and SELECT the log and use its sequence).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "medgw_app"
SIGNATURE = (
    "audit_append(integer, integer, bigint, text, timestamptz, text, text, text, text, text, "
    "text, text, text, uuid[], text[], jsonb)"
)
FUNCTION = """CREATE FUNCTION audit_append(
    first integer, shards integer, chain bigint, body text,
    at timestamptz, action text, department text, org text, subject text, purpose text,
    operation text, query_hash text, query_text text, beneficiary_ids uuid[],
    field_paths text[], detail jsonb)
RETURNS TABLE (id bigint, shard integer, prev_hash text, hash text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    taken integer;
    head text;
    ids bigint[];
    digest text;
BEGIN
    IF current_setting('server_encoding') <> 'UTF8' THEN
        RAISE EXCEPTION 'audit_append needs a UTF8 database, not %',
            current_setting('server_encoding');
    END IF;
    SELECT t.shard, t.head, t.new_ids INTO taken, head, ids
    FROM audit_take_shard(first, shards, chain, 1) t;
    head := coalesce(head, repeat('0', 64));
    digest := encode(sha256(convert_to(head || body, 'UTF8')), 'hex');
    INSERT INTO audit_log AS a (id, at, action, department, org, subject, purpose, operation,
        query_hash, query_text, beneficiary_ids, field_paths, detail, prev_hash, hash, shard)
    VALUES (ids[1], audit_append.at, audit_append.action, audit_append.department,
        audit_append.org, audit_append.subject, audit_append.purpose, audit_append.operation,
        audit_append.query_hash, audit_append.query_text, audit_append.beneficiary_ids,
        audit_append.field_paths, audit_append.detail, head, digest, taken);
    RETURN QUERY SELECT ids[1], taken, head, digest;
END
$$"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
