"""Signed checkpoints of the audit chain's head, kept outside the database (ACCESS.md).

A database superuser can delete the newest audit records or recompute the whole chain so that
every link holds again. A checkpoint says how many records the chain had, the id and hash of
the newest, and when, signed (HMAC-SHA256) with a key the database does not hold; checkpoints
are appended, one JSON object per line, to a file outside the database. ``medgw audit verify``
then notices records missing after a checkpoint or a head that no longer matches one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head at one moment: ``count`` records, the newest ``last_id`` (None when
    empty) with hash ``head``, at time ``at`` (ISO 8601, UTC); ``signature`` is the hex
    HMAC-SHA256 of the other fields' canonical JSON.

    >>> c = Checkpoint.signed(b"k", count=2, last_id=7, head="ab", at="2026-01-01T00:00:00+00:00")
    >>> c.valid(b"k"), c.valid(b"other key")
    (True, False)
    >>> Checkpoint.from_line(c.line()) == c
    True
    """

    count: int
    last_id: int | None
    head: str
    at: str
    signature: str

    def _body(self) -> dict[str, Any]:
        body = asdict(self)
        del body["signature"]
        return body

    @classmethod
    def signed(
        cls, key: bytes, *, count: int, last_id: int | None, head: str, at: str
    ) -> Checkpoint:
        unsigned = cls(count=count, last_id=last_id, head=head, at=at, signature="")
        digest = hmac.new(key, _canonical(unsigned._body()), hashlib.sha256).hexdigest()
        return cls(count=count, last_id=last_id, head=head, at=at, signature=digest)

    def valid(self, key: bytes) -> bool:
        """Whether ``signature`` was made with ``key`` over these very fields."""
        expected = hmac.new(key, _canonical(self._body()), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.signature)

    def same_head(self, other: Checkpoint | None) -> bool:
        return other is not None and (self.count, self.last_id, self.head) == (
            other.count,
            other.last_id,
            other.head,
        )

    @property
    def time(self) -> datetime:
        return datetime.fromisoformat(self.at)

    def line(self) -> str:
        return _canonical(asdict(self)).decode() + "\n"

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
        return cls(count=count, last_id=last_id, head=head, at=at, signature=signature)


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
