"""Every example reproduced by ``medgw simulate``; a bad case exits non-zero, naming the field
and the value; ``--check`` compares example files with their expected output."""

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
from tests.spec.examples import VENDORED, load_examples

EXAMPLES = load_examples()
runner = CliRunner()


def _case_file(tmp_path: Path, case: object, name: str = "case.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(case, ensure_ascii=False), encoding="utf-8")
    return path


def _medgw() -> str:
    medgw = shutil.which("medgw", path=str(Path(sys.executable).parent))
    assert medgw, "the console script medgw is installed with the package"
    return medgw


def _altered(example: dict[str, Any]) -> dict[str, Any]:
    """A copy of an example whose first visit expects 1.00 of assistance."""
    altered: dict[str, Any] = json.loads(json.dumps(example))
    altered["expected"]["visits"][0]["assistance"] = "1.00"
    return altered


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
    _, example = EXAMPLES[0]
    done = subprocess.run(
        [_medgw(), "simulate", str(_case_file(tmp_path, example["case"]))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == example["expected"]


def test_check_passes_every_vendored_example_in_one_real_process() -> None:
    files = sorted(VENDORED.glob("*.json"))
    assert files
    done = subprocess.run(
        [_medgw(), "simulate", "--check", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == f"{len(files)} of {len(files)} examples match"


def test_a_whole_example_file_is_settled_by_its_case(tmp_path: Path) -> None:
    _, example = EXAMPLES[0]
    result = runner.invoke(app, ["simulate", str(_case_file(tmp_path, example))])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == example["expected"]


def test_check_of_a_matching_example_prints_an_ok_line(tmp_path: Path) -> None:
    _, example = EXAMPLES[0]
    path = _case_file(tmp_path, example)
    result = runner.invoke(app, ["simulate", "--check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"OK: {path} matches its expected output\n"


def test_check_of_an_altered_example_names_field_expected_and_actual(tmp_path: Path) -> None:
    _, example = EXAMPLES[0]  # P01: assistance 3864.00
    path = _case_file(tmp_path, _altered(example))
    result = runner.invoke(app, ["simulate", "--check", str(path)])
    assert result.exit_code == 1, result.output
    assert result.stdout == f"{path}: visits[0].assistance: expected 1.00, got 3864.00\n"


def test_check_of_several_files_reports_each_difference_and_a_summary(tmp_path: Path) -> None:
    _, example = EXAMPLES[0]
    altered = _case_file(tmp_path, _altered(example), "altered.json")
    others = [_case_file(tmp_path, e, f"{s}.json") for s, e in EXAMPLES[1:3]]
    result = runner.invoke(app, ["simulate", "--check", str(altered), *map(str, others)])
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        f"{altered}: visits[0].assistance: expected 1.00, got 3864.00",
        "2 of 3 examples match",
    ]


def test_check_of_a_directory_checks_its_json_files(tmp_path: Path) -> None:
    for stem, example in EXAMPLES[:2]:
        _case_file(tmp_path, example, f"{stem}.json")
    (tmp_path / "notes.txt").write_text("not a case", encoding="utf-8")
    result = runner.invoke(app, ["simulate", "--check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "2 of 2 examples match\n"


def test_check_with_explain_prints_the_explanation_of_a_differing_example(
    tmp_path: Path,
) -> None:
    _, example = EXAMPLES[0]
    path = _case_file(tmp_path, _altered(example))
    result = runner.invoke(app, ["simulate", "--check", "--explain", str(path)])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: visits[0].assistance: expected 1.00, got 3864.00"
    assert lines[1].startswith("    Visit v1: policy 510400-2023")


def test_check_of_a_bare_case_is_a_usage_error(tmp_path: Path) -> None:
    _, example = EXAMPLES[0]
    path = _case_file(tmp_path, example["case"])
    result = runner.invoke(app, ["simulate", "--check", str(path)])
    assert result.exit_code == 2
    assert f'{path}: --check needs an example file with "expected"' in result.stderr
    assert result.stdout == ""


def test_several_files_without_check_are_refused(tmp_path: Path) -> None:
    first, second = (_case_file(tmp_path, e, f"{s}.json") for s, e in EXAMPLES[:2])
    result = runner.invoke(app, ["simulate", str(first), str(second)])
    assert result.exit_code == 2
    assert "2 files given" in result.stderr
    assert result.stdout == ""


def test_a_bad_case_among_several_names_its_file_field_and_value(tmp_path: Path) -> None:
    stem, example = EXAMPLES[0]
    good = _case_file(tmp_path, example, f"{stem}.json")
    bad_example = json.loads(json.dumps(example))
    bad_example["case"]["visits"][0]["type"] = "DENTAL"
    bad = _case_file(tmp_path, bad_example, "bad.json")
    result = runner.invoke(app, ["simulate", "--check", str(good), str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: visits[0].type = DENTAL" in result.stderr
    assert result.stdout == ""


def test_an_example_file_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    _, example = EXAMPLES[0]
    path = _case_file(tmp_path, {**example, "expect": example["expected"]})
    result = runner.invoke(app, ["simulate", "--check", str(path)])
    assert result.exit_code == 2
    assert "expect = " in result.stderr
    assert "unknown key" in result.stderr
