"""The IDENTITY_CHANGED events of identity imports (resolvers/import_merge.py): one per person
whose records the import stored, changed or ended, none for a refused row or a person the list
does not name, none for a re-import."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

from sqlalchemy import text

from gateway.config import Settings
from gateway.storage.database import Database
from policies.benefits import PolicySet
from resolvers.imports import report_rows
from tests.resolvers.test_imports import id_number, principal, run, write

A, B, C, D = (id_number(f"5104021970010{n}001") for n in range(1, 5))
E = id_number("51040219700106001")  # never registered
HEADER = ["身份证号", "类别", "认定日期", "终止日期", "文号"]


async def events(db: Database) -> list[tuple[str, str]]:
    """(ID number, operation) of every IDENTITY_CHANGED event, in event order."""
    async with db.sessions() as session:
        rows = await session.execute(
            text(
                "SELECT b.id_number, o.detail->>'operation' FROM outbox_events o "
                "JOIN beneficiaries b ON b.id = o.beneficiary_id "
                "WHERE o.type = 'IDENTITY_CHANGED' ORDER BY o.id"
            )
        )
        return [(str(n), str(op)) for n, op in rows]


async def test_events_name_exactly_the_persons_whose_records_changed(
    db: Database, policies: PolicySet, settings: Settings, tmp_path: Path
) -> None:
    persons = [["身份证号", "姓名", "区划代码"]] + [
        [n, name, "510402"] for n, name in ((A, "甲"), (B, "乙"), (C, "丙"), (D, "丁"))
    ]
    await run(db, policies, settings, "persons", write(tmp_path / "p.csv", persons))

    # Valid rows for A and C (C twice: two records, one event); B's row is refused, E is no
    # one's: stored with acceptValid, and only A and C are told of.
    rows = [
        HEADER,
        [A, "低保", "2026-01-01", "", "东民发〔2026〕1号"],
        [B, "低保", "2026-13-01", "", "东民发〔2026〕1号"],
        [C, "低保", "2025-01-01", "2025-06-30", "东民发〔2025〕1号"],
        [C, "低保", "2026-01-01", "", "东民发〔2026〕1号"],
        [E, "低保", "2026-01-01", "", "东民发〔2026〕1号"],
    ]
    path = write(tmp_path / "i.csv", rows)
    summary = await run(db, policies, settings, "identities", path, accept_valid=True)
    assert (summary.status, summary.stored, summary.refused) == ("STORED", 3, 2)
    job = uuid.UUID(summary.importId)
    report = [r async for r in report_rows(db, principal("civil_affairs"), job)]
    assert [(line, value, reason) for line, _, value, reason in report] == [
        (3, "2026-13-01", "no such date"),
        (6, E, "no such beneficiary"),
    ]
    first = await events(db)
    assert sorted(first) == sorted([(A, "importIdentities"), (C, "importIdentities")])

    # A's new row overlaps A's stored record: refused by the checks (after the person was
    # found), so only B, whose row is stored, is told of.
    rows = [HEADER, [A, "低保", "2026-02-01", "", "r"], [B, "低保", "2026-01-01", "", "r"]]
    path = write(tmp_path / "i2.csv", rows)
    summary = await run(db, policies, settings, "identities", path, accept_valid=True)
    assert (summary.status, summary.stored, summary.refused) == ("STORED", 1, 1)
    middle = (await events(db))[len(first) :]
    assert middle == [(B, "importIdentities")]
    first += middle

    # The list of 低保 as of 2026-10-01: A and B are gone (ended), C's open record ends
    # earlier (changed), D is new.
    snapshot = [
        ["身份证号", "认定日期", "终止日期", "文号"],
        [C, "2026-01-01", "2026-09-30", "东民发〔2026〕9号"],
        [D, "2026-03-01", "", "东民发〔2026〕9号"],
    ]
    path = write(tmp_path / "snapshot.csv", snapshot)
    request = {"snapshot": True, "category": "MINIMUM_LIVING", "as_of": date(2026, 10, 1)}
    summary = await run(db, policies, settings, "identities", path, **request)  # type: ignore[arg-type]
    assert (summary.status, summary.stored, summary.changed, summary.ended) == ("STORED", 1, 1, 2)
    second = (await events(db))[len(first) :]
    assert sorted(n for n, _ in second) == sorted([A, B, C, D])

    # The same snapshot again changes nothing and tells no one.
    summary = await run(db, policies, settings, "identities", path, **request)  # type: ignore[arg-type]
    assert (summary.stored, summary.changed, summary.ended) == (0, 0, 0)
    assert len(await events(db)) == len(first) + len(second)
