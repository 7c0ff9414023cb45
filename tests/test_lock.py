"""The lock files pin every requirement of pyproject.toml (runtime in both, dev extras in the
dev lock), so that `make` installs the same versions on every machine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pinned(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text(encoding="utf-8")
    return {
        _name(m.group(1)): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.M)
    }


def _name(requirement: str) -> str:
    """The normalised project name of a requirement (PEP 503)."""
    name = re.split(r"[\[<>=!~; ]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_requirement_is_pinned_in_its_lock() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    dev = {_name(r) for r in project["optional-dependencies"]["dev"]}
    assert runtime - set(pinned("requirements.lock")) == set()
    assert (runtime | dev) - set(pinned("requirements-dev.lock")) == set()


def test_both_locks_agree_on_the_versions_they_share() -> None:
    runtime, dev = pinned("requirements.lock"), pinned("requirements-dev.lock")
    assert {n: v for n, v in runtime.items() if dev.get(n, v) != v} == {}
