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


def test_production_code_imports_only_what_a_runtime_install_has() -> None:
    """What gateway, schema, resolvers, policies and migrations import (anywhere in a module)
    comes with `make run`'s install (requirements.lock), not only with the dev extras."""
    import ast
    import sys
    from importlib.metadata import packages_distributions

    runtime = set(pinned("requirements.lock")) | {"medgw"}
    ours = {"gateway", "schema", "resolvers", "policies", "migrations"}
    # The [otel] extra (imported only when MEDGW_OTEL=true); typeshed is for type checking only.
    optional = {"opentelemetry", "_typeshed"}
    distributions = packages_distributions()
    missing: dict[str, str] = {}
    for package in ours:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module]
                    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                    else []
                )
                for name in names:
                    top = name.split(".")[0]
                    if top in ours | optional or top in sys.stdlib_module_names:
                        continue
                    found = {_name(d) for d in distributions.get(top, [])}
                    if not found & runtime:
                        missing[f"{path.relative_to(ROOT)}: {name}"] = ", ".join(sorted(found))
    assert missing == {}
