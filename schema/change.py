"""Change notifications: the change feed (``changes``), the subscriptions (``claimChanged``,
``alertChanged``, ``identityChanged``) and what they carry (``Change``).

A ``Change`` names what changed and links to it as it is now, through the same types as the
queries (``Claim``, ``HighCostAlert``, ``Beneficiary``, ``Application``): a department reads of
it exactly what its policy grants on those types, masked as in its queries, and only the changes
whose subject is in its rows (an insurer: the claims it carries).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import graphql
import strawberry

from resolvers import outbox, retention
from schema.application import Application
from schema.beneficiary import Beneficiary, Claim, HighCostAlert
from schema.enums import described

if TYPE_CHECKING:
    from resolvers.context import Context


class ChangeType(StrEnum):
    CLAIM_CHANGED = "CLAIM_CHANGED"
    IDENTITY_CHANGED = "IDENTITY_CHANGED"
    ALERT_CHANGED = "ALERT_CHANGED"
    APPLICATION_CHANGED = "APPLICATION_CHANGED"


described(
    ChangeType,
    "What kind of subject changed (a change notification's type).",
    {
        ChangeType.CLAIM_CHANGED: "A claim was settled, re-settled (ADJUSTMENT), reversed, "
        "recovered (RECOVERY) or acknowledged by its carrier.",
        ChangeType.IDENTITY_CHANGED: "A person's identities (身份) or monitoring flags were "
        "recorded or ended.",
        ChangeType.ALERT_CHANGED: "A high-cost alert (主动发现) was raised, moved in its "
        "lifecycle, or its figure changed.",
        ChangeType.APPLICATION_CHANGED: "An application for assistance (依申请救助) was received "
        "or moved in its lifecycle.",
    },
)


@strawberry.type(
    description="One change, in the feed's order: its position, its kind, when it was written, "
    "and its subject as it is now (one of claim, alert, beneficiary, application; the others "
    "null)."
)
class Change:
    cursor: str = strawberry.field(
        description="This change's position: changes(since:) with it continues after it."
    )
    type: ChangeType = strawberry.field(description="What kind of subject changed.")
    at: datetime = strawberry.field(description="When the change was written (its transaction).")
    claim: Claim | None = strawberry.field(description="The claim (CLAIM_CHANGED).")
    alert: HighCostAlert | None = strawberry.field(description="The alert (ALERT_CHANGED).")
    beneficiary: Beneficiary | None = strawberry.field(
        description="The person whose identities or flags changed (IDENTITY_CHANGED)."
    )
    application: Application | None = strawberry.field(
        description="The application (APPLICATION_CHANGED)."
    )
    beneficiary_id: strawberry.Private[Any]

    @classmethod
    def of(cls, item: outbox.Visible) -> Change:
        event, subject = item.event, item.subject
        kind = ChangeType(event.type)
        return cls(
            cursor=outbox.position_of(event).encode(),
            type=kind,
            at=event.at,
            claim=Claim.from_model(subject) if kind is ChangeType.CLAIM_CHANGED else None,
            alert=HighCostAlert.from_model(subject) if kind is ChangeType.ALERT_CHANGED else None,
            beneficiary=Beneficiary.from_model(subject)
            if kind is ChangeType.IDENTITY_CHANGED
            else None,
            application=Application.from_model(subject)
            if kind is ChangeType.APPLICATION_CHANGED
            else None,
            beneficiary_id=event.beneficiary_id,
        )


@strawberry.type(description="A page of the change feed.")
class ChangeFeed:
    changes: list[Change] = strawberry.field(
        description="The changes the caller may read, in the feed's order (transaction order)."
    )
    cursor: str = strawberry.field(
        description="Pass as since: to continue. It moves past changes the caller may not read "
        "too, so it never stands still on them; the same cursor again gives the same changes "
        "(and any later ones)."
    )
    has_more: bool = strawberry.field(
        description="More changes are already final after cursor: ask again at once."
    )


TYPES_ARGUMENT = strawberry.argument(description="Only these kinds (null: every kind).")
SINCE = strawberry.argument(
    description="A cursor given out by the feed or a Change (null: from the beginning for "
    "changes, from now on for a subscription). BAD_INPUT if not one of ours."
)


def readable_types(ctx: Context, types: Sequence[ChangeType] | None) -> list[str]:
    """The kinds asked for that the department may read the subject of."""
    wanted = [t.value for t in types] if types else list(outbox.TARGET)
    return [t for t in wanted if ctx.policy.can_use("Change", outbox.TARGET[t])]


async def feed(
    ctx: Context, since: str | None, types: Sequence[ChangeType] | None, first: int
) -> ChangeFeed:
    """``changes(since:, types:, first:)``: up to ``first`` final changes after ``since``,
    those the caller may read."""
    position = outbox.Position.decode(since)
    kinds = readable_types(ctx, types)

    async def run(session: Any) -> tuple[list[Any], list[outbox.Visible]]:
        events = await outbox.read_after(session, position, types=kinds, limit=first)
        return events, await outbox.visible(session, ctx.rows, events)

    if since is not None:  # a cursor from before the retained events: say so, never skip
        await ctx.read(lambda session: retention.check(session, position, since))
    events, shown = await ctx.read(run) if kinds else ([], [])
    last = outbox.position_of(events[-1]) if events else position
    return ChangeFeed(
        changes=[Change.of(v) for v in shown], cursor=last.encode(), has_more=len(events) == first
    )


def personal_paths(
    info: strawberry.Info[Context, None],
) -> list[str]:
    """Every personal field the running subscription selects, as a dotted path of field names
    (aliases ignored, fragments expanded), as the read audit names them:
    ``claimChanged.claim.beneficiary.name``."""
    raw = info._raw_info
    access = info.context.access
    found: set[str] = set()

    def walk(selections: graphql.SelectionSetNode, parent: Any, path: tuple[str, ...]) -> None:
        for node in selections.selections:
            if isinstance(node, graphql.FragmentSpreadNode):
                walk(raw.fragments[node.name.value].selection_set, parent, path)
            elif isinstance(node, graphql.InlineFragmentNode):
                walk(node.selection_set, parent, path)
            elif isinstance(node, graphql.FieldNode) and node.name.value in parent.fields:
                name = node.name.value
                here = (*path, name)
                if access.is_personal(parent.name, name):
                    found.add(".".join(here))
                target = graphql.get_named_type(parent.fields[name].type)
                if node.selection_set and isinstance(target, graphql.GraphQLObjectType):
                    walk(node.selection_set, target, here)

    walk(raw.operation.selection_set, raw.schema.subscription_type, ())
    return sorted(found)


async def _follow(
    info: strawberry.Info[Context, None], kind: ChangeType, since: str | None
) -> AsyncGenerator[Change, None]:
    ctx = info.context
    raw = info._raw_info
    document = graphql.DocumentNode(definitions=(raw.operation, *raw.fragments.values()))
    paths = personal_paths(info)
    name = raw.operation.name.value if raw.operation.name else info.field_name
    position = outbox.Position.decode(since) if since is not None else None
    if position is not None and since is not None:
        async with ctx.db.sessions() as session:
            await retention.check(session, position, since)
    async for item in outbox.follow(
        ctx,
        readable_types(ctx, [kind]),
        since=position,
        paths=paths,
        operation=f"subscription {name}",
        query=graphql.print_ast(document),
        poll_s=ctx.settings.outbox_poll_s,
    ):
        yield Change.of(item)


@strawberry.type(
    description="Changes pushed as they commit (graphql-transport-ws on /graphql; the token in "
    "connection_init's payload as Authorization: Bearer …). Each delivered batch with personal "
    "data is audited like a read."
)
class Subscription:
    @strawberry.subscription(
        description="Claims the caller may read (an insurer: those it carries) as they are "
        "settled, re-settled, reversed, recovered or acknowledged."
    )
    async def claim_changed(
        self, info: strawberry.Info[Context, None], since: Annotated[str | None, SINCE] = None
    ) -> AsyncGenerator[Change, None]:
        async for change in _follow(info, ChangeType.CLAIM_CHANGED, since):
            yield change

    @strawberry.subscription(
        description="High-cost alerts of the caller's rows as they are raised, move in their "
        "lifecycle or their figure changes."
    )
    async def alert_changed(
        self, info: strawberry.Info[Context, None], since: Annotated[str | None, SINCE] = None
    ) -> AsyncGenerator[Change, None]:
        async for change in _follow(info, ChangeType.ALERT_CHANGED, since):
            yield change

    @strawberry.subscription(
        description="Persons of the caller's rows whose identities or monitoring flags were "
        "recorded or ended."
    )
    async def identity_changed(
        self, info: strawberry.Info[Context, None], since: Annotated[str | None, SINCE] = None
    ) -> AsyncGenerator[Change, None]:
        async for change in _follow(info, ChangeType.IDENTITY_CHANGED, since):
            yield change
