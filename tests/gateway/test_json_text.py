"""JSONB parameters are written by orjson (``gateway.storage.database.json_text``): the same
JSON values the standard library writes, read back equal through PostgreSQL."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import JSONB

from gateway.storage.database import Database, json_text

VALUES = [
    {"text": "东区民政局 — ✓", "n": 3, "x": 1.5, "none": None, "yes": True, "list": [1, "a"]},
    {1: "an int key", "nested": {"deeper": [{"k": "v"}]}},
    ["top", "level", ["array"]],
    "a string",
    0,
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_the_same_json_value_as_the_standard_librarys(value: object) -> None:
    assert json.loads(json_text(value)) == json.loads(json.dumps(value))


def test_what_json_cannot_hold_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        json_text({"amount": Decimal("1.00")})


async def test_a_jsonb_parameter_reads_back_equal(db: Database) -> None:
    """Through the gateway's engine: written by ``json_text``, read by ``orjson.loads``."""
    value = VALUES[0]
    async with db.sessions() as session:
        back = await session.scalar(select(bindparam("v", type_=JSONB)), {"v": value})
        chinese = await session.scalar(
            select(bindparam("v", type_=JSONB)["text"].astext), {"v": value}
        )
    assert back == value
    assert chinese == "东区民政局 — ✓"
