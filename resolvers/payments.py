"""Payment files (issue 13; 苏政办发 四(二)–(三)): what the assistance fund owes, for a year or a
month of booking days, to each hospital (the assistance it advanced at discharge, 一站式结算, to
be cleared) and to each person (事后救助: assistance added after discharge, or of a claim settled
without a hospital), net of reversals and recoveries (a negative amount: the payee owes the fund).

Read from the fund ledgers: the credits minus the debits of the assistance fund's flows
(policies/funds/postings.yaml: the payer lines whose account is ``ASSISTANCE_FUND``) on each
payee account. One row per payee account (a hospital per region code of its patients, a person);
payees with nothing due are left out. Exported as the ``payments`` kind of resolvers/exports.py.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Select, String, and_, case, cast, false, func, literal, select
from sqlalchemy.orm import aliased

from gateway.storage import models
from policies.funds import AccountKind
from resolvers import funds, statements
from resolvers.rows import RowRules

PAYEES = (AccountKind.HOSPITAL, AccountKind.PERSON)


def assistance_flows() -> list[str]:
    """The flows the assistance fund pays (its payer lines)."""
    rules = funds.rules()
    return [p.value for p, k in rules.payers.items() if k is AccountKind.ASSISTANCE_FUND]


def bounds(year: int, month: int | None) -> tuple[date, date]:
    return statements.period_bounds(year, "YEAR" if month is None else "MONTH", month)


def select_payments(
    year: int, month: int | None, region: str | None, rows: RowRules, person_label: str
) -> Select[tuple[Any, ...]]:
    """The payment rows, labelled as the export's columns (``person_label``: the hidden column
    of the person's id, null for a hospital), ordered by payee kind, region and payee."""
    entry, account = models.FundEntry, models.FundAccount
    person = aliased(models.Beneficiary)
    start, end = bounds(year, month)
    owed = func.sum(case((entry.side == "CREDIT", entry.amount), else_=-entry.amount))
    is_person = account.kind == AccountKind.PERSON.value
    conditions = [
        account.kind.in_([k.value for k in PAYEES]),
        entry.flow.in_(assistance_flows()),
        entry.booked_on.between(start, end),
        rows.region(account.region_code),
    ]
    if region is not None:
        conditions.append(account.region_code.like(f"{region}%"))
    if "carrier" in rows.rules:
        conditions.append(false())  # an insurer pays no assistance
    if "hospital" in rows.rules:
        conditions.append(
            and_(account.kind == AccountKind.HOSPITAL.value, account.party == rows.principal.org)
        )
    return (
        select(
            account.kind.label("payee"),
            case((~is_person, account.party)).label("hospitalCode"),
            cast(person.id, String).label("beneficiaryId"),
            person.id_number.label("idNumber"),
            person.name.label("name"),
            account.region_code.label("regionCode"),
            literal(start).label("periodStart"),
            literal(end).label("periodEnd"),
            owed.label("amount"),
            person.id.label(person_label),
        )
        .select_from(entry)
        .join(account, account.id == entry.account_id)
        .outerjoin(person, and_(is_person, cast(person.id, String) == account.party))
        .where(*conditions)
        .group_by(account.id, person.id)
        .having(owed != 0)
        .order_by(account.kind, account.region_code, account.party)
    )
