"""Per-request data loaders: every nested list is one query per page, never one per row.

Loaders return ORM rows; the schema turns them into GraphQL types.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, select
from strawberry.dataloader import DataLoader

from gateway.storage import models
from resolvers.rows import RowRules

T = TypeVar("T")
K = TypeVar("K")
Fetch = Callable[[Select[Any]], Awaitable[Sequence[Any]]]
FetchTuples = Callable[[Select[*tuple[Any, ...]]], Awaitable[Sequence[Any]]]


@dataclass(frozen=True)
class ClaimPage:
    """Which claims of one person: a year (or all), a page size and the id after which to start."""

    beneficiary_id: uuid.UUID
    year: int | None
    first: int
    after: int | None


def _group(rows: Sequence[Any], key: Callable[[Any], Any]) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[key(row)].append(row)
    return grouped


class SharedLoader(DataLoader[K, T]):
    """strawberry's :class:`DataLoader`, whose futures a cancelled caller cannot cancel.

    A key's future is shared by every field that loads it. graphql-core cancels the pending
    siblings of a field whose error nulls their parent; awaiting the shared future directly
    would cancel it for the other fields too (another root field, another page's person), and
    their request would end in ``CancelledError`` instead of an answer. Each caller awaits its
    own :func:`asyncio.shield` of the future instead."""

    def load(self, key: K) -> asyncio.Future[T]:
        return asyncio.shield(super().load(key))


class Loaders:
    def __init__(self, fetch: Fetch, rows: RowRules, fetch_tuples: FetchTuples) -> None:
        self._all = fetch
        self._tuples = fetch_tuples
        self.rows = rows
        self.identities = self._by_beneficiary(
            models.Identity, models.Identity.valid_from, models.Identity.id
        )
        self.monitoring_flags = self._by_beneficiary(
            models.MonitoringFlag, models.MonitoringFlag.valid_from, models.MonitoringFlag.id
        )
        self.enrollments = self._by_beneficiary(models.Enrollment, models.Enrollment.year)
        self.alerts = self._by_beneficiary(models.HighCostAlert, models.HighCostAlert.year)
        self.claim_pages: DataLoader[ClaimPage, list[models.Claim]] = SharedLoader(
            load_fn=self._load_claim_pages
        )
        self.claim_counts: DataLoader[tuple[uuid.UUID, int | None], int] = SharedLoader(
            load_fn=self._load_claim_counts
        )
        self.settlements: DataLoader[tuple[int, int], list[models.Settlement]] = SharedLoader(
            load_fn=self._load_settlements
        )
        """A claim's settlement events, by (claim id, settlement year)."""
        self.lines: DataLoader[tuple[int, int], list[models.SettlementLine]] = SharedLoader(
            load_fn=self._load_lines
        )
        """An event's lines, by (event id, settlement year)."""
        self.ledgers: DataLoader[tuple[uuid.UUID, int], models.Ledger | None] = SharedLoader(
            load_fn=self._load_ledgers
        )
        self.beneficiaries: DataLoader[uuid.UUID, models.Beneficiary | None] = SharedLoader(
            load_fn=self._load_beneficiaries
        )

    def _by_beneficiary(self, model: Any, *order: Any) -> DataLoader[uuid.UUID, list[Any]]:
        async def load(keys: list[uuid.UUID]) -> list[list[Any]]:
            stmt = (
                select(model)
                .where(model.beneficiary_id.in_(keys))
                .order_by(model.beneficiary_id, *order)
            )
            rows = await self._all(stmt)
            grouped = _group(rows, lambda r: r.beneficiary_id)
            return [grouped.get(k, []) for k in keys]

        return SharedLoader(load_fn=load)

    async def _load_claim_pages(self, keys: list[ClaimPage]) -> list[list[models.Claim]]:
        # One query per distinct (year, first, after); a window numbers each person's claims.
        out: dict[ClaimPage, list[models.Claim]] = {}
        shapes = _group(keys, lambda k: (k.year, k.first, k.after))
        for (year, first, after), pages in shapes.items():
            ids = [p.beneficiary_id for p in pages]
            conditions: list[ColumnElement[bool]] = [models.Claim.beneficiary_id.in_(ids)]
            if year is not None:
                conditions.append(models.Claim.year == year)
            if after is not None:
                conditions.append(models.Claim.id > after)
            conditions.extend(self.rows.claims())
            numbered = (
                select(
                    models.Claim.id,
                    func.row_number()
                    .over(partition_by=models.Claim.beneficiary_id, order_by=models.Claim.id)
                    .label("n"),
                )
                .where(and_(*conditions))
                .subquery()
            )
            stmt = (
                select(models.Claim)
                .join(numbered, numbered.c.id == models.Claim.id)
                .where(numbered.c.n <= first)
                .order_by(models.Claim.beneficiary_id, models.Claim.id)
            )
            grouped = _group(await self._all(stmt), lambda c: c.beneficiary_id)
            for page in pages:
                out[page] = grouped.get(page.beneficiary_id, [])
        return [out[k] for k in keys]

    async def _load_claim_counts(self, keys: list[tuple[uuid.UUID, int | None]]) -> list[int]:
        # How many claims each person has (of a year, or all) under the row rules: one grouped
        # COUNT per distinct year.
        counts: dict[tuple[uuid.UUID, int | None], int] = {}
        for year, asked in _group(keys, lambda k: k[1]).items():
            person = models.Claim.beneficiary_id
            stmt = (
                select(person, func.count())
                .where(person.in_([k[0] for k in asked]), *self.rows.claims())
                .group_by(person)
            )
            if year is not None:
                stmt = stmt.where(models.Claim.year == year)
            counts.update({(p, year): n for p, n in await self._tuples(stmt)})
        return [counts.get(k, 0) for k in keys]

    async def _load_settlements(self, keys: list[tuple[int, int]]) -> list[list[models.Settlement]]:
        # The years too: PostgreSQL reads only their partitions (migration 0019), not every
        # year's index for the ids.
        event = models.Settlement
        stmt = (
            select(event)
            .where(event.claim_id.in_({k[0] for k in keys}), event.year.in_({k[1] for k in keys}))
            .order_by(event.claim_id, event.id)
        )
        grouped = _group(await self._all(stmt), lambda s: (s.claim_id, s.year))
        return [grouped.get(k, []) for k in keys]

    async def _load_lines(self, keys: list[tuple[int, int]]) -> list[list[models.SettlementLine]]:
        line = models.SettlementLine
        stmt = select(line).where(
            line.settlement_id.in_({k[0] for k in keys}), line.year.in_({k[1] for k in keys})
        )
        grouped = _group(await self._all(stmt), lambda r: (r.settlement_id, r.year))
        return [grouped.get(k, []) for k in keys]

    async def _load_ledgers(self, keys: list[tuple[uuid.UUID, int]]) -> list[models.Ledger | None]:
        stmt = select(models.Ledger).where(
            models.Ledger.beneficiary_id.in_({k[0] for k in keys}),
            models.Ledger.year.in_({k[1] for k in keys}),
        )
        found = {(r.beneficiary_id, r.year): r for r in await self._all(stmt)}
        return [found.get(k) for k in keys]

    async def _load_beneficiaries(self, keys: list[uuid.UUID]) -> list[models.Beneficiary | None]:
        stmt = select(models.Beneficiary).where(
            models.Beneficiary.id.in_(keys), *self.rows.persons()
        )
        found = {r.id: r for r in await self._all(stmt)}
        return [found.get(k) for k in keys]
