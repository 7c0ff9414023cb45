"""The medgw command line: tokens, migrations and demo data on the configured database, and the
embedded PostgreSQL started, reused and stopped in the data directory."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import jwt
import psutil
import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.config import Settings
from gateway.storage import embedded

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


@pytest.mark.parametrize("ending", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_served_gateway_ended_by_a_signal_stops_its_embedded_server(ending: int) -> None:
    """`medgw serve` ended by `kill`, `docker stop`, systemd (SIGTERM), its terminal closed
    (SIGHUP) or Ctrl-C (SIGINT) exits through its exit handlers: the embedded PostgreSQL it
    started is stopped, none is left running."""
    with tempfile.TemporaryDirectory(prefix="medgw-cli-") as tmp:
        data = Path(tmp) / "var"
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env |= {"MEDGW_DATA_DIR": str(data), "MEDGW_PORT": str(_free_port())}
        medgw = Path(sys.executable).parent / "medgw"
        served = subprocess.Popen(
            [str(medgw), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert served.stderr is not None
            for line in served.stderr:
                if line.startswith("ready:"):
                    break
            else:
                raise AssertionError(f"no ready line; exit {served.wait()}")
            assert (data / "pgdata" / "postmaster.pid").exists()
            served.send_signal(ending)
            status = served.wait(timeout=60)
        finally:
            if served.poll() is None:
                served.kill()
        # As a kill's status; Ctrl-C is uvicorn's own orderly stop.
        assert status == (0 if ending == signal.SIGINT else 128 + ending), status
        deadline = time.monotonic() + 20
        while (data / "pgdata" / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (data / "pgdata" / "postmaster.pid").exists(), "PostgreSQL left running"


def test_a_temporary_embedded_server_is_stopped_before_its_directory_goes() -> None:
    """The suite's and the benchmarks' throwaway server (``embedded.temporary``): at the end of
    its block PostgreSQL is stopped; with its directory removed first it ran on, orphaned, until
    it noticed (up to a minute after the test run)."""

    async def postmaster(url: str) -> int:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            data = Path(await conn.fetchval("SHOW data_directory"))
        finally:
            await conn.close()
        return int((data / "postmaster.pid").read_text().splitlines()[0])

    def running(pid: int) -> bool:  # a stopped child of this process may wait to be reaped
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    with embedded.temporary("medgw-temporary-") as urls:
        pid = asyncio.run(postmaster(urls.superuser))
        assert running(pid)
    assert not running(pid), "PostgreSQL left running"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- where the CLI keeps its data, and how it refuses (issue 10, points 3 and 8) ---------------

ROOT = Path(__file__).resolve().parents[2]
HIDDEN = ("DATABASE_URL", "MEDGW_MIGRATION_URL", "MEDGW_DATA_DIR", "MEDGW_JWT_SECRET", "MEDGW_ENV")
TOKEN = ("token", "--department", "insurer", "--org", "o", "--region", "51")


def medgw_in(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``medgw *args`` run as a user would, from ``cwd``, with only the ``env`` settings given
    (this worktree's code on PYTHONPATH)."""
    environment = {k: v for k, v in os.environ.items() if k not in HIDDEN}
    environment |= {"PYTHONPATH": str(ROOT), "COLUMNS": "200", **env}
    medgw = Path(sys.executable).parent / "medgw"
    return subprocess.run(
        [str(medgw), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_default_data_directory_is_the_checkouts_var_wherever_the_cli_runs(
    tmp_path: Path,
) -> None:
    secret = ROOT / "var" / "jwt_secret"
    result = medgw_in(tmp_path, *TOKEN)
    assert list(tmp_path.iterdir()) == []  # no ./var where it was run
    if secret.exists():
        assert result.returncode == 0, result.stderr
        assert result.stderr == f"signed with the secret in {secret}\n"
        token = result.stdout.strip()
        assert jwt.decode(token, secret.read_text().strip(), algorithms=["HS256"])["org"] == "o"
    else:
        assert result.returncode == 2
        assert result.stderr.startswith(f"error: no JWT secret in {secret} (MEDGW_DATA_DIR)")


def test_token_without_a_data_directory_refuses_in_one_line_and_creates_nothing(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere"
    result = medgw_in(tmp_path, *TOKEN, MEDGW_DATA_DIR=str(missing))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: no JWT secret in {missing / 'jwt_secret'} (MEDGW_DATA_DIR): start the gateway "
        "once (`medgw serve`), or set MEDGW_DATA_DIR or MEDGW_JWT_SECRET\n"
    )
    assert not missing.exists()


def test_token_signs_with_the_secret_of_the_data_directory_and_says_where(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "jwt_secret").write_text(SECRET + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # A relative MEDGW_DATA_DIR is taken from where the command runs, then made absolute.
    result = medgw_in(elsewhere, *TOKEN, MEDGW_DATA_DIR="../data")
    assert result.returncode == 0, result.stderr
    assert (
        result.stderr == f"signed with the secret in {elsewhere / '..' / 'data' / 'jwt_secret'}\n"
    )
    assert jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])["regions"] == ["51"]
    assert list(elsewhere.iterdir()) == []


def test_audit_verify_without_a_database_refuses_in_one_line_and_creates_nothing(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere"
    for command in ("verify", "checkpoint"):
        result = medgw_in(tmp_path, "audit", command, MEDGW_DATA_DIR=str(missing))
        assert result.returncode == 2
        assert result.stderr == (
            f"error: no database in {missing / 'pgdata'} (MEDGW_DATA_DIR): create it with "
            "`medgw migrate` or `medgw serve`, or set MEDGW_DATA_DIR or DATABASE_URL\n"
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("ttl", "max_ttl", "line"),
    [
        ("0s", None, "error: --ttl = 0s: must be between 1m and 30d (MEDGW_MAX_TOKEN_TTL)"),
        ("59s", None, "error: --ttl = 59s: must be between 1m and 30d (MEDGW_MAX_TOKEN_TTL)"),
        ("31d", None, "error: --ttl = 31d: must be between 1m and 30d (MEDGW_MAX_TOKEN_TTL)"),
        (
            "100000d",
            None,
            "error: --ttl = 100000d: must be between 1m and 30d (MEDGW_MAX_TOKEN_TTL)",
        ),
        ("3h", "2h", "error: --ttl = 3h: must be between 1m and 2h (MEDGW_MAX_TOKEN_TTL)"),
        ("8 h", None, "error: --ttl = 8 h: expected a number and a unit s, m, h or d (e.g. 8h)"),
    ],
)
def test_token_ttl_is_bounded_naming_the_option_and_the_setting(
    ttl: str, max_ttl: str | None, line: str
) -> None:
    env = {"MEDGW_JWT_SECRET": SECRET} | ({"MEDGW_MAX_TOKEN_TTL": max_ttl} if max_ttl else {})
    result = runner.invoke(app, [*TOKEN, "--ttl", ttl], env=env)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == line + "\n"


@pytest.mark.parametrize(("ttl", "seconds"), [("1m", 60), ("30d", 30 * 86_400)])
def test_token_ttl_bounds_are_inclusive(ttl: str, seconds: int) -> None:
    result = runner.invoke(app, [*TOKEN, "--ttl", ttl], env={"MEDGW_JWT_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == seconds


def test_token_help_lists_the_departments_and_purposes_of_the_access_policies() -> None:
    from gateway.app import load_access_for_schema

    policies = load_access_for_schema()[1].departments
    result = runner.invoke(app, ["token", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    departments = ", ".join(f"{name} ({policies[name].title})" for name in sorted(policies))
    assert f"Departments: {departments}." in text
    assert (
        "Purposes: claim_handling (needed by insurer for personal fields), "
        "treatment (needed by hospital for personal fields)."
    ) in text


ENV_PROD = "error: MEDGW_ENV = 'prod': Input should be 'development' or 'production'"


@pytest.mark.parametrize(
    ("command", "env", "line"),
    [
        (TOKEN, {"MEDGW_ENV": "prod"}, ENV_PROD),
        (("migrate",), {"MEDGW_ENV": "prod"}, ENV_PROD),
        (("audit", "verify"), {"MEDGW_ENV": "prod"}, ENV_PROD),
        (
            ("serve",),
            {"MEDGW_PORT": "eighty"},
            "error: MEDGW_PORT = 'eighty': Input should be a valid integer, unable to parse "
            "string as an integer",
        ),
        (
            TOKEN,
            {"MEDGW_MAX_TOKEN_TTL": "forever"},
            "error: MEDGW_MAX_TOKEN_TTL = 'forever': expected a number and a unit s, m, h or d "
            "(e.g. 30d)",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    tmp_path: Path, command: tuple[str, ...], env: dict[str, str], line: str
) -> None:
    result = medgw_in(tmp_path, *command, MEDGW_DATA_DIR=str(tmp_path / "data"), **env)
    assert result.returncode == 2
    assert result.stderr == line + "\n"
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_database_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    url = f"postgresql://medgw:secret@127.0.0.1:{port}/medgw"
    shown = f"postgresql://medgw:***@127.0.0.1:{port}/medgw"
    refused = f"cannot connect ([Errno 111] Connect call failed ('127.0.0.1', {port}))"
    data = str(tmp_path / "data")
    for command in (("migrate",), ("demo",), ("audit", "verify"), ("serve",)):
        result = medgw_in(tmp_path, *command, DATABASE_URL=url, MEDGW_DATA_DIR=data)
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr == f"error: DATABASE_URL = {shown}: {refused}\n", command
    owner = medgw_in(
        tmp_path, "migrate", DATABASE_URL="postgresql://app@db/x", MEDGW_MIGRATION_URL=url
    )
    assert owner.returncode == 2
    assert owner.stderr == f"error: MEDGW_MIGRATION_URL = {shown}: {refused}\n"
    wrong = medgw_in(tmp_path, "audit", "verify", DATABASE_URL="mysql://u@h/x")
    assert wrong.returncode == 2
    assert (
        wrong.stderr
        == "error: DATABASE_URL = 'mysql://u@h/x': only PostgreSQL URLs are supported\n"
    )


def test_a_database_that_refuses_the_login_is_one_line(database_url: str, tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    absent = make_url(database_url).set(database="no_such_database")
    result = medgw_in(
        tmp_path,
        "audit",
        "verify",
        DATABASE_URL=absent.render_as_string(hide_password=False),
        MEDGW_DATA_DIR=str(tmp_path),
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    shown = absent.render_as_string(hide_password=True)
    assert line == (
        f'error: DATABASE_URL = {shown}: cannot connect (database "no_such_database" does not '
        "exist)"
    )


# --- make run: the settings decide where to serve unless make is told (issue 10, point 2) ------


def make_run_command(*assignments: str, **env: str) -> str:
    """The command `make -n run` would run to serve (the last line it prints)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")} | env
    result = subprocess.run(
        ["make", "-n", "-s", "-C", str(ROOT), "run", *assignments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def test_make_run_leaves_host_and_port_to_the_settings() -> None:
    command = make_run_command(MEDGW_HOST="0.0.0.0", MEDGW_PORT="8731", HOST="laptop", PORT="1")
    assert command == ".venv/bin/medgw serve --demo-persons 2000"


def test_make_run_host_and_port_given_to_make_win() -> None:
    command = make_run_command("HOST=0.0.0.0", "PORT=8731", MEDGW_PORT="9000")
    assert command == ".venv/bin/medgw serve --host 0.0.0.0 --port 8731 --demo-persons 2000"
