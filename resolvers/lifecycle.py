"""The lifecycle of high-cost alerts and applications as data: which action moves which state.

One table serves both (攀枝花 第十八条: pushed, assessed, fed back; 第二十二条: 受理, 分办转办,
结果反馈). Departments act (ACKNOWLEDGE, then RECOGNISE or REJECT); the gateway acts on what it
learns (HELD: the person was recognised by any department; FELL_BELOW / ROSE_ABOVE: the year's
out-of-pocket crossed the threshold). A pair missing from :data:`TRANSITIONS` is refused with
``CONFLICT`` naming the state.

>>> next_state("alert", "5", "OPEN", Action.ACKNOWLEDGE)
<State.ACKNOWLEDGED: 'ACKNOWLEDGED'>
>>> next_state("alert", "5", "CLOSED", Action.REJECT)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
gateway.errors.Conflict: id = 5: the alert is CLOSED; rejectAlert is allowed only when it is ...
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import Principal
from gateway.errors import Conflict
from gateway.storage import audit, models


class State(StrEnum):
    OPEN = "OPEN"
    """Raised (主动发现) or received (受理); nobody has taken it up yet."""
    ACKNOWLEDGED = "ACKNOWLEDGED"
    """An assessing department has taken it up (核查中)."""
    RECOGNISED = "RECOGNISED"
    """The person was recognised: linked to the identity or flag record (认定)."""
    REJECTED = "REJECTED"
    """The assessing department decided not to recognise, with a reason (不予认定)."""
    CLOSED = "CLOSED"
    """Closed without a decision: the out-of-pocket fell back under the threshold, or closed by
    the deprecated resolveAlert with its note."""


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RECOGNISE = "recognise"
    REJECT = "reject"
    CLOSE = "close"
    """The deprecated resolveAlert: close with a free-text note."""
    HELD = "held"
    """Automatic: the person now holds a category the policy assists (or the one applied for)."""
    FELL_BELOW = "fell below"
    """Automatic: the year's out-of-pocket is no longer above the threshold."""
    ROSE_ABOVE = "rose above"
    """Automatic: above the threshold again after it had fallen under (reopened)."""


S, A = State, Action
TRANSITIONS: Mapping[tuple[State, Action], State] = {
    (S.OPEN, A.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, A.RECOGNISE): S.RECOGNISED,
    (S.ACKNOWLEDGED, A.REJECT): S.REJECTED,
    (S.OPEN, A.CLOSE): S.CLOSED,
    (S.ACKNOWLEDGED, A.CLOSE): S.CLOSED,
    # A recognition by any department settles it, also after another department's rejection
    # (the rejection's reason and department stay on the record).
    (S.OPEN, A.HELD): S.RECOGNISED,
    (S.ACKNOWLEDGED, A.HELD): S.RECOGNISED,
    (S.REJECTED, A.HELD): S.RECOGNISED,
    (S.OPEN, A.FELL_BELOW): S.CLOSED,
    (S.ACKNOWLEDGED, A.FELL_BELOW): S.CLOSED,
    (S.CLOSED, A.ROSE_ABOVE): S.OPEN,
}
"""(state, action) → next state; anything else is refused. RECOGNISED and REJECTED are final for
departments; a rejected alert whose figure keeps rising stays REJECTED (its figure current)."""

MUTATIONS = {
    Action.ACKNOWLEDGE: "acknowledge",
    Action.RECOGNISE: "recognise",
    Action.REJECT: "reject",
    Action.CLOSE: "resolve",
}
"""The mutation verb of a department's action (acknowledgeAlert, recogniseApplication, …)."""


def next_state(kind: str, ident: str, state: str, action: Action) -> State:
    """The state ``action`` leads to from ``state``; ``Conflict`` naming the state and the
    states the action is allowed from when the table has no such transition. ``kind`` is
    ``alert`` or ``application`` (it names the mutation in the message)."""
    found = TRANSITIONS.get((State(state), action))
    if found is not None:
        return found
    allowed = [s.value for (s, a) in TRANSITIONS if a is action]
    verb = MUTATIONS.get(action, action.value)
    name = f"{verb}{kind.capitalize()}"
    raise Conflict(
        f"id = {ident}: the {kind} is {state}; {name} is allowed only when it is "
        + " or ".join(allowed),
        field="id",
        state=state,
    )


async def audit_transition(
    session: AsyncSession,
    principal: Principal,
    operation: str,
    beneficiary_id: uuid.UUID,
    detail: dict[str, Any],
    *,
    reason: str | None,
    record: models.Identity | models.MonitoringFlag | None,
) -> None:
    """The WRITE audit record of one transition of an alert or application: ``detail`` plus the
    reason given and the identity or flag record that resolved it, if any."""
    if reason is not None:
        detail["reason"] = reason
    if record is not None:
        detail["identity" if isinstance(record, models.Identity) else "flag"] = record.id
    await audit.append(
        session,
        principal,
        action="WRITE",
        operation=operation,
        beneficiary_ids=[beneficiary_id],
        detail=detail,
    )
