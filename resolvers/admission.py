"""At admission: may a hospital admit this person without a deposit (先诊疗后付费)?

The answer is yes or no, never the category that entitles (ACCESS.md, the ``hospital``
department). Which categories entitle is data of each regional policy
(``deposit_waiver`` in policies/benefits/*.yaml, with its clause or ``assumed``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import or_, select

from gateway import resident_id
from gateway.storage import models
from policies.benefits import ParameterNotInForce
from policies.errors import NoPolicyInForce
from policies.vocabulary import Category
from resolvers.context import Context


@dataclass(frozen=True)
class Waiver:
    """Whether the person is admitted without a deposit on ``on``; ``beneficiary_id`` (never
    shown) is the person found, for the read audit record (None when nobody was found)."""

    entitled: bool
    on: date
    beneficiary_id: uuid.UUID | None


async def held_on(ctx: Context, beneficiary_id: uuid.UUID, on: date) -> list[Category]:
    """The categories (identities and monitoring flags) the person holds on ``on``, as
    recorded: ``valid_from <= on <= valid_to`` (an open record holds on)."""
    held: list[Category] = []
    for model in (models.Identity, models.MonitoringFlag):
        rows = await ctx.all(
            select(model.category).where(
                model.beneficiary_id == beneficiary_id,
                model.valid_from <= on,
                or_(model.valid_to.is_(None), model.valid_to >= on),
            )
        )
        held += [Category(row) for row in rows]
    return held


async def deposit_waiver(ctx: Context, id_number: str, on: date | None) -> Waiver:
    """Is the person of ``id_number`` entitled to 先诊疗后付费 / deposit waiver on ``on``
    (default: today in China)? A person of the caller's regions who holds, on that day, a
    category the regional policy in force lists.

    ``deposit_waiver(ctx, "510402197001010013", date(2024, 5, 1))`` →
    ``Waiver(entitled=True, on=date(2024, 5, 1), beneficiary_id=…)`` for a 低保 holder in 攀枝花.
    Nobody found, no policy in force, or a policy that names nobody: ``entitled=False``, the
    same answer as for a person who holds no entitling category (the hospital learns nothing
    more than the yes/no it needs). An ID number that is not one (shape, date, check
    character) is ``BAD_INPUT`` naming ``idNumber``.
    """
    day = on or ctx.settings.today()
    number = resident_id.parse(id_number).number
    person: models.Beneficiary | None = await ctx.one_or_none(
        select(models.Beneficiary).where(
            models.Beneficiary.id_number == number, *ctx.rows.admissible()
        )
    )
    if person is None:
        return Waiver(False, day, None)
    try:
        rules = ctx.policies.in_force(person.region_code, day).deposit_waiver
        entitled = rules is not None and rules.entitles(await held_on(ctx, person.id, day), day)
    except (NoPolicyInForce, ParameterNotInForce):
        entitled = False
    return Waiver(entitled, day, person.id)
