"""What the browser tests share: where screenshots go (``var/test-artifacts``, not in git) and
the headless Chromium flags of a machine with no network beyond the gateway (no background
traffic that a closed network would refuse)."""

from __future__ import annotations

from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parents[1] / "var" / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
