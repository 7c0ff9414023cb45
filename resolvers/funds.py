"""Posting to the fund ledgers (issue 13), in the transaction of the event that moves the money.

Every settlement event (:func:`post_settlement`, called by ``settlement.Writer.event``) and
every enrollment subsidy (:func:`post_enrollments`, called by ``ingestion.record_enrollment``
and by bulk imports) posts balanced entries by the rules of ``policies/funds/postings.yaml``.
Entries are never edited (the tables are append-only); a correction is a later event. A
posting to a settlement year that is closed for its policy region (``closeSettlementYear``,
SETTLEMENT.md §9.5) is refused with ``CONFLICT``, and so is the event it belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import cache
from zoneinfo import ZoneInfo

from sqlalchemy import BindParameter, bindparam, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.errors import Conflict
from gateway.storage import models
from policies.benefits import PolicySet
from policies.funds import Account, AccountKind, Entry, Parties, PostingRules, load_rules
from policies.funds.rules import SUBSIDY_PARTS
from policies.vocabulary import Payer
from resolvers import fund_months


@cache
def rules() -> PostingRules:
    """The posting rules, read once per process."""
    return load_rules()


@cache
def _zone() -> ZoneInfo:
    return ZoneInfo(Settings().timezone)


def zone_name() -> str:
    """The configured time zone (``MEDGW_TIMEZONE``, China by default)."""
    return _zone().key


async def today(session: AsyncSession) -> date:
    """The transaction's day in China time: the booking day of a later event, the same day as
    the event's ``created_at`` (both are the transaction's ``now()``)."""
    found = await session.scalar(
        text("SELECT (now() AT TIME ZONE :zone)::date"), {"zone": zone_name()}
    )
    assert isinstance(found, date)
    return found


async def closed(session: AsyncSession, region_code: str | None, year: int) -> bool:
    """Whether ``year`` is closed for the policy region ``region_code``."""
    if region_code is None:
        return False
    found = await session.get(models.SettlementYearClosing, (region_code, year))
    return found is not None


def refuse_closed(year: int, region_code: str) -> Conflict:
    return Conflict(
        f"year = {year}: settlement year {year} is closed for {region_code}; "
        "nothing can be posted to it",
        field="year",
    )


async def post_settlement(
    session: AsyncSession,
    policies: PolicySet,
    claim: models.Claim,
    event: models.Settlement,
    lines: Sequence[models.SettlementLine],
) -> None:
    """Post one settlement event: by its kind's rule, or (REVERSAL) by reversing every earlier
    entry of its claim. CONFLICT when the claim's year is closed for its policy region."""
    region = policy_region(policies, claim.policy or event.policy)
    the_rules = rules()
    if event.kind == "ORIGINAL" and not the_rules.rule_of(event.kind).mirror:
        # The hot path (settleClaim): the closing check, the accounts and the entries in one
        # statement (the person is in the session already: locked by the settlement).
        person = await session.get(models.Beneficiary, claim.beneficiary_id)
        assert person is not None
        parties = Parties(
            person.region_code,
            carrier=claim.carrier,
            hospital=claim.hospital_code,
            person=str(claim.beneficiary_id),
        )
        entries = the_rules.settlement_entries(
            event.kind, {Payer(line.payer): line.amount for line in lines}, parties
        )
        if not entries:
            if await closed(session, region, claim.year):
                raise refuse_closed(claim.year, region or "")
            return
        posted = await post_at_once(
            session, entries, region, settlement_id=event.id, kind=event.kind, year=claim.year,
            booked_on=claim.discharge_date,
        )  # fmt: skip
        if posted is None:
            raise refuse_closed(claim.year, region or "")
        if not posted:  # an account opened by a concurrent transaction meanwhile: step by step
            await store(session, entries, settlement_id=event.id, kind=event.kind,
                         year=claim.year, booked_on=claim.discharge_date)  # fmt: skip
        return
    if await closed(session, region, claim.year):
        raise refuse_closed(claim.year, region or "")
    booked_on = claim.discharge_date if event.kind == "ORIGINAL" else await today(session)
    if the_rules.rule_of(event.kind).mirror:
        mirrored = await session.execute(
            text(
                fund_months.summed(
                    "INSERT INTO fund_entries "
                    "(account_id, settlement_id, kind, flow, side, amount, year, booked_on) "
                    "SELECT e.account_id, :event, :kind, e.flow, "
                    "CASE e.side WHEN 'DEBIT' THEN 'CREDIT' ELSE 'DEBIT' END, e.amount, e.year, "
                    ":booked_on FROM fund_entries e "
                    "JOIN settlements s ON s.id = e.settlement_id "
                    "WHERE s.claim_id = :claim AND s.id < :event ORDER BY e.id"
                )
            ),
            {"event": event.id, "kind": event.kind, "claim": claim.id, "booked_on": booked_on},
        )
        fund_months.add(session, mirrored.all())
        return
    region_code = await session.scalar(
        select(models.Beneficiary.region_code).where(models.Beneficiary.id == claim.beneficiary_id)
    )
    parties = Parties(
        str(region_code),
        carrier=claim.carrier,
        hospital=claim.hospital_code,
        person=str(claim.beneficiary_id),
    )
    entries = the_rules.settlement_entries(
        event.kind, {Payer(line.payer): line.amount for line in lines}, parties
    )
    await store(session, entries, settlement_id=event.id, kind=event.kind, year=claim.year,
                 booked_on=booked_on)  # fmt: skip


async def post_many(
    session: AsyncSession,
    policies: PolicySet,
    region_code: str,
    events: Sequence[tuple[models.Claim, models.Settlement, Sequence[models.SettlementLine]]],
) -> None:
    """:func:`post_settlement` of many events of kinds that are not ``mirror`` (a re-run's
    adjustments) of one person (region ``region_code``), set-based, whatever their number: one
    statement (:data:`OPEN_AND_CHECK`) reads the booking day and the closings and opens and
    reads the accounts, one writes every entry. CONFLICT when a claim's year is closed for its
    policy region (nothing is written: the transaction rolls back)."""
    if not events:
        return
    the_rules = rules()
    wanted = sorted(
        {(policy_region(policies, c.policy or e.policy), c.year) for c, e, _ in events},
        key=str,
    )
    posted: list[tuple[int, int, Entry]] = []  # (settlement id, year, entry)
    kinds: dict[int, str] = {}
    for claim, event, lines in events:
        parties = Parties(
            region_code,
            carrier=claim.carrier,
            hospital=claim.hospital_code,
            person=str(claim.beneficiary_id),
        )
        amounts = {Payer(line.payer): line.amount for line in lines}
        kinds[event.id] = event.kind
        posted += [
            (event.id, claim.year, entry)
            for entry in the_rules.settlement_entries(event.kind, amounts, parties)
        ]
    accounts = {entry.account for _, _, entry in posted}
    keys = sorted((a.kind.value, a.region_code, a.party) for a in accounts)
    found = (
        await session.execute(
            OPEN_AND_CHECK,
            {
                "zone": zone_name(),
                "regions": [r for r, _ in wanted],
                "years": [y for _, y in wanted],
                "kinds": [k for k, _, _ in keys],
                "account_regions": [r for _, r, _ in keys],
                "parties": [p for _, _, p in keys],
            },
        )
    ).one()
    booked_on: date = found[0]
    if found[1]:
        region, year = found[1][0]
        raise refuse_closed(int(year), region)
    if not posted:
        return
    ids = {Account(AccountKind(k), r, p): int(i) for i, k, r, p in found[2]}
    if len(ids) < len(accounts):  # opened by a transaction that committed while it ran
        ids |= await account_ids(session, accounts - ids.keys())
    written = await session.execute(
        text(
            fund_months.summed(
                "INSERT INTO fund_entries "
                "(account_id, settlement_id, kind, flow, side, amount, year, booked_on) "
                "SELECT account_id, settlement_id, kind, flow, side, amount, year, booked_on "
                "FROM unnest(CAST(:accounts AS bigint[]), CAST(:events AS bigint[]), "
                "CAST(:kinds AS text[]), CAST(:flows AS text[]), CAST(:sides AS text[]), "
                "CAST(:amounts AS numeric[]), CAST(:years AS smallint[]), "
                "CAST(:days AS date[])) WITH ORDINALITY "
                "AS t(account_id, settlement_id, kind, flow, side, amount, year, booked_on, n) "
                "ORDER BY n"
            )
        ),
        {
            "accounts": [ids[entry.account] for _, _, entry in posted],
            "events": [event_id for event_id, _, _ in posted],
            "kinds": [kinds[event_id] for event_id, _, _ in posted],
            "flows": [entry.flow for _, _, entry in posted],
            "sides": [entry.side.value for _, _, entry in posted],
            "amounts": [entry.amount for _, _, entry in posted],
            "years": [year for _, year, _ in posted],
            "days": [booked_on] * len(posted),
        },
    )
    fund_months.add(session, written.all())


POST_AT_ONCE = text(
    """
    WITH shut AS (
        SELECT FROM settlement_year_closings WHERE region_code = :region AND year = :year
    ),
    want(n, kind, region_code, party, flow, side, amount) AS (
        SELECT * FROM unnest(CAST(:n AS int[]), CAST(:kinds AS text[]),
                             CAST(:regions AS text[]), CAST(:parties AS text[]),
                             CAST(:flows AS text[]), CAST(:sides AS text[]),
                             CAST(:amounts AS numeric[]))
    ),
    opened AS (
        INSERT INTO fund_accounts (kind, region_code, party)
        SELECT DISTINCT kind, region_code, party FROM want
        WHERE NOT EXISTS (SELECT FROM shut) ORDER BY 1, 2, 3
        ON CONFLICT DO NOTHING RETURNING id, kind, region_code, party
    ),
    account AS (
        SELECT id, kind, region_code, party FROM opened
        UNION ALL
        SELECT a.id, a.kind, a.region_code, a.party FROM fund_accounts a
        WHERE (a.kind, a.region_code, a.party) IN (SELECT kind, region_code, party FROM want)
    ),
    entry AS (
        SELECT want.*, account.id AS account_id
        FROM want JOIN account USING (kind, region_code, party)
    ),
    posted AS (
        INSERT INTO fund_entries
            (account_id, settlement_id, kind, flow, side, amount, year, booked_on)
        SELECT account_id, :settlement, :event_kind, flow, side, amount, :year, :booked_on
        FROM entry
        WHERE NOT EXISTS (SELECT FROM shut) AND (SELECT count(*) FROM entry) = :count
        ORDER BY n
        RETURNING account_id, flow, side, amount
    )
    SELECT EXISTS (SELECT FROM shut) AS shut, (SELECT count(*) FROM posted) AS posted,
           (SELECT array_agg(ARRAY[account_id::text, flow, side, amount::text]) FROM posted)
           AS rows
    """
)


def entry_params(entries: Sequence[Entry]) -> dict[str, object]:
    """The parameters of :data:`POST_AT_ONCE` that carry ``entries``: ``n``, ``kinds``,
    ``regions``, ``parties``, ``flows``, ``sides``, ``amounts`` (arrays) and ``count``."""
    return {
        "n": list(range(len(entries))),
        "kinds": [e.account.kind.value for e in entries],
        "regions": [e.account.region_code for e in entries],
        "parties": [e.account.party for e in entries],
        "flows": [e.flow for e in entries],
        "sides": [e.side.value for e in entries],
        "amounts": [e.amount for e in entries],
        "count": len(entries),
    }


async def post_at_once(
    session: AsyncSession,
    entries: Sequence[Entry],
    region: str | None,
    *,
    settlement_id: int,
    kind: str,
    year: int,
    booked_on: date,
) -> bool | None:
    """Post ``entries`` in one statement: refuse (None, nothing written) when ``year`` is closed
    for ``region``, else open the accounts missing and write the entries (True). False, with
    no entry written, when an account was opened by a transaction that committed while this
    statement ran (its snapshot cannot see it): post again with :func:`store`."""
    found = (
        await session.execute(
            POST_AT_ONCE,
            {
                "region": region,
                "year": year,
                **entry_params(entries),
                "settlement": settlement_id,
                "event_kind": kind,
                "booked_on": booked_on,
            },
        )
    ).one()
    if found.shut:
        return None
    fund_months.add(
        session,
        ((a, year, booked_on, kind, f, s, m) for a, f, s, m in found.rows or ()),
    )
    return bool(found.posted)


async def store(
    session: AsyncSession,
    entries: Sequence[Entry],
    *,
    settlement_id: int,
    kind: str,
    year: int,
    booked_on: date,
) -> None:
    """Post ``entries`` of one settlement event step by step: open the accounts missing, read
    their ids, write the entries."""
    if not entries:
        return
    ids = await account_ids(session, {e.account for e in entries})
    fund_months.add(
        session,
        ((ids[e.account], year, booked_on, kind, e.flow, e.side.value, e.amount) for e in entries),
    )
    await session.execute(
        insert(models.FundEntry),
        [
            {
                "account_id": ids[e.account],
                "settlement_id": settlement_id,
                "kind": kind,
                "flow": e.flow,
                "side": e.side.value,
                "amount": e.amount,
                "year": year,
                "booked_on": booked_on,
            }
            for e in entries
        ],
    )


OPEN_AND_CHECK = text(
    """
WITH wanted AS (
  SELECT * FROM unnest(CAST(:kinds AS text[]), CAST(:account_regions AS text[]),
                       CAST(:parties AS text[])) AS w(kind, region_code, party)
),
opened AS (
  INSERT INTO fund_accounts (kind, region_code, party)
  SELECT kind, region_code, party FROM wanted ORDER BY kind, region_code, party
  ON CONFLICT DO NOTHING
  RETURNING id, kind, region_code, party
)
SELECT (now() AT TIME ZONE :zone)::date,
       (SELECT array_agg(ARRAY[region_code, year::text]) FROM settlement_year_closings
        WHERE (region_code, year) IN (SELECT * FROM unnest(CAST(:regions AS text[]),
                                                           CAST(:years AS int[])))),
       ARRAY(SELECT ARRAY[o.id::text, o.kind, o.region_code, o.party] FROM opened o
             UNION ALL
             SELECT ARRAY[a.id::text, a.kind, a.region_code, a.party]
             FROM fund_accounts a JOIN wanted w ON (a.kind, a.region_code, a.party) =
                                                   (w.kind, w.region_code, w.party))
"""
)
""":func:`post_many`'s first statement: the booking day (``zone``), the closed ones of the
(``regions``, ``years``) wanted, and the ids of the accounts (``kinds``, ``account_regions``,
``parties``) as ``[id, kind, region, party]`` text arrays, opening those that do not exist yet
(in one snapshot: one committed by another transaction meanwhile is neither opened nor read,
:func:`account_ids` reads it then)."""


async def account_ids(session: AsyncSession, accounts: set[Account]) -> dict[Account, int]:
    """The ids of ``accounts``, opening those that do not exist yet."""
    keys = sorted((a.kind.value, a.region_code, a.party) for a in accounts)
    await session.execute(
        insert(models.FundAccount)
        .values([{"kind": k, "region_code": r, "party": p} for k, r, p in keys])
        .on_conflict_do_nothing()
    )
    rows = await session.execute(
        select(
            models.FundAccount.id,
            models.FundAccount.kind,
            models.FundAccount.region_code,
            models.FundAccount.party,
        ).where(
            tuple_(
                models.FundAccount.kind, models.FundAccount.region_code, models.FundAccount.party
            ).in_(keys)
        )
    )
    return {Account(AccountKind(k), r, p): int(i) for i, k, r, p in rows.all()}


def policy_region(policies: PolicySet, policy_id: str | None) -> str | None:
    """The region code of a policy (``510400`` of ``510400-2023``); None when unknown."""
    if not policy_id:
        return None
    try:
        return policies.by_id(policy_id).region_code
    except KeyError:
        return None


def _subsidy_sides() -> str:
    """VALUES rows (part, side, account kind, party from the person?) of the subsidy rules."""
    the_rules = rules()
    rows = []
    for part in SUBSIDY_PARTS:
        rule = the_rules.subsidies[part]  # type: ignore[index]
        for side, kind in (("DEBIT", rule.debit), ("CREDIT", rule.credit)):
            party = the_rules.party_of(kind)
            if party not in ("none", "person"):
                raise ValueError(f"a subsidy cannot post to a {kind} account (party {party})")
            rows.append(f"('{part}', '{side}', '{kind.value}', {party == 'person'})")
    return ", ".join(rows)


def _subsidy_sql(which: str) -> str:
    """The entries (as rows) of the unposted subsidies of the enrollments ``which`` selects
    (a condition on ``enrollments e``)."""
    return f"""
        WITH rule(part, side, account_kind, personal) AS (VALUES {_subsidy_sides()}),
        part AS (
            SELECT e.id, e.year, e.enrolled_on, b.region_code, b.id AS person, p.part, p.amount
            FROM enrollments e
            JOIN beneficiaries b ON b.id = e.beneficiary_id
            CROSS JOIN LATERAL (VALUES ('assistanceFund', e.subsidy_assistance_fund),
                                       ('finance', e.subsidy_finance)) AS p(part, amount)
            WHERE {which} AND p.amount <> 0
              AND NOT EXISTS (SELECT FROM fund_entries f WHERE f.enrollment_id = e.id)
        )
        SELECT part.id, part.year, part.enrolled_on, part.part, rule.account_kind,
               part.region_code,
               CASE WHEN rule.personal THEN part.person::text ELSE '' END AS party,
               CASE WHEN (part.amount > 0) = (rule.side = 'DEBIT') THEN 'DEBIT' ELSE 'CREDIT'
               END AS side,
               abs(part.amount) AS amount
        FROM part JOIN rule ON rule.part = part.part
    """


async def post_enrollments(session: AsyncSession, enrollment_ids: Sequence[int]) -> None:
    """Post the subsidies of these enrollments (those not posted yet), set-based: one INSERT …
    SELECT opens the accounts, one INSERT … SELECT writes the entries, whatever the number.
    CONFLICT (nothing posted) when one's year is closed for its policy region (the policy id's
    region code, e.g. ``510400`` of ``510400-2023``)."""
    if not enrollment_ids:
        return
    ids: BindParameter[list[int]] = bindparam("ids", value=list(enrollment_ids))
    await _post_subsidies(session, "e.id = ANY(:ids)", ids)


async def post_enrollments_of(session: AsyncSession, ids_query: str) -> None:
    """:func:`post_enrollments` for the enrollments whose ids a SQL query of the transaction
    returns (e.g. ``SELECT id FROM import_enrolled``, a bulk import's temporary table), so that
    a million enrollments post without their ids passing through Python."""
    await _post_subsidies(session, f"e.id IN ({ids_query})")


async def _post_subsidies(
    session: AsyncSession, which: str, *params: BindParameter[list[int]]
) -> None:
    shut = (
        await session.execute(
            text(
                "SELECT e.year, c.region_code FROM enrollments e "
                "JOIN settlement_year_closings c ON c.year = e.year "
                "AND c.region_code = split_part(e.subsidy_policy, '-', 1) "
                f"WHERE {which} LIMIT 1"
            ).bindparams(*params)
        )
    ).first()
    if shut is not None:
        raise refuse_closed(int(shut.year), str(shut.region_code))
    accounts, entries = subsidy_statements(which)
    await session.execute(text(accounts).bindparams(*params))
    posted = await session.execute(text(fund_months.summed(entries)).bindparams(*params))
    fund_months.add(session, posted.all())


def subsidy_statements(which: str) -> tuple[str, str]:
    """The two INSERT … SELECT statements that post the unposted subsidies of the enrollments
    ``which`` selects: open the accounts, write the entries."""
    sides = _subsidy_sql(which)
    return (
        "INSERT INTO fund_accounts (kind, region_code, party) "
        f"SELECT DISTINCT account_kind, region_code, party FROM ({sides}) s "
        "ORDER BY 1, 2, 3 ON CONFLICT DO NOTHING",
        "INSERT INTO fund_entries "
        "(account_id, enrollment_id, kind, flow, side, amount, year, booked_on) "
        "SELECT a.id, s.id, 'SUBSIDY', s.part, s.side, s.amount, s.year, s.enrolled_on "
        f"FROM ({sides}) s JOIN fund_accounts a ON a.kind = s.account_kind "
        "AND a.region_code = s.region_code AND a.party = s.party ORDER BY s.id, s.part, s.side",
    )
