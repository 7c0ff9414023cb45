"""The benchmark scripts import against the code as it is (they are not run by the suite, so a
renamed function would otherwise break ``make bench`` unnoticed)."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("module", ["bench.settle", "bench.fuzz", "bench.import"])
def test_a_benchmark_script_imports(module: str) -> None:
    loaded = importlib.import_module(module)
    assert callable(loaded.main)
