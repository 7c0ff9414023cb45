"""Fuzz the gateway through real HTTP with hypothesis-graphql: random queries and mutations of a
department's schema (valid documents with odd values, and invalid documents), posted to the app
on uvicorn with that department's token. Every answer must be JSON with a code on every error,
and no error may be ``INTERNAL`` (nor an HTTP 5xx).

Run on demand (the suite runs a short, fixed-seed version in ``tests/gateway/test_fuzz.py``)::

    .venv/bin/python -m bench.fuzz [--examples 2000] [--department medical_insurance] [--seed N]

It starts a throwaway embedded PostgreSQL (or, with ``DATABASE_URL``, uses that database: it
writes to it), migrates it, serves ``gateway.main:app`` in a uvicorn process (as
``bench/settle.py`` does) and prints what it found; the server's log goes to stderr.
The exit status is 1 when an example fails (Hypothesis prints the smallest one it found).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import graphql
import httpx
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from gateway.app import load_access_for_schema
from schema import build_schema

ODD_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("\x00\t\n\r\x1b"),
    max_size=40,
)
"""Text with controls and anything Unicode (surrogates are not valid in a query document)."""


def _decimals() -> st.SearchStrategy[str]:
    amounts = st.decimals(allow_nan=True, allow_infinity=True, places=None)
    big = st.integers(min_value=-(10**30), max_value=10**30).map(lambda n: str(Decimal(n) / 100))
    return st.one_of(amounts.map(str), big, st.sampled_from(["1e20", "-0", "1e-30"]), ODD_TEXT)


SCALARS: dict[str, st.SearchStrategy[graphql.ValueNode]] = {
    "Date": st.one_of(st.dates().map(lambda d: d.isoformat()), ODD_TEXT).map(nodes.String),
    "DateTime": st.one_of(
        st.datetimes(timezones=st.sampled_from([None, UTC])).map(datetime.isoformat), ODD_TEXT
    ).map(nodes.String),
    "Decimal": _decimals().map(nodes.String),
}


def department_schema(department: str) -> graphql.GraphQLSchema:
    """The schema the department's token sees (only the fields its access policy grants)."""
    access = load_access_for_schema()[1]
    return build_schema(policy=access.departments[department])._schema


def documents(schema: graphql.GraphQLSchema) -> st.SearchStrategy[str]:
    """Queries and mutations of ``schema``: mostly valid ones, some that do not validate."""
    valid = from_schema(schema, custom_scalars=SCALARS, allow_x00=True)
    invalid = from_schema(schema, custom_scalars=SCALARS, mode=Mode.NEGATIVE)
    return st.one_of(valid, valid, valid, invalid)


def problems(response: httpx.Response) -> list[str]:
    """What is wrong with an answer: a 5xx other than a 503, non-JSON, an error without a code,
    an INTERNAL error."""
    if response.status_code >= 500 and response.status_code != 503:
        return [f"HTTP {response.status_code}: {response.text[:300]}"]
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        return [f"HTTP {response.status_code}, not JSON: {response.text[:300]}"]
    found = []
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code is None or code == "INTERNAL":
            found.append(f"{code}: {error.get('message')}")
    return found


def check(
    base_url: str,
    token: str,
    department: str,
    examples: int,
    derandomize: bool = False,
    seed_value: int | None = None,
) -> None:
    """Run the fuzz against ``base_url``; raises (Hypothesis' smallest example) on a failure."""
    schema = department_schema(department)
    client = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(documents(schema))
    def one(document: str) -> None:
        response = client.post("/graphql", json={"query": document})
        assert not problems(response), (document, problems(response))

    if seed_value is not None:
        one = seed(seed_value)(one)
    try:
        one()
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--department", default="medical_insurance")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()

    from bench.settle import SECRET, serve
    from gateway import migrate
    from gateway.auth import issue_token
    from gateway.config import Settings
    from gateway.storage import embedded
    from gateway.storage.database import Database, resolve_url

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="medgw-fuzz-"))
        configured = os.environ.get("DATABASE_URL")
        if configured:
            url = owner = resolve_url(Settings(database_url=configured))
        else:  # migrated by the owner, served as the app role (as `medgw serve` does)
            urls = stack.enter_context(embedded.temporary("medgw-fuzz-pg-"))
            url, owner = urls.app, urls.owner

        async def upgrade() -> None:
            database = Database.connect(owner, Settings(database_url=owner))
            await migrate.upgrade_engine(database.engine)
            await database.dispose()

        asyncio.run(upgrade())
        token = issue_token(
            SECRET,
            subject="fuzz",
            department=args.department,
            org="fuzz",
            regions=["5104", "3708", "32", "43"],
            purpose="fuzz",
        )
        started = time.monotonic()
        with serve(url, Path(tmp), processes=1, workers=1) as (base,):
            try:
                check(base, token, args.department, args.examples, seed_value=args.seed)
            except AssertionError as failure:
                print(f"FAILED after {time.monotonic() - started:.0f} s: {failure}")
                return 1
        print(
            f"{args.examples} examples against {args.department} in "
            f"{time.monotonic() - started:.0f} s: no INTERNAL error, no 5xx but 503"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
