"""The served process moves what it built at startup out of the garbage collector's sight
(``create_app(freeze_heap=True)``, as ``gateway.main`` does); an app made otherwise does not."""

from __future__ import annotations

import gc

from gateway.app import create_app
from gateway.config import Settings
from gateway.storage.database import Database
from policies.benefits import PolicySet


async def test_a_served_app_freezes_its_startup_heap_and_others_do_not(
    settings: Settings, db: Database, policies: PolicySet
) -> None:
    gc.unfreeze()
    try:
        plain = create_app(settings, db=db, policies=policies)
        async with plain.router.lifespan_context(plain):
            assert gc.get_freeze_count() == 0
        served = create_app(settings, db=db, policies=policies, freeze_heap=True)
        async with served.router.lifespan_context(served):
            frozen = gc.get_freeze_count()
            assert frozen > 10_000  # the modules, policies, schemas and views built
    finally:
        gc.unfreeze()
