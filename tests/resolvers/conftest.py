"""The webhook fixtures of tests/gateway (an app that accepts local receivers, a receiver, a
fake DNS) for the resolver tests that deliver (test_retention.py)."""

from tests.gateway.conftest import dns, local, local_app, receiver

__all__ = ["dns", "local", "local_app", "receiver"]
