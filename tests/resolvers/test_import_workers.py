"""List imports whose batches are parsed in worker processes (a large file,
resolvers/import_staging.py) store and report exactly what the in-process parsing does."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.storage.database import Database
from policies.benefits import PolicySet
from resolvers import import_staging
from resolvers.imports import ImportRequest, import_file, plan, report_rows
from tests.resolvers.test_imports import ACCESS, _id, contents, example, principal, write


@pytest.mark.parametrize("workers", [0, 1])
async def test_batches_parsed_in_worker_processes_give_the_same_result(
    db: Database,
    policies: PolicySet,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
) -> None:
    # Batches of two rows, all but the first parsed by `workers` processes (0: in a thread).
    monkeypatch.setattr(import_staging, "BATCH_ROWS", 2)
    monkeypatch.setattr(import_staging, "THREAD_BATCHES", 1)
    monkeypatch.setattr(import_staging, "PARSE_WORKERS", workers)
    caller = principal("civil_affairs")
    today = settings.today()
    persons = example("persons")
    persons[4][1] = ""  # a refused row in a batch parsed by a worker
    seen: list[int] = []
    summary = await import_file(
        db, caller, policies, ACCESS,
        plan(ImportRequest("persons", accept_valid=True), caller, ACCESS, today),
        write(tmp_path / "p.csv", persons), today, progress=lambda count, _: seen.append(count),
    )  # fmt: skip
    assert (summary.rows, summary.stored, summary.refused) == (len(persons) - 1, 3, 1)
    assert seen == [2, 4]
    report = [r async for r in report_rows(db, caller, _id(summary))]
    assert report == [(5, "姓名", "", "is required")]
    stored = await contents(db)
    names = sorted(row[1] for row in persons[1:] if row[1])
    assert sorted(row[1] for row in stored["beneficiaries"]) == names

    identities = example("identities")
    summary = await import_file(
        db, caller, policies, ACCESS, plan(ImportRequest("identities"), caller, ACCESS, today),
        write(tmp_path / "i.csv", identities), today,
    )  # fmt: skip
    assert (summary.status, summary.stored, summary.refused) == ("STORED", 3, 0)
    records = (await contents(db))["identities"]
    assert sorted((str(r[2]), str(r[3]), r[5]) for r in records) == sorted(
        (row[2], row[3] or "None", row[5]) for row in identities[1:]
    )
