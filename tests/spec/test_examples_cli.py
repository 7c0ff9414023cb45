"""Every example reproduced by ``medgw simulate``; a bad case exits non-zero, naming the field
and the value."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from tests.spec.examples import load_examples

EXAMPLES = load_examples()
runner = CliRunner()


def _case_file(tmp_path: Path, case: object) -> Path:
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(("stem", "example"), EXAMPLES, ids=[stem for stem, _ in EXAMPLES])
def test_simulate_prints_the_expected_output(
    tmp_path: Path, stem: str, example: dict[str, Any]
) -> None:
    result = runner.invoke(app, ["simulate", str(_case_file(tmp_path, example["case"]))])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == example["expected"]


def test_simulate_explain_adds_an_explanation_per_visit(tmp_path: Path) -> None:
    _, example = EXAMPLES[1]  # P02: tilted critical illness
    result = runner.invoke(
        app, ["simulate", str(_case_file(tmp_path, example["case"])), "--explain"]
    )
    assert result.exit_code == 0, result.output
    [visit] = json.loads(result.stdout)["visits"]
    lines = {line["payer"]: line for line in visit["explanation"]["lines"]}
    assert lines["criticalIllness"]["paid"] == "43888.00"
    assert lines["criticalIllness"]["deductible"] == "10000.00"
    assert "criticalIllness: 43888.00" in visit["explanation"]["text"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"policyScopeCost": "40000.00"}, "visits[0].policyScopeCost = 40000.00"),
        ({"type": "DENTAL"}, "visits[0].type = DENTAL"),
        ({"dischargeDate": "2023-02-01"}, "visits[0].dischargeDate = 2023-02-01"),
        ({"totalCost": "-5"}, "visits[0].totalCost = -5"),
        ({"admissionDate": "2023-13-01"}, "visits[0].admissionDate = 2023-13-01"),
        (
            {"admissionDate": "2020-03-01", "dischargeDate": "2020-03-02"},
            "no benefit policy in force for region 510402 on 2020-03-01",
        ),
    ],
)
def test_bad_cases_exit_non_zero_naming_field_and_value(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    case = json.loads(json.dumps(EXAMPLES[0][1]["case"]))
    case["visits"][0].update(change)
    result = runner.invoke(app, ["simulate", str(_case_file(tmp_path, case))])
    assert result.exit_code != 0
    assert message in result.stderr
    assert result.stdout == ""


def test_a_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "case.json"
    path.write_text("{not json", encoding="utf-8")
    result = runner.invoke(app, ["simulate", str(path)])
    assert result.exit_code != 0
    assert "not JSON" in result.stderr


def test_the_installed_command_runs_as_a_real_process(tmp_path: Path) -> None:
    medgw = shutil.which("medgw", path=str(Path(sys.executable).parent))
    assert medgw, "the console script medgw is installed with the package"
    _, example = EXAMPLES[0]
    done = subprocess.run(
        [medgw, "simulate", str(_case_file(tmp_path, example["case"]))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == example["expected"]
