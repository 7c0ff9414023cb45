"""The settlement examples of ``../shared/spec/examples`` (SETTLEMENT.md §8), the contract that the
engine, the CLI and the API must all reproduce exactly.

The shared folder next to the repository is the source. A clone elsewhere (a CI machine without
``../shared``) falls back to the copy in ``tests/spec/examples``, which a test keeps identical to
the shared folder whenever both are present.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VENDORED = Path(__file__).resolve().parent / "examples"


def shared_dir() -> Path:
    """``shared/spec/examples`` next to the repository root."""
    return Path(__file__).resolve().parents[3] / "shared" / "spec" / "examples"


def examples_dir() -> Path:
    shared = shared_dir()
    return shared if shared.is_dir() and any(shared.glob("*.json")) else VENDORED


def load_examples() -> list[tuple[str, dict[str, Any]]]:
    """Every example as (file stem, parsed JSON with ``description``, ``case``, ``expected``),
    in file-name order."""
    examples: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(examples_dir().glob("*.json")):
        examples.append((path.stem, json.loads(path.read_text(encoding="utf-8"))))
    return examples
