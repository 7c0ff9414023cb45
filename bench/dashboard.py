"""A dashboard's full set of figures over 1,000,000 claims: how long ``Query.dashboard`` takes
through the gateway's HTTP API, against the same figures computed from the raw tables.

Run on demand (not part of the test suite)::

    .venv/bin/python -m bench.dashboard [--claims 1000000] [--persons 250000] [--runs 30]

What it does, in order:

1. A throwaway PostgreSQL (as ``bench/settle.py``: embedded, or a scratch database on the
   ``DATABASE_URL`` server), migrated.
2. Generated with ``generate_series`` in SQL (no Python loop): ``--persons`` persons over 20
   region codes of the four policy regions, a tenth holding 低保 (subsidised enrollments), an
   enrollment each for 2024, ``--claims`` settled claims of 2024 (ORIGINAL events with their
   basic, critical-illness and assistance lines; one in a hundred reversed; nine in ten with a
   hospital code), and high-cost alerts for one person in fifty; then their fund entries,
   set-based as resolvers/funds.py posts them (:data:`FUND_ENTRIES`).
3. The rollups built from those events and entries (``resolvers.cube.rebuild``,
   ``resolvers.fund_months.rebuild``, timed), then ANALYZE.
4. The cost of keeping the rollup (``resolvers.cube``) per event: 500 transactions of one
   event, and one of 500 events, rolled back.
5. ``--runs`` dashboard requests (the page's query: every cell, payer, band, alert, subsidy
   and fund balance, as finance) over HTTP to one uvicorn process, for 攀枝花 (prefix 5104)
   and for all four regions, after two warm-up requests: median, p95 and max.
6. Baseline: the same cells (persons, claims, sums by month, category, visit type, hospital
   level, region) computed from the claims, events and lines with ``count(DISTINCT)``.
7. Checks: the dashboard's totals equal the raw tables', each fund's closing balance the
   entries' sum. The exit status is 1 if a check fails
   or the median of a dashboard request is above 1 s.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from bench.settle import SECRET, scratch_database, serve
from gateway import migrate
from gateway.auth import issue_token
from gateway.storage import models
from policies.vocabulary import Payer
from resolvers import cube, fund_months, funds, pending

console = Console()
YEAR = 2024
REGIONS = [
    "510402", "510403", "510411", "510421", "510422",
    "370811", "370812", "370826", "370829", "370881",
    "320102", "320106", "320205", "320506", "320981",
    "430102", "430104", "430521", "431121", "433101",
]  # fmt: skip
CELL = """key label suppressed persons claims totalCost outOfScopeCost outOfPocket
  basicInsurance criticalIllness inclusiveCommercial assistance secondaryAssistance
  outOfPocketShare outOfScopeShare averageOutOfPocket"""
PAYER = "payer label suppressed persons amount share"
QUERY = f"""query Dashboard($year: Int!, $regionPrefix: String) {{
  dashboard(year: $year, regionPrefix: $regionPrefix) {{
    regionPrefix year k total {{ {CELL} }} assisted {{ {PAYER} }}
    byMonth {{ {CELL} }} byRegion {{ {CELL} }} byCategory {{ {CELL} }}
    byVisitType {{ {CELL} }} byHospitalLevel {{ {CELL} }} byPayer {{ {PAYER} }}
    outOfPocketBands {{ lower upper suppressed persons outOfPocket }}
    alerts {{ key label suppressed persons }}
    subsidies {{ category label suppressed persons assistanceFund finance individual }}
    fundBalances {{ fund opening debits credits closing settlements subsidies }}
  }}
}}"""


def generate(persons: int, claims: int) -> list[str]:
    """The statements that fill the database (deterministic: ids are md5 of a number)."""
    regions = "ARRAY[" + ", ".join(f"'{r}'" for r in REGIONS) + "]"
    person = "md5('p' || {})::uuid"
    return [
        f"""INSERT INTO beneficiaries (id, id_number, name, gender, birth_date, region_code,
                                      created_by)
            SELECT {person.format("i")}, lpad(i::text, 18, '0'), '测试' || i,
                   CASE WHEN i % 2 = 0 THEN 'FEMALE' ELSE 'MALE' END,
                   date '1940-01-01' + (i % 25000), ({regions})[1 + i % {len(REGIONS)}],
                   'bench'
            FROM generate_series(0, {persons - 1}) i""",
        f"""INSERT INTO identities (beneficiary_id, category, valid_from, reference, department,
                                   org)
            SELECT {person.format("i")}, 'MINIMUM_LIVING', date '2020-01-01', 'B' || i,
                   'civil_affairs', 'bench'
            FROM generate_series(0, {persons - 1}, 10) i""",
        f"""INSERT INTO enrollments (beneficiary_id, year, scheme, contribution,
                                    inclusive_commercial, enrolled_on, subsidy_policy,
                                    subsidy_category, subsidy_assistance_fund, subsidy_finance,
                                    subsidy_individual, department, org)
            SELECT {person.format("i")}, {YEAR}, 'RESIDENT', 380, false, date '2023-12-01',
                   CASE WHEN i % 10 = 0 THEN '510400-2023' END,
                   CASE WHEN i % 10 = 0 THEN 'MINIMUM_LIVING' END,
                   CASE WHEN i % 10 = 0 THEN 380 ELSE 0 END, 0,
                   CASE WHEN i % 10 = 0 THEN 0 ELSE 380 END, 'medical_insurance', 'bench'
            FROM generate_series(0, {persons - 1}) i""",
        f"""INSERT INTO claims (id, claim_number, beneficiary_id, year, type, hospital_level,
                               admission_date, discharge_date, total_cost, policy_scope_cost,
                               referral_compliant, in_province, special_treatment_hospital,
                               carrier, policy, content_hash, hospital_code)
            SELECT n, 'B-' || n, {person.format(f"(n * 7919) % {persons}")}, {YEAR},
                   CASE WHEN n % 10 = 0 THEN 'OUTPATIENT_GENERAL' ELSE 'INPATIENT' END,
                   CASE WHEN n % 10 = 0 THEN NULL
                        ELSE (ARRAY['PRIMARY', 'SECONDARY', 'TERTIARY'])[1 + n % 3] END,
                   date '{YEAR}-01-01' + (n % 350)::int, date '{YEAR}-01-01' + (n % 350)::int + 5,
                   t.cost, round(t.cost * 0.8, 2), true, true, false, 'bench-insurer',
                   '510400-2023', 'x',
                   CASE WHEN n % 10 = 3 THEN NULL ELSE 'H' || lpad((n % 40)::text, 3, '0') END
            FROM generate_series(1::bigint, {claims}) n,
                 LATERAL (SELECT (800 + (n * 104729) % 60000)::numeric(14, 2) AS cost) t""",
        f"""INSERT INTO settlements (id, claim_id, beneficiary_id, year, kind, policy, category,
                                    out_of_pocket, explanation, department, org)
            SELECT c.id, c.id, c.beneficiary_id, {YEAR}, 'ORIGINAL', '510400-2023',
                   CASE WHEN i.beneficiary_id IS NOT NULL THEN 'MINIMUM_LIVING' END,
                   round(c.total_cost * CASE WHEN i.beneficiary_id IS NULL THEN 0.35
                                             ELSE 0.15 END, 2),
                   '{{}}', 'medical_insurance', 'bench'
            FROM claims c LEFT JOIN identities i ON i.beneficiary_id = c.beneficiary_id""",
        """INSERT INTO settlement_lines (settlement_id, beneficiary_id, year, payer, amount)
            SELECT s.id, s.beneficiary_id, s.year, p.payer,
                   CASE p.payer
                     WHEN 'basicInsurance' THEN round(c.total_cost * 0.55, 2)
                     WHEN 'criticalIllness' THEN c.total_cost - round(c.total_cost * 0.55, 2)
                       - s.out_of_pocket - CASE WHEN s.category IS NULL THEN 0
                                                ELSE round(c.total_cost * 0.20, 2) END
                     ELSE CASE WHEN s.category IS NULL THEN 0
                               ELSE round(c.total_cost * 0.20, 2) END
                   END
            FROM settlements s JOIN claims c ON c.id = s.claim_id
            CROSS JOIN (VALUES ('basicInsurance'), ('criticalIllness'), ('assistance')) p(payer)
        """,
        # One claim in a hundred reversed: a REVERSAL event taking every line back.
        f"""INSERT INTO settlements (id, claim_id, beneficiary_id, year, kind, policy, category,
                                    out_of_pocket, explanation, department, org)
            SELECT {claims} + s.id, s.claim_id, s.beneficiary_id, s.year, 'REVERSAL', s.policy,
                   s.category, -s.out_of_pocket, '{{}}', 'medical_insurance', 'bench'
            FROM settlements s WHERE s.id % 100 = 7""",
        f"""INSERT INTO settlement_lines (settlement_id, beneficiary_id, year, payer, amount)
            SELECT {claims} + l.settlement_id, l.beneficiary_id, l.year, l.payer, -l.amount
            FROM settlement_lines l WHERE l.settlement_id % 100 = 7""",
        """UPDATE claims SET reversed_at = now(), reversal_reason = 'bench' WHERE id % 100 = 7""",
        f"""INSERT INTO high_cost_alerts (beneficiary_id, year, out_of_pocket, threshold, status,
                                         policy)
            SELECT {person.format("i")}, {YEAR}, 30000, 20000,
                   (ARRAY['OPEN', 'ACKNOWLEDGED', 'RECOGNISED', 'REJECTED', 'CLOSED'])[1 + i % 5],
                   '510400-2023'
            FROM generate_series(0, {persons - 1}, 50) i""",
        "SELECT setval(pg_get_serial_sequence('claims', 'id'), (SELECT max(id) FROM claims))",
        "SELECT setval(pg_get_serial_sequence('settlements', 'id'), "
        "(SELECT max(id) FROM settlements))",
    ]


FUND_ENTRIES = (
    # The accounts every event and subsidy posts to (postings.yaml: the payer's fund, the
    # claim's hospital or else the person; the region is the person's).
    """INSERT INTO fund_accounts (kind, region_code, party)
       SELECT DISTINCT a.kind, b.region_code, a.party
       FROM settlements s JOIN claims c ON c.id = s.claim_id
       JOIN beneficiaries b ON b.id = s.beneficiary_id
       CROSS JOIN LATERAL (VALUES ('BASIC_FUND', ''), ('CRITICAL_ILLNESS_INSURER', c.carrier),
                                  ('ASSISTANCE_FUND', ''), ('FINANCE', ''),
                                  (CASE WHEN c.hospital_code IS NULL THEN 'PERSON'
                                        ELSE 'HOSPITAL' END,
                                   coalesce(c.hospital_code, b.id::text))) a(kind, party)
       ORDER BY 1, 2, 3 ON CONFLICT DO NOTHING""",
    # ORIGINAL: per non-zero line, debit the payer's fund, credit the hospital or the person.
    """INSERT INTO fund_entries
         (account_id, settlement_id, kind, flow, side, amount, year, booked_on)
       SELECT a.id, s.id, 'ORIGINAL', l.payer, x.side, abs(l.amount), c.year, c.discharge_date
       FROM settlements s JOIN claims c ON c.id = s.claim_id
       JOIN beneficiaries b ON b.id = s.beneficiary_id
       JOIN settlement_lines l ON l.settlement_id = s.id AND l.amount <> 0
       CROSS JOIN LATERAL (VALUES
         (CASE WHEN l.amount > 0 THEN 'DEBIT' ELSE 'CREDIT' END,
          CASE l.payer WHEN 'basicInsurance' THEN 'BASIC_FUND'
                       WHEN 'criticalIllness' THEN 'CRITICAL_ILLNESS_INSURER'
                       ELSE 'ASSISTANCE_FUND' END,
          CASE l.payer WHEN 'criticalIllness' THEN c.carrier ELSE '' END),
         (CASE WHEN l.amount > 0 THEN 'CREDIT' ELSE 'DEBIT' END,
          CASE WHEN c.hospital_code IS NULL THEN 'PERSON' ELSE 'HOSPITAL' END,
          coalesce(c.hospital_code, b.id::text))) x(side, kind, party)
       JOIN fund_accounts a
         ON (a.kind, a.region_code, a.party) = (x.kind, b.region_code, x.party)
       WHERE s.kind = 'ORIGINAL'
       ORDER BY s.id, l.payer, x.side DESC""",
    # REVERSAL: the claim's earlier entries, sides swapped, booked today.
    """INSERT INTO fund_entries
         (account_id, settlement_id, kind, flow, side, amount, year, booked_on)
       SELECT e.account_id, r.id, 'REVERSAL', e.flow,
              CASE e.side WHEN 'DEBIT' THEN 'CREDIT' ELSE 'DEBIT' END, e.amount, e.year,
              (now() AT TIME ZONE 'Asia/Shanghai')::date
       FROM settlements r JOIN settlements s ON s.claim_id = r.claim_id AND s.id < r.id
       JOIN fund_entries e ON e.settlement_id = s.id
       WHERE r.kind = 'REVERSAL' ORDER BY r.id, e.id""",
    # The enrollment subsidies: the product's own statements (resolvers/funds.py).
    *funds.subsidy_statements("TRUE"),
)
"""The fund entries of the generated events and subsidies, set-based, as resolvers/funds.py
posts them one by one (rules of policies/funds/postings.yaml)."""

FUND_RAW = f"""
SELECT a.kind, sum(CASE e.side WHEN 'DEBIT' THEN e.amount ELSE -e.amount END)
FROM fund_entries e JOIN fund_accounts a ON a.id = e.account_id
WHERE e.booked_on <= date '{YEAR}-12-31' AND a.region_code LIKE :prefix
GROUP BY a.kind
"""
"""Each fund kind's closing balance of the year from the entries themselves."""

BASELINE = f"""
WITH e AS (
  SELECT s.beneficiary_id, b.region_code, s.category, c.type, c.hospital_level,
         to_char(c.discharge_date, 'MM') AS month,
         CASE s.kind WHEN 'ORIGINAL' THEN 1 WHEN 'REVERSAL' THEN -1 ELSE 0 END AS sign,
         c.total_cost, c.policy_scope_cost, s.out_of_pocket, l.amount
  FROM settlements s JOIN claims c ON c.id = s.claim_id
  JOIN beneficiaries b ON b.id = s.beneficiary_id
  JOIN (SELECT settlement_id, sum(amount) AS amount FROM settlement_lines GROUP BY 1) l
    ON l.settlement_id = s.id
  WHERE s.year = {YEAR} AND b.region_code LIKE :prefix
)
SELECT month, category, type, hospital_level, substr(region_code, 1, 6),
       count(DISTINCT beneficiary_id), sum(sign), sum(sign * total_cost),
       sum(sign * (total_cost - policy_scope_cost)), sum(out_of_pocket), sum(amount)
FROM e
GROUP BY GROUPING SETS ((), (month), (category), (type), (hospital_level),
                        (substr(region_code, 1, 6)))
"""
"""The same cells from the raw tables (persons as distinct beneficiaries with an event: the
cube counts those whose sums are not all zero, so the persons check uses the claims)."""

TOTALS = f"""
SELECT count(DISTINCT c.beneficiary_id), count(*), sum(c.total_cost),
       sum(c.total_cost - c.policy_scope_cost)
FROM claims c JOIN beneficiaries b ON b.id = c.beneficiary_id
WHERE c.year = {YEAR} AND c.reversed_at IS NULL AND b.region_code LIKE :prefix
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def fill(url: str, persons: int, claims: int) -> dict[str, float]:
    """Generate the data and build the rollup; seconds per step."""
    engine = create_async_engine(url)
    took: dict[str, float] = {}
    try:
        began = time.perf_counter()
        async with engine.begin() as conn:
            for statement in generate(persons, claims):
                await conn.execute(text(statement))
        took["generate (SQL)"] = time.perf_counter() - began
        began = time.perf_counter()
        async with engine.begin() as conn:
            for statement in FUND_ENTRIES:
                await conn.execute(text(statement))
        took["fund entries (SQL)"] = time.perf_counter() - began
        began = time.perf_counter()
        async with engine.begin() as conn:
            await cube.rebuild(conn)
        took["rollup rebuild"] = time.perf_counter() - began
        began = time.perf_counter()
        async with engine.begin() as conn:
            await fund_months.rebuild(conn)
        took["fund months rebuild"] = time.perf_counter() - began
        async with engine.connect() as conn:
            await conn.execute(text("COMMIT"))
            await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()
    return took


async def record_cost(url: str, events: int) -> tuple[float, float]:
    """Milliseconds that the rollup adds to a settlement event, rolled back: in a transaction of
    one event (as ``settleClaim``), and per event in one of ``events`` events (a batch)."""
    engine = create_async_engine(url)
    try:
        async with AsyncSession(engine) as session:
            ids = (
                await session.scalars(
                    text("SELECT id FROM claims ORDER BY id LIMIT :n").bindparams(n=events)
                )
            ).all()
            rows = (
                await session.scalars(select(models.Claim).where(models.Claim.id.in_(ids)))
            ).all()

            def one(claim: models.Claim) -> None:
                cube.record(
                    session,
                    claim,
                    "ADJUSTMENT",
                    {Payer.ASSISTANCE: Decimal("10.00")},
                    Decimal("-10.00"),
                    "MINIMUM_LIVING",
                )

            began = time.perf_counter()
            for claim in rows:
                one(claim)
                await session.run_sync(pending.write_pending)
            single = (time.perf_counter() - began) / max(1, len(rows))
            began = time.perf_counter()
            for claim in rows:
                one(claim)
            await session.run_sync(pending.write_pending)
            batch = (time.perf_counter() - began) / max(1, len(rows))
            await session.rollback()
    finally:
        await engine.dispose()
    return 1000 * single, 1000 * batch


async def measure(
    base: str, prefix: str | None, regions: list[str], runs: int
) -> tuple[list[float], dict[str, Any]]:
    token = issue_token(SECRET, subject="bench", department="finance", org="bench", regions=regions)
    headers = {"Authorization": f"Bearer {token}"}
    body = {"query": QUERY, "variables": {"year": YEAR, "regionPrefix": prefix}}
    times: list[float] = []
    answer: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for n in range(runs + 2):
            began = time.perf_counter()
            response = await client.post("/graphql", json=body, headers=headers)
            elapsed = time.perf_counter() - began
            answer = response.json()
            if "errors" in answer:
                raise RuntimeError(str(answer["errors"])[:300])
            if n >= 2:  # two warm-up requests
                times.append(elapsed)
    return times, answer["data"]["dashboard"]


async def raw(url: str, prefix: str) -> tuple[float, tuple[Any, ...], dict[str, Decimal]]:
    """Seconds of the baseline over the raw tables, the raw totals for the checks, and each
    fund kind's closing balance from the entries."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            began = time.perf_counter()
            await conn.execute(text(BASELINE), {"prefix": f"{prefix}%"})
            elapsed = time.perf_counter() - began
            totals = tuple((await conn.execute(text(TOTALS), {"prefix": f"{prefix}%"})).one())
            began = time.perf_counter()
            funds_raw = await conn.execute(text(FUND_RAW), {"prefix": f"{prefix}%"})
            closing = {str(kind): Decimal(amount) for kind, amount in funds_raw.all()}
            console.print(
                f"closing balances from the entries ({prefix or 'all'}): "
                f"{1000 * (time.perf_counter() - began):.0f} ms"
            )
    finally:
        await engine.dispose()
    return elapsed, totals, closing


def main(
    claims: Annotated[int, typer.Option(min=1000, help="Settled claims of 2024.")] = 1_000_000,
    persons: Annotated[int, typer.Option(min=100, help="Persons they belong to.")] = 250_000,
    runs: Annotated[int, typer.Option(min=3, help="Measured dashboard requests.")] = 30,
) -> None:
    """A dashboard's figures over ``--claims`` claims, through HTTP; exit 1 above 1 s."""
    began = time.perf_counter()
    load_before = os.getloadavg()
    console.print(
        f"dashboard: {claims:,} claims of {YEAR} over {persons:,} persons in {len(REGIONS)} "
        f"region codes; {os.cpu_count()} CPUs; load {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f}"
    )
    checks: list[tuple[str, bool, str]] = []
    table = Table(title="Query.dashboard over HTTP (every cell, payer, band, alert, subsidy)")
    for column in ("selection", "median ms", "p95 ms", "max ms", "raw baseline ms", "ratio"):
        table.add_column(column, justify="left" if column == "selection" else "right")
    medians: list[float] = []
    with scratch_database() as (url, where), tempfile.TemporaryDirectory() as data:
        console.print(where)
        migrate.upgrade(url)
        took = asyncio.run(fill(url, persons, claims))
        for step, seconds in took.items():
            console.print(f"{step}: {seconds:.1f} s")
        single, batch = asyncio.run(record_cost(url, 500))
        console.print(
            f"rollup per settlement event: {single:.2f} ms alone, {batch:.2f} ms in a batch of 500"
        )
        with serve(url, Path(data), 1, 1) as urls:
            for name, prefix, regions in (
                ("攀枝花 (5104)", "5104", ["5104"]),
                ("all four regions", None, ["51", "37", "32", "43"]),
            ):
                times, found = asyncio.run(measure(urls[0], prefix, regions, runs))
                baseline, totals, closing = asyncio.run(raw(url, prefix or ""))
                median = statistics.median(times)
                medians.append(median)
                table.add_row(
                    name,
                    f"{1000 * median:.1f}",
                    f"{1000 * percentile(times, 0.95):.1f}",
                    f"{1000 * max(times):.1f}",
                    f"{1000 * baseline:.0f}",
                    f"{baseline / median:.0f}×",
                )
                persons_, claims_, cost, out_of_scope = totals
                total = found["total"]
                got = (total["persons"], total["claims"], total["totalCost"])
                want = (persons_, claims_, f"{cost:.2f}")
                checks.append((f"{name}: persons, claims, total cost = raw", got == want, f"{got}"))
                checks.append(
                    (
                        f"{name}: out-of-scope cost = raw",
                        Decimal(total["outOfScopeCost"]) == out_of_scope,
                        total["outOfScopeCost"],
                    )
                )
                got_closing = {
                    b["fund"]: Decimal(b["closing"])
                    for b in found["fundBalances"]
                    if Decimal(b["closing"])
                }
                checks.append(
                    (
                        f"{name}: fund balances' closing = the entries' sums",
                        got_closing == {k: v for k, v in closing.items() if v},
                        ", ".join(f"{k} {v}" for k, v in got_closing.items()),
                    )
                )
    console.print(table)
    for name, ok, detail in checks:
        console.print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    load_after = os.getloadavg()
    console.print(
        f"load after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; "
        f"total wall time {time.perf_counter() - began:.1f} s"
    )
    slow = [m for m in medians if m > 1.0]
    if slow:
        console.print(f"FAIL: a median above 1 s ({', '.join(f'{m:.2f} s' for m in slow)})")
    raise typer.Exit(0 if all(ok for _, ok, _ in checks) and not slow else 1)


if __name__ == "__main__":
    typer.run(main)
