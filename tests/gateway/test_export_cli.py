"""``medgw export``: the file a department gets, and one-line errors naming option and value."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.config import Settings
from gateway.tables import Format
from tests.conftest import GraphQLClient
from tests.resolvers.test_exports import (
    ALERTS,
    alert_rows,
    build_world,
    by,
    read_back,
)

runner = CliRunner()


@pytest.fixture
async def world(gql: GraphQLClient) -> None:
    await build_world(gql)


AS_CIVIL_AFFAIRS = [
    "--as",
    "civil_affairs",
    "--org",
    "民政局",
    "--region",
    "5104",
    "--region",
    "3708",
]


def _env(settings: Settings, database_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "MEDGW_DATA_DIR": str(settings.data_dir)}


@pytest.mark.parametrize("shape", [Format.CSV, Format.XLSX])
async def test_export_writes_the_alert_list_civil_affairs_reads(
    world: None,
    gql: GraphQLClient,
    settings: Settings,
    database_url: str,
    tmp_path: Path,
    shape: Format,
) -> None:
    out = tmp_path / f"alerts.{shape}"
    args = [
        "export",
        "alerts",
        *AS_CIVIL_AFFAIRS,
        "--year",
        "2023",
        "--format",
        shape.value,
        "-o",
        str(out),
    ]
    # In a thread: the command runs its own event loop.
    result = await asyncio.to_thread(runner.invoke, app, args, env=_env(settings, database_url))
    assert result.exit_code == 0, result.output
    assert f"written to {out}" in result.output
    kinds = ["money" if n in ("outOfPocket", "threshold") else "text" for n in _names(shape)]
    exported = read_back(await asyncio.to_thread(out.read_bytes), shape, kinds)
    api = alert_rows(await gql.data(ALERTS, department="civil_affairs", regions=("5104", "3708")))
    assert exported
    assert by("alertId", exported) == by("alertId", api)
    assert not [p for p in await asyncio.to_thread(tmp_path.iterdir) if p.suffix == ".part"]


def _names(shape: Format) -> list[str]:
    return [
        "alertId",
        "year",
        "beneficiaryId",
        "idNumber",
        "name",
        "regionCode",
        "outOfPocket",
        "threshold",
        "status",
        "resolution",
        "resolvedAt",
    ]


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["invoices", "--as", "civil_affairs"], "KIND = invoices", 2),
        (["alerts", "--as", "police"], "--as = police", 2),
        (["alerts", "--as", "civil_affairs", "--month", "13"], "--month = 13", 2),
        (["alerts", "--as", "civil_affairs", "--format", "pdf"], "--format = pdf", 2),
        (["settlements", "--as", "civil_affairs"], "refused: civil_affairs may not export", 1),
        (["subsidies", "--as", "finance"], "refused: finance may not export", 1),
    ],
)
def test_export_refuses_in_one_line(
    args: list[str], message: str, code: int, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    kind, *rest = args
    line = [
        "export",
        kind,
        *rest,
        "--org",
        "o",
        "--region",
        "5104",
        "--year",
        "2023",
        "-o",
        str(tmp_path / "x.csv"),
    ]
    result = runner.invoke(app, line, env=_env(settings, database_url))
    assert result.exit_code == code, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "x.csv").exists()
