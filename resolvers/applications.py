"""Applications for assistance (依申请救助, 攀枝花 第十九、二十二条; 鲁医保发 四(一)).

A person applies for a category at any department's window (受理, ``submitApplication``); the
application is routed (分办转办) to the department that recognises that category (the one whose
access policy lists it in ``write_categories``), which acknowledges it and decides it: RECOGNISED,
linked to the identity or flag record it produced (also automatically, when that department
records the category for the person), or REJECTED with a reason. The result is fed back (结果反馈)
to the receiving window, which reads it in ``applications``. Same lifecycle table as alerts
(:mod:`resolvers.lifecycle`); every change is audited with the person.

Rows: an application is visible to the departments it involves (received or routed to), within
the token's regions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import Principal
from gateway.errors import Conflict, Forbidden, NotFound
from gateway.storage import models
from policies.errors import InvalidInput
from policies.vocabulary import Category
from resolvers import outbox
from resolvers.alerts import (
    Record,
    apply,
    check_assessor,
    parse_id,
    record_of_person,
    same_decision,
    who,
)
from resolvers.beneficiaries import lock_person
from resolvers.context import Context
from resolvers.inputs import check_text
from resolvers.lifecycle import Action, State, audit_transition, next_state
from resolvers.pages import Key, Order, Page, fetch_page

_APP = models.AssistanceApplication
BY_ID = Order((_APP.id,))
PENDING = (State.OPEN.value, State.ACKNOWLEDGED.value)


def routed_to(ctx: Context, category: Category) -> str:
    """The department that recognises ``category`` (the first by name when several do);
    BAD_INPUT when none does."""
    for name, policy in sorted(ctx.access.departments.items()):
        if policy.may_write_category(category):
            return name
    raise InvalidInput("category", category.value, "no department recognises this category")


def _involved(principal: Principal) -> Any:
    return or_(
        _APP.received_department == principal.department, _APP.routed_to == principal.department
    )


async def page(
    ctx: Context, *, status: str | None, first: int, after: Key | None
) -> Page[models.AssistanceApplication]:
    """Applications of the caller's rows that its department received or was routed, oldest
    first, optionally in one status."""
    stmt = select(_APP).where(ctx.rows.person_of(_APP.beneficiary_id), _involved(ctx.principal))
    if status is not None:
        stmt = stmt.where(_APP.status == status)
    return await fetch_page(ctx.all, stmt, BY_ID, after, first)


async def change(
    session: AsyncSession,
    principal: Principal,
    row: models.AssistanceApplication,
    action: Action | None,
    *,
    operation: str,
    reason: str | None = None,
    record: Record | None = None,
) -> models.AssistanceApplication:
    """The one place an application changes: received (``action`` None, no id yet) or moved by
    the lifecycle table (CONFLICT naming the state otherwise); audited as a WRITE."""
    before = None if row.id is None else row.status
    if action is not None:
        row.status = next_state("application", str(row.id), row.status, action).value
        apply(row, action, principal, reason=reason, record=record, automatic=action is Action.HELD)
    if row.id is None:
        session.add(row)
    await session.flush()
    detail: dict[str, Any] = {
        "application": row.id,
        "category": row.category,
        "routedTo": row.routed_to,
        "from": before,
        "to": row.status,
    }
    await audit_transition(
        session, principal, operation, row.beneficiary_id, detail, reason=reason, record=record
    )
    await outbox.application_changed(session, row)
    return row


async def submit(
    ctx: Context, id_number: str, category: Category, statement: str
) -> models.AssistanceApplication:
    """受理: record a person's application at the caller's window and route it.

    Raises BAD_INPUT (statement, category no department recognises), NOT_FOUND (a person not in
    the caller's rows), CONFLICT when an application for the category is pending with another
    statement (the same statement again returns it).
    """
    text = check_text(statement, "statement", 500, required=True) or ""
    target = routed_to(ctx, category)
    async with ctx.db.transaction() as session:
        person = await lock_person(session, ctx.rows, id_number)
        pending = (
            await session.scalars(
                select(_APP).where(
                    _APP.beneficiary_id == person.id,
                    _APP.category == category.value,
                    _APP.status.in_(PENDING),
                )
            )
        ).first()
        if pending is not None:
            if pending.statement == text:
                return pending
            raise Conflict(
                f"category = {category.value}: an application for it is pending (id "
                f"{pending.id}); it is decided first",
                field="category",
            )
        row = models.AssistanceApplication(
            beneficiary_id=person.id,
            category=category.value,
            statement=text,
            received_department=ctx.principal.department,
            received_by=who(ctx.principal),
            routed_to=target,
            status=State.OPEN.value,
            updated_at=datetime.now(UTC),
        )
        return await change(session, ctx.principal, row, None, operation="submitApplication")


async def act(
    ctx: Context,
    application_id: str,
    action: Action,
    *,
    reason: str | None = None,
    identity_id: str | None = None,
    flag_id: str | None = None,
) -> models.AssistanceApplication:
    """acknowledgeApplication, recogniseApplication (with the record), rejectApplication (with a
    reason): by the department the application was routed to (FORBIDDEN for another one, which
    still sees it when it received it). Errors as for alerts (resolvers.alerts.act)."""
    operation = {
        Action.ACKNOWLEDGE: "acknowledgeApplication",
        Action.RECOGNISE: "recogniseApplication",
        Action.REJECT: "rejectApplication",
    }[action]
    if action is Action.REJECT:
        reason = check_text(reason, "reason", 500, required=True)
    elif reason is not None:
        reason = check_text(reason, "reason", 500)
    key = parse_id(application_id, "id", "application")
    async with ctx.db.transaction() as session:
        row = (
            await session.scalars(
                select(_APP)
                .where(
                    _APP.id == key,
                    ctx.rows.person_of(_APP.beneficiary_id),
                    _involved(ctx.principal),
                )
                .with_for_update()
            )
        ).one_or_none()
        if row is None:
            raise NotFound(f"id = {application_id}: no such application", field="id")
        if row.routed_to != ctx.principal.department:
            raise Forbidden(
                f"id = {application_id}: routed to {row.routed_to}, which decides it", field="id"
            )
        record = None
        if action is Action.RECOGNISE:
            record = await record_of_person(session, row.beneficiary_id, identity_id, flag_id)
            reason = reason or f"recognised: {record.category} ({record.reference})"
        if same_decision(row, action, ctx.principal, reason, record):
            return row
        if action in (Action.RECOGNISE, Action.REJECT):
            check_assessor(row, application_id, "application", ctx.principal)
        return await change(
            session, ctx.principal, row, action, operation=operation, reason=reason,
            record=record,
        )  # fmt: skip


async def recognised_by(
    session: AsyncSession, principal: Principal, record: Record, operation: str
) -> None:
    """A record of a category was recorded: every pending application of the person for that
    category is RECOGNISED, linked to it (the recognition the application produced)."""
    pending = (
        await session.scalars(
            select(_APP)
            .where(
                _APP.beneficiary_id == record.beneficiary_id,
                _APP.category == record.category,
                _APP.status.in_(PENDING),
            )
            .with_for_update()
        )
    ).all()
    for row in pending:
        reason = f"recognised: {record.category} recorded by {record.department}/{record.org}"
        await change(
            session,
            principal,
            row,
            Action.HELD,
            operation=f"application after {operation}",
            reason=reason,
            record=record,
        )
