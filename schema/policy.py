"""The bundled benefit policies, as they are in force."""

from __future__ import annotations

from datetime import date

import strawberry

from policies.benefits import Policy
from schema.enums import Category


@strawberry.type(description="A regional benefit policy (policies/benefits/*.yaml).")
class BenefitPolicy:
    id: str = strawberry.field(description="Region code and year, e.g. 510400-2023.")
    name: str = strawberry.field(description="The policy document's title.")
    region_prefix: str = strawberry.field(
        description="The region codes it covers start with this (510400 → 5104; §3)."
    )
    effective_from: date = strawberry.field(description="First day in force (admission dates).")
    effective_to: date | None = strawberry.field(description="Last day in force (null: open).")
    source: str = strawberry.field(description="The policy document it comes from.")
    categories: list[Category] = strawberry.field(
        description="The categories it assists, highest benefit first (待遇就高)."
    )

    @classmethod
    def of(cls, policy: Policy) -> BenefitPolicy:
        return cls(
            id=policy.id,
            name=policy.title,
            region_prefix=policy.region_prefix,
            effective_from=policy.effective_from,
            effective_to=policy.effective_to,
            source=policy.source,
            categories=[Category(c) for c in policy.categories.priority.latest.value],
        )
