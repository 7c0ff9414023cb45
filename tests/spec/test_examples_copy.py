"""The vendored copy of the examples equals the shared contract (when the shared folder is here)."""

from __future__ import annotations

import pytest

from tests.spec.examples import VENDORED, shared_dir


@pytest.mark.skipif(not shared_dir().is_dir(), reason="../shared is not next to this clone")
def test_the_vendored_copy_equals_the_shared_examples() -> None:
    shared = {p.name: p.read_bytes() for p in shared_dir().glob("*.json")}
    vendored = {p.name: p.read_bytes() for p in VENDORED.glob("*.json")}
    assert vendored == shared, "copy ../shared/spec/examples/*.json to tests/spec/examples/"
