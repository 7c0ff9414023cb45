"""Posting what was settled and enrolled before the fund ledgers existed (migration 0010), by
the rules of today (policies/funds/postings.yaml), as :mod:`resolvers.funds` posts new events:
every settlement event in order (a reversal reversing its claim's earlier entries), then every
enrollment subsidy, set-based. Events and subsidies already posted are left alone, so it can
run again. Synchronous: it runs inside an Alembic migration.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from itertools import groupby

from sqlalchemy import Connection, text

from policies.funds import Account, AccountKind, Entry, Parties
from policies.vocabulary import Payer
from resolvers import funds

EVENTS = """
SELECT s.id, s.kind, s.claim_id, c.year, c.discharge_date, c.carrier, c.hospital_code,
       b.region_code, b.id::text AS person, (s.created_at AT TIME ZONE :zone)::date AS day,
       l.payer, l.amount
FROM settlements s
JOIN claims c ON c.id = s.claim_id
JOIN beneficiaries b ON b.id = c.beneficiary_id
JOIN settlement_lines l ON l.settlement_id = s.id
WHERE NOT EXISTS (SELECT FROM fund_entries e WHERE e.settlement_id = s.id)
ORDER BY s.id, l.payer
"""


def post_history(conn: Connection, zone: str = "Asia/Shanghai") -> int:
    """Post every unposted settlement event and subsidy; the number of entries written."""
    rules = funds.rules()
    earlier: dict[int, list[Entry]] = defaultdict(list)
    rows: list[tuple[int, str, int, date, Entry]] = []
    events = conn.execute(text(EVENTS), {"zone": zone}).all()
    for _, lines in groupby(events, key=lambda r: r.id):
        group = list(lines)
        first = group[0]
        booked: date = first.discharge_date if first.kind == "ORIGINAL" else first.day
        if rules.rule_of(first.kind).mirror:
            entries = [
                Entry(e.account, e.side.other, e.amount, e.flow) for e in earlier[first.claim_id]
            ]
        else:
            parties = Parties(
                first.region_code,
                carrier=first.carrier,
                hospital=first.hospital_code,
                person=first.person,
            )
            amounts = {Payer(r.payer): Decimal(r.amount) for r in group}
            entries = rules.settlement_entries(first.kind, amounts, parties)
        earlier[first.claim_id] += entries
        rows += [(first.id, first.kind, first.year, booked, e) for e in entries]
    if rows:
        ids = _accounts(conn, {row[4].account for row in rows})
        conn.execute(
            text(
                "INSERT INTO fund_entries "
                "(account_id, settlement_id, kind, flow, side, amount, year, booked_on) "
                "VALUES (:account, :event, :kind, :flow, :side, :amount, :year, :booked)"
            ),
            [
                {
                    "account": ids[e.account],
                    "event": event,
                    "kind": kind,
                    "flow": e.flow,
                    "side": e.side.value,
                    "amount": e.amount,
                    "year": year,
                    "booked": booked,
                }
                for event, kind, year, booked, e in rows
            ],
        )
    before = conn.scalar(text("SELECT count(*) FROM fund_entries")) or 0
    for statement in funds.subsidy_statements("TRUE"):
        conn.execute(text(statement))
    after = conn.scalar(text("SELECT count(*) FROM fund_entries")) or 0
    return len(rows) + int(after) - int(before)


def _accounts(conn: Connection, accounts: set[Account]) -> dict[Account, int]:
    keys = sorted((a.kind.value, a.region_code, a.party) for a in accounts)
    conn.execute(
        text(
            "INSERT INTO fund_accounts (kind, region_code, party) VALUES (:k, :r, :p) "
            "ON CONFLICT DO NOTHING"
        ),
        [{"k": k, "r": r, "p": p} for k, r, p in keys],
    )
    found = conn.execute(text("SELECT id, kind, region_code, party FROM fund_accounts")).all()
    return {Account(AccountKind(k), r, p): int(i) for i, k, r, p in found}
