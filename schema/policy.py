"""The bundled benefit policies, as they are in force."""

from __future__ import annotations

from datetime import date

import strawberry

from policies.benefits import Policy
from schema.enums import Category


@strawberry.type(description="A regional benefit policy (policies/benefits/*.yaml).")
class BenefitPolicy:
    id: str
    name: str
    region_prefix: str
    effective_from: date
    effective_to: date | None
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
