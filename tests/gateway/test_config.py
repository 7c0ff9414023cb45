"""Settings come from the environment only, with sensible defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import Settings


def test_defaults_serve_on_loopback_with_the_embedded_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("DATABASE_URL", "MEDGW_DATA_DIR", "MEDGW_JWT_SECRET", "MEDGW_ENV", "MEDGW_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url is None
    # The checkout's var/, wherever the process runs (never ./var of the current directory).
    assert settings.data_dir == Path(__file__).resolve().parents[2] / "var"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.env == "development"
    assert settings.max_page_size == 100


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/x")
    monkeypatch.setenv("MEDGW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEDGW_ENV", "production")
    monkeypatch.setenv("MEDGW_PORT", "9001")
    monkeypatch.setenv("MEDGW_JWT_SECRET", "s" * 40)
    settings = Settings()
    assert settings.database_url == "postgresql://u@db/x"
    assert settings.data_dir == tmp_path
    assert settings.is_production
    assert settings.port == 9001
    assert settings.jwt_secret == "s" * 40


def test_unknown_environment_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDGW_ENV", "staging")
    with pytest.raises(ValueError, match="MEDGW_ENV"):
        Settings()


def test_jwt_secret_is_generated_once_and_kept_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MEDGW_JWT_SECRET", raising=False)
    first = Settings(data_dir=tmp_path / "data").jwt_secret
    second = Settings(data_dir=tmp_path / "data").jwt_secret
    assert first == second
    assert len(first) >= 40
    secret_file = tmp_path / "data" / "jwt_secret"
    assert secret_file.read_text() == first
    assert secret_file.stat().st_mode & 0o077 == 0
    assert Settings(data_dir=tmp_path / "other").jwt_secret != first
