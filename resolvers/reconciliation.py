"""Reconciliation of the fund ledgers (issue 13; 鲁医保发〔2020〕79号 四(三)): every account's
postings must equal what the settlement lines and the enrollment subsidies say it should hold.

The expected side is computed from the source rows alone (``settlement_lines``, ``settlements``,
``claims``, ``enrollments``), by the rules of ``policies/funds/postings.yaml`` turned into SQL
sums; the posted side from ``fund_entries``. They are compared per account kind, region code,
party and flow (a person's accounts summed per region), either for a settlement year (what
closing a year requires) or for the booking days of a statement's period. A difference names
the account, the flow and both amounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Conflict
from policies.funds import AccountKind, PostingRules
from policies.funds.rules import SUBSIDY_PARTS, Party
from resolvers import funds, statements
from resolvers.context import Context
from resolvers.inputs import check_in_token, check_region_prefix


@dataclass(frozen=True)
class Difference:
    fund: AccountKind
    region_code: str
    party: str
    flow: str
    expected: Decimal
    posted: Decimal

    @property
    def difference(self) -> Decimal:
        return self.posted - self.expected

    def __str__(self) -> str:
        party = f"/{self.party}" if self.party else ""
        return (
            f"{self.fund}/{self.region_code}{party} {self.flow}: expected {self.expected}, "
            f"posted {self.posted}"
        )


_PARTY = {
    "none": "''",
    "carrier": "coalesce(carrier, '')",
    "hospital": "hospital_code",
    "person": "person",
}


def _party(rules: PostingRules, kind: AccountKind) -> str:
    party: Party = rules.party_of(kind)
    return _PARTY[party]


def _first(rules: PostingRules, candidates: Sequence[AccountKind]) -> tuple[str, str]:
    """SQL of the account kind and party of the first candidate whose party the row has."""
    kinds = " ".join(f"WHEN {_party(rules, k)} IS NOT NULL THEN '{k.value}'" for k in candidates)
    parties = " ".join(
        f"WHEN {_party(rules, k)} IS NOT NULL THEN {_party(rules, k)}" for k in candidates
    )
    return f"CASE {kinds} END", f"CASE {parties} END"


def expected_sql(rules: PostingRules, *, by_year: bool) -> str:
    """The expected balances (kind, region_code, party, flow, balance) of the source rows of
    the settlement year ``:year`` (``by_year``) or booked from ``:start`` to ``:end``; persons'
    accounts summed per region (party '')."""
    payer_kind = " ".join(f"WHEN '{p.value}' THEN '{k.value}'" for p, k in rules.payers.items())
    payer_party = " ".join(
        f"WHEN '{p.value}' THEN {_party(rules, k)}" for p, k in rules.payers.items()
    )
    mirrors = [k for k, r in rules.settlement.items() if r.mirror]
    mirror_list = ", ".join(f"'{k}'" for k in mirrors) or "''"
    payee_rows = []
    for event_kind, rule in rules.settlement.items():
        if rule.mirror:
            continue
        kind_sql, party_sql = _first(rules, rule.credit)
        payee_rows.append(
            f"SELECT {kind_sql}, region_code, {party_sql}, payer, -amount, booked_on FROM line "
            f"WHERE kind = '{event_kind}' UNION ALL "
            f"SELECT {kind_sql}, region_code, {party_sql}, payer, amount, mirror_on FROM line "
            f"WHERE kind = '{event_kind}' AND mirror_on IS NOT NULL"
        )
    subsidy_rows = []
    for part in SUBSIDY_PARTS:
        part_rule = rules.subsidies[part]  # type: ignore[index]
        for kind, sign in ((part_rule.debit, ""), (part_rule.credit, "-")):
            subsidy_rows.append(
                f"SELECT '{kind.value}', region_code, {_party(rules, kind)}, part, "
                f"{sign}amount, booked_on FROM subsidy WHERE part = '{part}'"
            )
    when = "s.year = :year" if by_year else "TRUE"
    enrolled = "e.year = :year" if by_year else "TRUE"
    booked = "TRUE" if by_year else "booked_on BETWEEN :start AND :end"
    return f"""
        WITH line AS (
            SELECT b.region_code, b.id::text AS person, c.carrier, c.hospital_code, s.kind,
                   l.payer, l.amount,
                   CASE WHEN s.kind = 'ORIGINAL' THEN c.discharge_date
                        ELSE (s.created_at AT TIME ZONE :zone)::date END AS booked_on,
                   (SELECT (r.created_at AT TIME ZONE :zone)::date FROM settlements r
                    WHERE r.claim_id = s.claim_id AND r.kind IN ({mirror_list}) AND r.id > s.id
                    ORDER BY r.id LIMIT 1) AS mirror_on
            FROM settlement_lines l
            JOIN settlements s ON s.id = l.settlement_id
            JOIN claims c ON c.id = s.claim_id
            JOIN beneficiaries b ON b.id = c.beneficiary_id
            WHERE {when} AND l.amount <> 0 AND b.region_code LIKE ANY(:prefixes)
        ), subsidy AS (
            SELECT b.region_code, b.id::text AS person, p.part, p.amount,
                   e.enrolled_on AS booked_on
            FROM enrollments e
            JOIN beneficiaries b ON b.id = e.beneficiary_id
            CROSS JOIN LATERAL (VALUES ('assistanceFund', e.subsidy_assistance_fund),
                                       ('finance', e.subsidy_finance)) AS p(part, amount)
            WHERE {enrolled} AND p.amount <> 0 AND b.region_code LIKE ANY(:prefixes)
        ), expected(kind, region_code, party, flow, balance, booked_on) AS (
            SELECT CASE payer {payer_kind} END, region_code, CASE payer {payer_party} END,
                   payer, amount, booked_on FROM line
            UNION ALL {" UNION ALL ".join(payee_rows)}
            UNION ALL {" UNION ALL ".join(subsidy_rows)}
        )
        SELECT kind, region_code, CASE WHEN kind = 'PERSON' THEN '' ELSE party END AS party,
               flow, sum(balance) AS balance
        FROM expected WHERE {booked} GROUP BY 1, 2, 3, 4
    """


def posted_sql(*, by_year: bool) -> str:
    when = "e.year = :year" if by_year else "e.booked_on BETWEEN :start AND :end"
    return f"""
        SELECT a.kind, a.region_code, CASE WHEN a.kind = 'PERSON' THEN '' ELSE a.party END AS party,
               e.flow,
               sum(CASE e.side WHEN 'DEBIT' THEN e.amount ELSE -e.amount END) AS balance
        FROM fund_entries e JOIN fund_accounts a ON a.id = e.account_id
        WHERE {when} AND a.region_code LIKE ANY(:prefixes)
        GROUP BY 1, 2, 3, 4
    """


async def differences(
    session: AsyncSession,
    prefixes: Sequence[str],
    *,
    year: int | None = None,
    period: tuple[date, date] | None = None,
    every: bool = False,
) -> list[Difference]:
    """Every account, flow and amount where the entries differ from the source rows, for the
    settlement ``year`` or the booking ``period`` (first and last day), over the region
    ``prefixes``; empty when the ledgers reconcile. ``every``: all accounts and flows, equal
    or not."""
    if (year is None) == (period is None):
        raise ValueError("give either a year or a period")
    by_year = year is not None
    rules = funds.rules()
    sql = f"""
        WITH want AS ({expected_sql(rules, by_year=by_year)}),
             have AS ({posted_sql(by_year=by_year)})
        SELECT coalesce(w.kind, h.kind), coalesce(w.region_code, h.region_code),
               coalesce(w.party, h.party), coalesce(w.flow, h.flow),
               coalesce(w.balance, 0), coalesce(h.balance, 0)
        FROM want w FULL JOIN have h ON (w.kind, w.region_code, w.party, w.flow)
                                      = (h.kind, h.region_code, h.party, h.flow)
        WHERE {"TRUE" if every else "coalesce(w.balance, 0) <> coalesce(h.balance, 0)"}
        ORDER BY 1, 2, 3, 4
    """
    params: dict[str, object] = {
        "prefixes": [f"{p}%" for p in prefixes],
        "zone": funds.zone_name(),
    }
    if period is not None:
        params.update(start=period[0], end=period[1])
    else:
        params["year"] = year
    rows = (await session.execute(text(sql), params)).all()
    return [
        Difference(AccountKind(k), r, p or "", f, Decimal(w), Decimal(h))
        for k, r, p, f, w, h in rows
    ]


async def refuse_differences(session: AsyncSession, prefix: str, year: int) -> None:
    """CONFLICT naming the first difference (and how many more) when the ledgers of the
    settlement ``year`` under ``prefix`` do not reconcile (closing a year requires it)."""
    found = await differences(session, [prefix], year=year)
    if found:
        more = f" (and {len(found) - 1} more differences)" if len(found) > 1 else ""
        raise Conflict(
            f"year = {year}: the fund ledgers of {prefix} do not reconcile: {found[0]}{more}; "
            "see fundReconciliation",
            field="year",
        )


def prefixes_of(ctx: Context, region_prefix: str | None) -> list[str]:
    """The region prefixes a reconciliation covers: the token's, narrowed to ``region_prefix``
    (which must share a region with the token: FORBIDDEN otherwise).

    A prefix within a token prefix is taken as it is; one broader than some token prefixes
    (``51`` with a ``5104`` token) covers those token prefixes only."""
    regions = list(ctx.principal.regions)
    if region_prefix is None:
        return regions
    prefix = check_in_token(ctx.principal, "regionPrefix", check_region_prefix(region_prefix))
    if any(prefix.startswith(p) for p in regions):
        return [prefix]
    return [p for p in regions if p.startswith(prefix)]


@dataclass(frozen=True)
class Report:
    region_prefix: str | None
    year: int
    period: str | None
    bounds: tuple[date, date]
    lines: list[Difference]
    """Every account and flow, equal or not."""

    @property
    def balanced(self) -> bool:
        return not any(line.difference for line in self.lines)


async def report(
    ctx: Context,
    *,
    year: int,
    period: str | None,
    number: int | None,
    region_prefix: str | None,
) -> Report:
    """The reconciliation of the settlement ``year`` (no ``period``) or of the booking days of
    one period of ``year`` (a statement's), over the caller's regions."""
    prefixes = prefixes_of(ctx, region_prefix)
    bounds = statements.period_bounds(year, period or "YEAR", number)

    async def run(session: AsyncSession) -> list[Difference]:
        if period is None:
            return await differences(session, prefixes, year=year, every=True)
        return await differences(session, prefixes, period=bounds, every=True)

    return Report(region_prefix, year, period, bounds, await ctx.read(run))
