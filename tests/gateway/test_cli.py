"""The medgw command line: tokens, migrations and demo data on the configured database, and the
embedded PostgreSQL started, reused and stopped in the data directory."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.config import Settings

runner = CliRunner()
SECRET = "cli-secret-" + "z" * 40


def test_token_prints_a_signed_token_with_the_claims() -> None:
    result = runner.invoke(
        app,
        [
            "token",
            "--department",
            "insurer",
            "--org",
            "人保财险",
            "--region",
            "5104",
            "--region",
            "3708",
            "--purpose",
            "claim_handling",
            "--ttl",
            "30m",
        ],
        env={"MEDGW_JWT_SECRET": SECRET},
    )
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["department"] == "insurer"
    assert claims["org"] == "人保财险"
    assert claims["regions"] == ["5104", "3708"]
    assert claims["purpose"] == "claim_handling"
    assert claims["exp"] - claims["iat"] == 1800


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--department", "police", "--org", "o", "--region", "51"], "--department = police"),
        (["--department", "insurer", "--org", "o", "--region", "51x"], "--region = 51x"),
        (["--department", "insurer", "--org", "o", "--region", "51", "--ttl", "soon"], "ttl"),
    ],
)
def test_token_refuses_bad_options_naming_them(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["token", *args], env={"MEDGW_JWT_SECRET": SECRET})
    assert result.exit_code == 2
    assert message in result.output


def test_demo_on_the_configured_database_shows_progress(
    settings: Settings, database_url: str, db: object
) -> None:
    env = {"DATABASE_URL": database_url, "MEDGW_DATA_DIR": str(settings.data_dir)}
    result = runner.invoke(app, ["demo", "--persons", "30", "--seed", "5"], env=env)
    assert result.exit_code == 0, result.output
    assert "demo persons" in result.output
    assert "30 persons added" in result.output


def _medgw(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["MEDGW_DATA_DIR"] = str(data_dir)
    medgw = Path(sys.executable).parent / "medgw"
    return subprocess.run(
        [str(medgw), *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_the_embedded_server_is_created_reused_and_stopped() -> None:
    # Not under pytest's tmp_path: pytest keeps its base folder at mode 0700, while the server
    # (run as the pgserver user when root) must traverse every parent of its data directory.
    with tempfile.TemporaryDirectory(prefix="medgw-cli-") as tmp:
        _create_reuse_stop(Path(tmp) / "var")


def _create_reuse_stop(data: Path) -> None:
    first = _medgw("migrate", data_dir=data)
    assert first.returncode == 0, first.stderr
    assert f"embedded PostgreSQL in {data / 'pgdata'}" in first.stderr
    assert (data / "pgdata" / "PG_VERSION").exists()
    # Stopped when the command ended: no postmaster is left running.
    assert not (data / "pgdata" / "postmaster.pid").exists()
    again = _medgw("migrate", "--revision", "head", data_dir=data)
    assert again.returncode == 0, again.stderr
    demo = _medgw("demo", "--persons", "3", "--if-empty", data_dir=data)
    assert demo.returncode == 0, demo.stderr
    assert "3 persons added" in demo.stderr
    kept = _medgw("demo", "--persons", "3", "--if-empty", data_dir=data)
    assert "database not empty" in kept.stderr
    assert not (data / "pgdata" / "postmaster.pid").exists()
