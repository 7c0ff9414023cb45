"""The README's first block, run as a script: `make run &`, the readiness wait, a token and the
query, from a project directory with the real Makefile, against a real server on a free port
(chosen through MEDGW_PORT, which `make run` must honour) with a scratch data directory."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ADDRESS = "127.0.0.1:8000"


def first_block() -> str:
    """The first ``sh`` block under "## First query" of README.md, as written."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^## First query\n+```sh\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
    assert found, "README.md has no ```sh block under '## First query'"
    return found.group(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def project() -> Iterator[Path]:
    """A copy of the project's Makefile and pyproject.toml whose .venv is this interpreter's
    (so that `make run` installs nothing), with a scratch data directory ``var``. Not under
    pytest's tmp_path: the embedded server must traverse every parent of its data directory."""
    with tempfile.TemporaryDirectory(prefix="medgw-readme-") as tmp:
        here = Path(tmp)
        for name in ("Makefile", "pyproject.toml", "requirements.lock", "requirements-dev.lock"):
            shutil.copy(ROOT / name, here / name)
        bin_dir = here / ".venv" / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "python").symlink_to(sys.executable)
        (bin_dir / "medgw").symlink_to(Path(sys.executable).parent / "medgw")
        (here / ".venv" / ".installed").touch()
        yield here
        # Stopped (SIGTERM) with `make run`, the server stops its embedded PostgreSQL.
        assert _wait_stopped(here / "var" / "pgdata" / "postmaster.pid"), "PostgreSQL left running"


def _wait_stopped(pid_file: Path, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return not pid_file.exists()


def run_block(project: Path, script: str, port: int) -> tuple[int, str, str]:
    """Run ``script`` with bash in ``project``; stop what it left running (its process group)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DATABASE_URL", "MEDGW_MIGRATION_URL", "MEDGW_JWT_SECRET", "MEDGW_HOST")
        and name not in ("HOST", "PORT")
    }
    env |= {
        "MEDGW_PORT": str(port),
        "MEDGW_DATA_DIR": str(project / "var"),
        "DEMO_PERSONS": "400",
        "PYTHONPATH": str(ROOT),
    }
    out, err = project / "stdout", project / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        shell = subprocess.Popen(
            ["bash", "-c", script],
            cwd=project,
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            code = shell.wait(timeout=300)
        finally:
            # `make run &` is still serving: stop it and its children (uvicorn, PostgreSQL).
            with contextlib.suppress(ProcessLookupError):  # nothing left running
                os.killpg(shell.pid, signal.SIGTERM)
            shell.wait(timeout=30)
    return code, out.read_text(encoding="utf-8"), err.read_text(encoding="utf-8")


def test_the_readme_first_block_prints_beneficiaries(project: Path) -> None:
    block = first_block()
    assert block.count(DEFAULT_ADDRESS) >= 2, "the block waits for and queries 127.0.0.1:8000"
    port = free_port()
    code, stdout, stderr = run_block(
        project, block.replace(DEFAULT_ADDRESS, f"127.0.0.1:{port}"), port
    )
    assert code == 0, stderr
    answers = [line for line in stdout.splitlines() if line.startswith("{")]
    assert len(answers) == 1, stdout + stderr
    body: dict[str, Any] = json.loads(answers[0])
    assert "errors" not in body, (body, stderr)
    nodes = [edge["node"] for edge in body["data"]["beneficiaries"]["edges"]]
    assert 1 <= len(nodes) <= 5
    for node in nodes:
        assert node["name"]
        assert node["regionCode"].startswith("5104")
        assert len(node["idNumber"]) == 18
        assert "MINIMUM_LIVING" in {identity["category"] for identity in node["identities"]}
    # The living demo: claims settled through the five payers, each adding up to its cost.
    claims = [edge["node"] for node in nodes for edge in node["claims"]["edges"]]
    assert claims, nodes
    for claim in claims:
        paid = sum(Decimal(amount) for amount in claim["settlement"].values())
        assert paid == Decimal(claim["totalCost"]), claim
    # Served where MEDGW_PORT said, and announced with the command that signs a token.
    ready = f"ready: http://127.0.0.1:{port}/graphql (development; data in {project / 'var'})"
    assert ready in stderr
    assert "token --department medical_insurance --org 攀枝花医保局 --region 5104" in stderr
