"""The access files read through pydantic models: what the models add is refused with the exact
message, naming the file, the key and the line (the shared format of policies/sourcefile.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.access.policy import load_access
from policies.errors import PolicyFileError
from tests.policies.test_access import CATALOG, break_file, copy_bundled

# (what breaks, file, old, new, the message after "<file>: " with {line} for the first line of
# `new`)
# fmt: off
REFUSED = [
    ("unknown key in a nested mapping", "insurer.yaml", "  required_for_personal:",
     "  reason: fraud\n  required_for_personal:", "purpose.reason (line {line}): unknown key"),
    ("null instead of leaving a key out", "finance.yaml", "introspection: false",
     "introspection: null", "introspection (line {line}): must not be null (leave the key out)"),
    ("a name listed twice", "finance.yaml", "rows: [region]", "rows: [region, region]",
     "rows[1] (line {line}): 'region' is listed twice"),
    ("forbidden in a file that extends nothing", "finance.yaml", "    year: read",
     "    year: forbidden",
     "grants.Statistics.year (line {line}): `forbidden` takes away an extended grant; "
     "nothing is extended"),
    ("a key given twice", "health.yaml", "    diagnosis: read", "    diagnosis: read\n"
     "    diagnosis: read", "grants.Claim.diagnosis (line {next}): duplicate key: given twice, "
     "first on line {line}"),
    ("unknown field in a personal list", "_fields.yaml", "  Identity: all",
     "  Identity: [category, nope]",
     "personal.Identity[1] (line {line}): unknown field 'nope' of Identity"),
    ("unknown mode", "finance.yaml", "persons: read", "persons: raed",
     "grants.Statistics.persons (line {line}): unknown mode 'raed' (did you mean 'read'?); "
     "one of read, masked, write, forbidden"),
]
# fmt: on


@pytest.mark.parametrize(
    ("name", "old", "new", "message"), [case[1:] for case in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_what_the_models_check_is_refused_with_file_key_line_and_reason(
    tmp_path: Path, name: str, old: str, new: str, message: str
) -> None:
    line = break_file(copy_bundled(tmp_path), name, old, new)
    with pytest.raises(PolicyFileError) as caught:
        load_access(CATALOG, tmp_path)
    assert str(caught.value) == f"{name}: " + message.format(line=line, next=line + 1)


def test_an_empty_access_file_is_refused_as_not_a_mapping(tmp_path: Path) -> None:
    copy_bundled(tmp_path)
    (tmp_path / "health.yaml").write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(PolicyFileError) as caught:
        load_access(CATALOG, tmp_path)
    assert str(caught.value) == "health.yaml: <file>: must be a mapping, got None"
