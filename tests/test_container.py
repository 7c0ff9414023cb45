"""The container files stay consistent with the project (they cannot be built here: no container
registry is reachable from the development machines): every path the Dockerfile copies exists,
the command is the project's console script, the settings compose.yaml sets are real settings,
and the database role it creates is the one the migrations grant to."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from gateway.config import Settings
from gateway.storage.embedded import APP_ROLE

ROOT = Path(__file__).resolve().parents[1]


def setting_names() -> set[str]:
    names = {"DATABASE_URL"}
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        choices = getattr(alias, "choices", [alias])
        names |= {c for c in choices if isinstance(c, str) and c.isupper()}
    return names


def test_the_dockerfile_copies_what_exists_and_runs_the_console_script() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    copied = [
        source
        for line in re.findall(r"^COPY (.+)$", dockerfile, re.M)
        for source in line.split()[:-1]
    ]
    assert copied, dockerfile
    assert [s for s in copied if not (ROOT / s).exists()] == []
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert 'CMD ["medgw", "serve"]' in dockerfile
    assert "medgw" in scripts
    assert [
        e for e in re.findall(r"\b(MEDGW_[A-Z_]+)=", dockerfile) if e not in setting_names()
    ] == []
    assert "/readyz" in dockerfile


def test_compose_sets_real_settings_and_creates_the_app_role() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    gateway = compose["services"]["gateway"]
    assert set(gateway["environment"]) <= setting_names()
    assert gateway["environment"]["DATABASE_URL"].startswith(f"postgresql://{APP_ROLE}:")
    init = ROOT / "deploy" / "initdb" / "10-app-role.sh"
    assert init.stat().st_mode & 0o111
    assert f"CREATE ROLE {APP_ROLE} LOGIN" in init.read_text(encoding="utf-8")
    mounted = [v.split(":")[0] for v in compose["services"]["db"]["volumes"] if v.startswith(".")]
    assert [m for m in mounted if not (ROOT / m).is_dir()] == []
