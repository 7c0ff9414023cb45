"""Signed checkpoints of the audit chain's heads, kept outside the database (ACCESS.md).

A database superuser can delete the newest audit records or recompute the whole chain so that
every link holds again. A checkpoint says, for every shard of the chain, how many records it had
and the id and hash of its newest (``shards``), plus the totals (all records, the newest id and
its hash), and when, signed (HMAC-SHA256) with a key the database does not hold; checkpoints
are appended, one JSON object per line, to a file outside the database. ``medgw audit verify``
then notices records missing from any shard after a checkpoint or a shard head that no longer
matches one.

Checkpoints written before the chain had shards have no ``shards``; their signature covers the
other fields as it always did, and they speak of the one chain there was, now shard 0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ShardHead:
    """One shard's chain at a checkpoint: ``count`` records, the newest ``last_id`` with hash
    ``head`` (None and the genesis hash when the shard is empty)."""

    shard: int
    count: int
    last_id: int | None
    head: str

    def row(self) -> list[Any]:
        return [self.shard, self.count, self.last_id, self.head]

    @classmethod
    def from_row(cls, row: Any) -> ShardHead:
        """Raises ValueError when ``row`` is not ``[shard, count, last_id, head]``."""
        if not (isinstance(row, list) and len(row) == 4):
            raise ValueError("a shard is [shard, count, last_id, head]")
        shard, count, last_id, head = row
        if not (
            isinstance(shard, int)
            and isinstance(count, int)
            and (last_id is None or isinstance(last_id, int))
            and isinstance(head, str)
        ):
            raise ValueError("shard, count and last_id must be numbers, head a string")
        return cls(shard, count, last_id, head)


@dataclass(frozen=True)
class Checkpoint:
    """The chain's heads at one moment: ``count`` records in all, the newest ``last_id`` (None
    when empty) with hash ``head``, at time ``at`` (ISO 8601, UTC), and ``shards``, the head of
    each shard (None in checkpoints from before the shards); ``signature`` is the hex
    HMAC-SHA256 of the other fields' canonical JSON, so it covers every shard's head.

    >>> c = Checkpoint.signed(b"k", count=2, last_id=7, head="ab", at="2026-01-01T00:00:00+00:00")
    >>> c.valid(b"k"), c.valid(b"other key")
    (True, False)
    >>> Checkpoint.from_line(c.line()) == c
    True
    >>> c.heads()
    [ShardHead(shard=0, count=2, last_id=7, head='ab')]
    """

    count: int
    last_id: int | None
    head: str
    at: str
    signature: str
    shards: tuple[ShardHead, ...] | None = None

    def _body(self) -> dict[str, Any]:
        body = self._fields()
        del body["signature"]
        return body

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "count": self.count,
            "last_id": self.last_id,
            "head": self.head,
            "at": self.at,
            "signature": self.signature,
        }
        if self.shards is not None:
            fields["shards"] = [shard.row() for shard in self.shards]
        return fields

    def heads(self) -> list[ShardHead]:
        """Every shard's head; a checkpoint from before the shards signed shard 0's."""
        if self.shards is None:
            return [ShardHead(0, self.count, self.last_id, self.head)]
        return list(self.shards)

    @classmethod
    def signed(
        cls,
        key: bytes,
        *,
        count: int,
        last_id: int | None,
        head: str,
        at: str,
        shards: Sequence[ShardHead] | None = None,
    ) -> Checkpoint:
        heads = None if shards is None else tuple(shards)
        unsigned = cls(count=count, last_id=last_id, head=head, at=at, signature="", shards=heads)
        digest = hmac.new(key, _canonical(unsigned._body()), hashlib.sha256).hexdigest()
        return dataclasses.replace(unsigned, signature=digest)

    def valid(self, key: bytes) -> bool:
        """Whether ``signature`` was made with ``key`` over these very fields."""
        expected = hmac.new(key, _canonical(self._body()), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.signature)

    def same_head(self, other: Checkpoint | None) -> bool:
        return other is not None and self.heads() == other.heads()

    @property
    def time(self) -> datetime:
        return datetime.fromisoformat(self.at)

    def line(self) -> str:
        return _canonical(self._fields()).decode() + "\n"

    @classmethod
    def from_line(cls, line: str) -> Checkpoint:
        """Raises ValueError (or TypeError, KeyError) when the line is not a checkpoint."""
        data = json.loads(line)
        count, last_id, head, at, signature = (
            data[name] for name in ("count", "last_id", "head", "at", "signature")
        )
        if not (
            isinstance(count, int)
            and (last_id is None or isinstance(last_id, int))
            and all(isinstance(value, str) for value in (head, at, signature))
        ):
            raise ValueError("count and last_id must be numbers; head, at, signature strings")
        datetime.fromisoformat(at)
        shards = data.get("shards")
        if shards is not None:
            if not isinstance(shards, list):
                raise ValueError("shards must be a list")
            shards = tuple(ShardHead.from_row(row) for row in shards)
        return cls(
            count=count, last_id=last_id, head=head, at=at, signature=signature, shards=shards
        )


class CheckpointFileError(ValueError):
    """A line of the checkpoint file that is not a checkpoint (names file and line)."""


def append(path: Path, checkpoint: Checkpoint) -> None:
    """Append one line with a single ``write`` (O_APPEND: processes do not interleave) and
    flush it to disk; the file is created with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, checkpoint.line().encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> list[Checkpoint]:
    """All checkpoints of the file, oldest first (signatures not checked).

    Raises FileNotFoundError when there is no file, CheckpointFileError naming the line when a
    line is not a checkpoint.
    """
    found: list[Checkpoint] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                found.append(Checkpoint.from_line(line))
            except (ValueError, TypeError, KeyError) as exc:
                message = f"{path} line {number}: not a checkpoint ({exc})"
                raise CheckpointFileError(message) from None
    return found
