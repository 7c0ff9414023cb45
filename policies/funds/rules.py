"""The posting rules of the fund ledgers as data (``postings.yaml``) and the pure poster.

:func:`load_rules` reads and checks the file (unknown keys, an unknown account kind, a payer
without an account, an event kind without a rule are refused, naming file, key and line).
:meth:`PostingRules.settlement` and :meth:`PostingRules.subsidy` turn one event into balanced
entries: pairs of a debit and a credit of the same positive amount, on accounts named by kind,
region code and party. Nothing here reads a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from policies.money import ZERO
from policies.sourcefile import SourceFile, refuse
from policies.vocabulary import Payer

RULES_FILE = Path(__file__).with_name("postings.yaml")

SETTLEMENT_KINDS = ("ORIGINAL", "ADJUSTMENT", "REVERSAL", "RECOVERY")
SUBSIDY_KIND = "SUBSIDY"
SUBSIDY_PARTS = ("assistanceFund", "finance")
"""The parts of an enrollment subsidy that a fund pays (the individual's part is no fund's)."""


class AccountKind(StrEnum):
    """The kinds of fund account; each account is one kind, one region code and one party."""

    BASIC_FUND = "BASIC_FUND"
    CRITICAL_ILLNESS_INSURER = "CRITICAL_ILLNESS_INSURER"
    INCLUSIVE_COMMERCIAL_INSURER = "INCLUSIVE_COMMERCIAL_INSURER"
    ASSISTANCE_FUND = "ASSISTANCE_FUND"
    FINANCE = "FINANCE"
    HOSPITAL = "HOSPITAL"
    PERSON = "PERSON"


Party = Literal["none", "carrier", "hospital", "person"]


class Side(StrEnum):
    DEBIT = "DEBIT"
    CREDIT = "CREDIT"

    @property
    def other(self) -> Side:
        return Side.CREDIT if self is Side.DEBIT else Side.DEBIT


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountRule(_Strict):
    title: str
    party: Party


class SettlementRule(_Strict):
    debit: Literal["payer"] | None = None
    credit: tuple[AccountKind, ...] = ()
    mirror: bool = False

    @model_validator(mode="after")
    def _one_form(self) -> SettlementRule:
        if self.mirror and (self.debit or self.credit):
            raise refuse("give either mirror: true or debit and credit, not both", "mirror")
        if not self.mirror and (self.debit is None or not self.credit):
            raise refuse("give debit: payer and a list of credit accounts", "credit")
        return self


class SubsidyRule(_Strict):
    debit: AccountKind
    credit: AccountKind


class PostingRules(_Strict):
    """The whole file: account kinds, the payer accounts, the rule of each event kind."""

    accounts: dict[AccountKind, AccountRule]
    payers: dict[Payer, AccountKind]
    settlement: dict[Literal["ORIGINAL", "ADJUSTMENT", "REVERSAL", "RECOVERY"], SettlementRule]
    subsidies: dict[Literal["assistanceFund", "finance"], SubsidyRule]

    @model_validator(mode="after")
    def _complete(self) -> PostingRules:
        for kind in AccountKind:
            if kind not in self.accounts:
                raise refuse(f"account kind {kind} has no entry", "accounts")
        for payer in Payer:
            if payer not in self.payers:
                raise refuse(f"payer {payer} has no account", "payers")
        for event in SETTLEMENT_KINDS:
            if event not in self.settlement:
                raise refuse(f"event kind {event} has no rule", "settlement")
        for part in SUBSIDY_PARTS:
            if part not in self.subsidies:
                raise refuse(f"subsidy part {part} has no rule", "subsidies")
        return self

    def party_of(self, kind: AccountKind) -> Party:
        return self.accounts[kind].party

    def settlement_entries(
        self,
        kind: str,
        lines: Mapping[Payer, Decimal],
        parties: Parties,
    ) -> list[Entry]:
        """The entries of one settlement event (not a ``mirror`` one: those reverse the claim's
        earlier entries, which only the database knows).

        >>> rules = load_rules()
        >>> parties = Parties("510402", carrier="picc", hospital="H1", person="p-1")
        >>> recovery = {Payer.ASSISTANCE: Decimal(-5)}
        >>> [str(e) for e in rules.settlement_entries("RECOVERY", recovery, parties)]
        ['DEBIT PERSON/510402/p-1 5 (assistance)', 'CREDIT ASSISTANCE_FUND/510402/ 5 (assistance)']
        """
        rule = self.rule_of(kind)
        if rule.mirror:
            raise ValueError(f"{kind} events reverse earlier entries (mirror)")
        credit = next((k for k in rule.credit if parties.of(self.party_of(k)) is not None), None)
        if credit is None:
            raise ValueError(f"{kind}: no party for any of {', '.join(rule.credit)}")
        entries: list[Entry] = []
        for payer in Payer:
            amount = lines.get(payer, ZERO)
            if amount == ZERO:
                continue
            debit = self.payers[payer]
            entries += _pair(
                self._account(debit, parties), self._account(credit, parties), amount, payer.value
            )
        return entries

    def subsidy_entries(self, parts: Mapping[str, Decimal], parties: Parties) -> list[Entry]:
        """The entries of one enrollment's subsidy: per part, debit the paying fund and credit
        the receiving one.

        >>> rules = load_rules()
        >>> [str(e) for e in rules.subsidy_entries({"finance": Decimal(30)}, Parties("320102"))]
        ['DEBIT FINANCE/320102/ 30 (finance)', 'CREDIT BASIC_FUND/320102/ 30 (finance)']
        """
        entries: list[Entry] = []
        for part in SUBSIDY_PARTS:
            amount = parts.get(part, ZERO)
            if amount == ZERO:
                continue
            rule = self.subsidies[part]  # type: ignore[index]
            entries += _pair(
                self._account(rule.debit, parties),
                self._account(rule.credit, parties),
                amount,
                part,
            )
        return entries

    def layout(self, account: AccountKind) -> list[tuple[str, str]]:
        """The (event kind, flow) pairs the rules can post to an account of that kind, in
        order: the rows of its statement, shown even when nothing was posted.

        >>> load_rules().layout(AccountKind.FINANCE)
        [('SUBSIDY', 'finance')]
        >>> load_rules().layout(AccountKind.CRITICAL_ILLNESS_INSURER)[:2]
        [('ORIGINAL', 'criticalIllness'), ('ADJUSTMENT', 'criticalIllness')]
        """
        payees = {k for r in self.settlement.values() for k in r.credit}
        rows: list[tuple[str, str]] = []
        for event in SETTLEMENT_KINDS:
            rule = self.rule_of(event)
            credited = account in payees if rule.mirror else account in rule.credit
            rows += [
                (event, payer.value) for payer in Payer if self.payers[payer] is account or credited
            ]
        for part in SUBSIDY_PARTS:
            sub = self.subsidies[part]  # type: ignore[index]
            if account in (sub.debit, sub.credit):
                rows.append((SUBSIDY_KIND, part))
        return rows

    def rule_of(self, kind: str) -> SettlementRule:
        if kind not in self.settlement:
            raise ValueError(f"unknown settlement kind {kind!r}")
        return self.settlement[kind]

    def _account(self, kind: AccountKind, parties: Parties) -> Account:
        party = parties.of(self.party_of(kind))
        if party is None:
            raise ValueError(f"no {self.party_of(kind)} for a {kind} account")
        return Account(kind, parties.region_code, party)


@dataclass(frozen=True)
class Parties:
    """Who an event involves: the person's region code and, where known, the claim's carrier,
    hospital code and person (id)."""

    region_code: str
    carrier: str | None = None
    hospital: str | None = None
    person: str | None = None

    def of(self, party: Party) -> str | None:
        """The party of that type ('' for an account without party, e.g. the region's fund).
        An insurer account of a claim without carrier is the carrier ''."""
        if party == "none":
            return ""
        if party == "carrier":
            return self.carrier or ""
        return self.hospital if party == "hospital" else self.person


@dataclass(frozen=True)
class Account:
    kind: AccountKind
    region_code: str
    party: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.region_code}/{self.party}"


@dataclass(frozen=True)
class Entry:
    """One side of a posting: a positive amount debited or credited to one account, for one
    flow (the payer line, or the subsidy part, it comes from)."""

    account: Account
    side: Side
    amount: Decimal
    flow: str

    def __str__(self) -> str:
        return f"{self.side} {self.account} {self.amount} ({self.flow})"

    @property
    def signed(self) -> Decimal:
        """Debit positive, credit negative."""
        return self.amount if self.side is Side.DEBIT else -self.amount


def _pair(debit: Account, credit: Account, amount: Decimal, flow: str) -> list[Entry]:
    """A debit and a credit of ``amount``; a negative amount swaps the sides."""
    if amount < ZERO:
        debit, credit, amount = credit, debit, -amount
    return [Entry(debit, Side.DEBIT, amount, flow), Entry(credit, Side.CREDIT, amount, flow)]


def load_rules(path: Path = RULES_FILE) -> PostingRules:
    """The posting rules of ``path`` (default: ``postings.yaml`` next to this module)."""
    return SourceFile.read(path).validate(PostingRules)
