"""High-cost alerts (主动发现, 攀枝花 第十八条; 主动识别, 鲁医保发 四(一)): raised, kept current and
closed by the gateway on every settlement event; acknowledged, recognised or rejected by the
assessing departments.

Every change of an alert (raised, figure updated, any transition) goes through :func:`change`,
the one place that writes an alert, so that whatever must follow a change (the audit record, an
event) is written there. The transitions are data: :mod:`resolvers.lifecycle`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import Principal
from gateway.errors import Conflict, NotFound
from gateway.storage import models
from policies.benefits import PolicySet
from policies.errors import InvalidInput
from resolvers import outbox
from resolvers.context import Context
from resolvers.inputs import check_text
from resolvers.lifecycle import Action, State, audit_transition, next_state
from resolvers.pages import Key, Order, Page, fetch_page

_ALERT = models.HighCostAlert
ORDERS = {
    "ID": Order((_ALERT.id,)),
    "OUT_OF_POCKET_DESC": Order((_ALERT.out_of_pocket, _ALERT.id), descending=True),
    "OUT_OF_POCKET_ASC": Order((_ALERT.out_of_pocket, _ALERT.id)),
}
"""The sort orders of the highCostAlerts field, by the names of the GraphQL enum AlertOrder."""

GATEWAY = "gateway"
"""``resolvedBy`` of an automatic transition."""

Record = models.Identity | models.MonitoringFlag


async def page(
    ctx: Context,
    *,
    status: str | None,
    year: int | None,
    order: Order,
    first: int,
    after: Key | None,
) -> Page[models.HighCostAlert]:
    """``first + 1`` alerts of the caller's rows after ``after`` in ``order``, and their count."""
    stmt = select(models.HighCostAlert).where(
        ctx.rows.person_of(models.HighCostAlert.beneficiary_id)
    )
    if status is not None:
        stmt = stmt.where(models.HighCostAlert.status == status)
    if year is not None:
        stmt = stmt.where(models.HighCostAlert.year == year)
    return await fetch_page(ctx.all, stmt, order, after, first)


async def linked(
    ctx: Context, model: type[models.Identity] | type[models.MonitoringFlag], key: int | None
) -> Record | None:
    """The identity or flag record an alert or application is linked to (the same person's:
    already within the caller's rows)."""
    if key is None:
        return None
    row: Record | None = await ctx.one_or_none(select(model).where(model.id == key))
    return row


# -- the one writer -----------------------------------------------------------------------------


def who(principal: Principal) -> str:
    return f"{principal.department}/{principal.org}"


def link(row: models.HighCostAlert | models.AssistanceApplication, record: Record) -> None:
    """Point an alert or application at the identity or flag record that recognised the person."""
    if isinstance(record, models.Identity):
        row.identity_id, row.flag_id = record.id, None
    else:
        row.identity_id, row.flag_id = None, record.id


def apply(
    row: models.HighCostAlert | models.AssistanceApplication,
    action: Action,
    principal: Principal,
    *,
    reason: str | None,
    record: Record | None,
    automatic: bool,
) -> None:
    """Set the lifecycle columns of ``row`` for ``action`` (the state already checked)."""
    now = datetime.now(UTC)
    if action is Action.ACKNOWLEDGE:
        row.acknowledged_by, row.acknowledged_at = who(principal), now
        row.department = principal.department
    elif action is Action.ROSE_ABOVE:
        row.acknowledged_by = row.acknowledged_at = row.department = None
        row.resolved_by = row.resolution = row.resolved_at = None
        row.identity_id = row.flag_id = None
    else:
        row.resolved_by = GATEWAY if automatic else who(principal)
        row.resolved_at, row.resolution = now, reason
        if record is not None:
            link(row, record)
            row.department = record.department
        elif action is Action.REJECT:
            row.department = principal.department
    row.updated_at = now


async def change(
    session: AsyncSession,
    principal: Principal,
    alert: models.HighCostAlert,
    action: Action | None,
    *,
    operation: str,
    reason: str | None = None,
    record: Record | None = None,
    figure: tuple[Decimal, Decimal | None] | None = None,
) -> models.HighCostAlert:
    """Change ``alert``: a transition (``action``, checked against the lifecycle table), a new
    figure (``figure`` = out-of-pocket and threshold, yuan), or both; a new alert (no id yet) is
    raised OPEN. Audited in the caller's transaction as a WRITE of ``operation`` by
    ``principal`` (the department whose request caused it, also for automatic transitions).

    Raises ``CONFLICT`` naming the state when the table has no such transition.
    """
    before = None if alert.id is None else alert.status
    automatic = action in (Action.HELD, Action.FELL_BELOW, Action.ROSE_ABOVE)
    if action is not None:
        alert.status = next_state("alert", str(alert.id), alert.status, action).value
        apply(alert, action, principal, reason=reason, record=record, automatic=automatic)
    if figure is not None:
        alert.out_of_pocket = figure[0]
        if figure[1] is not None:
            alert.threshold = figure[1]
        alert.updated_at = datetime.now(UTC)
    if alert.id is None:
        session.add(alert)
    await session.flush()
    detail: dict[str, Any] = {
        "alert": alert.id,
        "year": alert.year,
        "from": before,
        "to": alert.status,
        "outOfPocket": str(alert.out_of_pocket),
    }
    if action is not None:
        detail["action"] = action.value
    await audit_transition(
        session, principal, operation, alert.beneficiary_id, detail, reason=reason, record=record
    )
    await outbox.alert_changed(session, alert)
    return alert


# -- discovery: what the gateway does on every settlement event ---------------------------------


@dataclass(frozen=True)
class Year:
    """What discovery reads about one person-year: the ledger's out-of-pocket (yuan, as in
    ``yearlySummary``), its visits, and whether any claim of it is insured."""

    beneficiary_id: uuid.UUID
    region_code: str
    year: int
    out_of_pocket: Decimal
    visits: int
    insured: bool


async def assisted_record(
    session: AsyncSession,
    policies: PolicySet,
    region_code: str,
    person: uuid.UUID,
    year: int,
    records: Sequence[Record] | None = None,
) -> Record | None:
    """The person's latest identity or flag record of a category the year's policy assists
    whose interval meets the year (a person recognised in the year is known, not discovered).
    ``records``: every identity and flag of the person as the transaction knows them already
    (identities first), so that they are not read again."""
    try:
        policy = policies.in_force(region_code, date(year, 12, 31))
    except LookupError:
        return None
    assisted = sorted(c.value for c in policy.assisted_categories)
    first, last = date(year, 1, 1), date(year, 12, 31)
    found: list[Record] = []
    if records is not None:
        found = [
            r
            for r in records
            if r.category in assisted
            and r.valid_from <= last
            and (r.valid_to is None or r.valid_to >= first)
        ]
        return max(found, key=lambda r: r.recorded_at, default=None)
    for model in (models.Identity, models.MonitoringFlag):
        rows = await session.scalars(
            select(model).where(
                model.beneficiary_id == person,
                model.category.in_(assisted),
                model.valid_from <= last,
                (model.valid_to.is_(None)) | (model.valid_to >= first),
            )
        )
        found.extend(cast(Sequence[Record], rows.all()))
    return max(found, key=lambda r: r.recorded_at, default=None)


def _threshold(policies: PolicySet, region_code: str, year: int) -> tuple[str, Decimal] | None:
    try:
        policy = policies.in_force(region_code, date(year, 12, 31))
    except LookupError:
        return None
    threshold = policy.discovery_threshold(year)
    return None if threshold is None else (policy.id, threshold)


async def review(
    session: AsyncSession,
    principal: Principal,
    policies: PolicySet,
    year: Year,
    cause: str,
    records: Sequence[Record] | None = None,
    locked: tuple[models.HighCostAlert | None] | None = None,
) -> models.HighCostAlert | None:
    """Raise, update or close the person-year's alert after its ledger changed (a settlement,
    adjustment, recovery or reversal) or the person's categories did (``cause`` names it).

    - no alert: raised OPEN when the year is insured, its out-of-pocket is above the policy's
      threshold and the person holds no category the policy assists;
    - an alert: its figure follows the ledger; it is RECOGNISED (linked) once the person holds
      an assisted category, CLOSED when the out-of-pocket is no longer above the threshold, and
      reopened (OPEN) when it rises above it again after that.

    ``records`` (the person's identities and flags) and ``locked`` (the year's alert or None,
    locked ``FOR UPDATE``): what the transaction has read already, so as not to read it again.
    """
    alert = (
        locked[0]
        if locked is not None
        else (
            await session.scalars(
                select(models.HighCostAlert)
                .where(
                    models.HighCostAlert.beneficiary_id == year.beneficiary_id,
                    models.HighCostAlert.year == year.year,
                )
                .with_for_update()
            )
        ).one_or_none()
    )
    # Audited apart from the write that caused it (whose own record keeps its operation name).
    operation = f"highCostAlert after {cause}"[:120]
    rule = _threshold(policies, year.region_code, year.year)
    threshold = None if rule is None else rule[1]
    held = await assisted_record(
        session, policies, year.region_code, year.beneficiary_id, year.year, records
    )
    above = threshold is not None and year.out_of_pocket > threshold
    if alert is None:
        if rule is None or not above or held is not None or not year.insured or not year.visits:
            return None
        raised = models.HighCostAlert(
            beneficiary_id=year.beneficiary_id,
            year=year.year,
            policy=rule[0],
            out_of_pocket=year.out_of_pocket,
            threshold=rule[1],
            status=State.OPEN.value,
        )
        return await change(session, principal, raised, None, operation=operation)
    figure = (year.out_of_pocket, threshold)
    moved = alert.out_of_pocket != year.out_of_pocket or (
        threshold is not None and alert.threshold != threshold
    )
    status = State(alert.status)
    if held is not None and status in (State.OPEN, State.ACKNOWLEDGED, State.REJECTED):
        reason = f"recognised: {held.category} recorded by {held.department}/{held.org}"
        return await change(
            session, principal, alert, Action.HELD, operation=operation, reason=reason, record=held,
            figure=figure,
        )  # fmt: skip
    if threshold is not None and not above and status in (State.OPEN, State.ACKNOWLEDGED):
        reason = f"out-of-pocket {year.out_of_pocket} is no longer above the threshold {threshold}"
        return await change(
            session, principal, alert, Action.FELL_BELOW, operation=operation, reason=reason,
            figure=figure,
        )  # fmt: skip
    if status is State.CLOSED and above and alert.out_of_pocket <= (threshold or 0) and not held:
        return await change(
            session, principal, alert, Action.ROSE_ABOVE, operation=operation, figure=figure
        )
    if moved:
        return await change(session, principal, alert, None, operation=operation, figure=figure)
    return alert


async def review_person(
    session: AsyncSession,
    principal: Principal,
    policies: PolicySet,
    person: models.Beneficiary,
    cause: str,
    records: Sequence[Record] | None = None,
    reviewed: Collection[int] = (),
) -> None:
    """:func:`review` every year of the person that has an alert (after a category changed).
    ``records``: the person's identities and flags as the transaction read them after the
    change (identities first; None: read them); ``reviewed``: years reviewed already by this
    transaction after the change (a re-run's, with the same records and ledger), skipped."""
    rows = (
        await session.execute(
            select(models.HighCostAlert.year, models.Ledger)
            .join(
                models.Ledger,
                (models.Ledger.beneficiary_id == models.HighCostAlert.beneficiary_id)
                & (models.Ledger.year == models.HighCostAlert.year),
            )
            .where(models.HighCostAlert.beneficiary_id == person.id)
            .order_by(models.HighCostAlert.year)
        )
    ).all()
    for year, ledger in rows:
        if year in reviewed:
            continue
        figures = Year(
            person.id, person.region_code, year, ledger.out_of_pocket, ledger.visits, True
        )
        await review(session, principal, policies, figures, cause, records)


# -- what departments do ------------------------------------------------------------------------


def parse_id(value: str, field: str = "id", what: str = "alert") -> int:
    try:
        key = int(value)
    except ValueError:
        raise InvalidInput(field, value, f"not an {what} id of this API") from None
    if not 0 < key < 2**63:
        raise InvalidInput(field, value, f"not an {what} id of this API")
    return key


async def _locked(session: AsyncSession, ctx: Context, alert_id: str) -> models.HighCostAlert:
    key = parse_id(alert_id)
    alert = (
        await session.scalars(
            select(models.HighCostAlert)
            .where(
                models.HighCostAlert.id == key,
                ctx.rows.person_of(models.HighCostAlert.beneficiary_id),
            )
            .with_for_update()
        )
    ).one_or_none()
    if alert is None:
        raise NotFound(f"id = {alert_id}: no such alert", field="id")
    return alert


async def record_of_person(
    session: AsyncSession,
    person: uuid.UUID,
    identity_id: str | None,
    flag_id: str | None,
) -> Record:
    """The identity or flag record named by exactly one of ``identityId`` / ``flagId``, which
    must exist and belong to ``person`` (BAD_INPUT otherwise, naming the field and the value;
    nothing about a record of someone else is told)."""
    if (identity_id is None) == (flag_id is None):
        given = identity_id if flag_id is None else flag_id
        raise InvalidInput("identityId", given, "give exactly one of identityId and flagId")
    field, value = ("identityId", identity_id) if identity_id is not None else ("flagId", flag_id)
    assert value is not None
    model: type[models.Identity] | type[models.MonitoringFlag] = (
        models.Identity if field == "identityId" else models.MonitoringFlag
    )
    key = parse_id(value, field, "identity" if field == "identityId" else "flag")
    found: Record | None = await session.get(model, key)
    if found is None or found.beneficiary_id != person:
        kind = "identity" if field == "identityId" else "monitoring flag"
        raise InvalidInput(field, value, f"no {kind} record of this person")
    return found


def same_decision(
    row: models.HighCostAlert | models.AssistanceApplication,
    action: Action,
    principal: Principal,
    reason: str | None,
    record: Record | None,
) -> bool:
    """Whether ``action`` was already done with the same arguments (a re-sent request)."""
    if action is Action.ACKNOWLEDGE:
        return row.status == State.ACKNOWLEDGED and row.department == principal.department
    if action is Action.REJECT:
        return (
            row.status == State.REJECTED
            and row.department == principal.department
            and row.resolution == reason
        )
    if action is Action.RECOGNISE and record is not None:
        linked = row.identity_id if isinstance(record, models.Identity) else row.flag_id
        return row.status == State.RECOGNISED and linked == record.id
    return action is Action.CLOSE and row.status == State.CLOSED and row.resolution == reason


def check_assessor(
    row: models.HighCostAlert | models.AssistanceApplication,
    ident: str,
    kind: str,
    principal: Principal,
) -> None:
    """A decision is the acknowledging (assessing) department's."""
    if row.status == State.ACKNOWLEDGED and row.department != principal.department:
        raise Conflict(
            f"id = {ident}: the {kind} was acknowledged by {row.department}, which decides it",
            field="id",
            state=row.status,
        )


async def act(
    ctx: Context,
    alert_id: str,
    action: Action,
    *,
    reason: str | None = None,
    identity_id: str | None = None,
    flag_id: str | None = None,
) -> models.HighCostAlert:
    """acknowledgeAlert, recogniseAlert (with ``identity_id`` or ``flag_id``), rejectAlert (with
    ``reason``) and the deprecated resolveAlert (CLOSE with ``reason``).

    Raises BAD_INPUT for a bad id, a missing reason or a record that is not the person's,
    NOT_FOUND outside the caller's rows, CONFLICT naming the state for a transition the
    lifecycle does not allow (re-sending the same decision returns the alert unchanged).
    """
    if action in (Action.REJECT, Action.CLOSE):
        field = "resolution" if action is Action.CLOSE else "reason"
        reason = check_text(reason, field, 500, required=True)
    operation = {
        Action.ACKNOWLEDGE: "acknowledgeAlert",
        Action.RECOGNISE: "recogniseAlert",
        Action.REJECT: "rejectAlert",
        Action.CLOSE: "resolveAlert",
    }[action]
    async with ctx.db.transaction() as session:
        alert = await _locked(session, ctx, alert_id)
        record = None
        if action is Action.RECOGNISE:
            record = await record_of_person(session, alert.beneficiary_id, identity_id, flag_id)
            reason = f"recognised: {record.category} ({record.reference})"
        if same_decision(alert, action, ctx.principal, reason, record):
            return alert
        if action in (Action.RECOGNISE, Action.REJECT):
            check_assessor(alert, alert_id, "alert", ctx.principal)
        return await change(
            session, ctx.principal, alert, action, operation=operation, reason=reason,
            record=record,
        )  # fmt: skip
