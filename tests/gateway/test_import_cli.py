"""``medgw import``: exit 0 when stored, 1 with the report when refused, 2 on a bad option."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app
from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from tests.resolvers.test_imports import count, example, write

runner = CliRunner()
AS_CIVIL_AFFAIRS = ["--as", "civil_affairs", "--org", "民政局", "--region", "5104"]


def _env(settings: Settings, database_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "MEDGW_DATA_DIR": str(settings.data_dir)}


async def test_import_stores_a_list_or_refuses_it_with_the_report(
    db: Database, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    env = _env(settings, database_url)
    rows = example("persons")
    rows[4][1] = ""
    bad = write(tmp_path / "persons.csv", rows, "gb18030")
    args = ["import", "persons", str(bad), *AS_CIVIL_AFFAIRS]
    result = await asyncio.to_thread(runner.invoke, app, args, env=env)
    assert result.exit_code == 1, result.output
    report = tmp_path / "persons.csv.report.csv"
    assert f"report (1 problems): {report}" in result.output.replace("\n", "")
    with report.open(encoding="utf-8-sig", newline="") as file:
        assert list(csv.reader(file)) == [
            ["line", "column", "value", "reason"],
            ["5", "姓名", "", "is required"],
        ]
    assert await count(db, models.Beneficiary) == 0
    good = write(tmp_path / "persons.xlsx", example("persons"))
    args = ["import", "persons", str(good), *AS_CIVIL_AFFAIRS]
    result = await asyncio.to_thread(runner.invoke, app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "STORED: rows 4, stored 4" in result.output
    assert await count(db, models.Beneficiary) == 4


async def test_import_refuses_bad_options_in_one_line(
    db: Database, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    env = _env(settings, database_url)
    path = write(tmp_path / "i.csv", example("identities"))
    cases = [
        (["import", "claims", str(path), *AS_CIVIL_AFFAIRS], 2, "KIND = claims"),
        (
            ["import", "identities", str(path), *AS_CIVIL_AFFAIRS, "--snapshot", "--as-of", "x"],
            2,
            "--as-of = x",
        ),
        (
            ["import", "flags", str(path), *AS_CIVIL_AFFAIRS],
            1,
            "may not use recordMonitoringFlag",
        ),
    ]
    for args, code, message in cases:
        result = await asyncio.to_thread(runner.invoke, app, args, env=env)
        assert result.exit_code == code, result.output
        assert message in result.output
