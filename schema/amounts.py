"""What the five payers paid and what is left to the patient: one shape for every type that
reports money (a settlement, its events, a simulation, a person's year, aggregates)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import strawberry

from policies.vocabulary import PAYERS, Payer

ZERO = Decimal("0.00")


@strawberry.type
class Amounts:
    basic_insurance: Decimal = strawberry.field(description="基本医保.")
    critical_illness: Decimal = strawberry.field(description="大病保险.")
    inclusive_commercial: Decimal = strawberry.field(description="普惠型商业健康保险.")
    assistance: Decimal = strawberry.field(description="医疗救助.")
    secondary_assistance: Decimal = strawberry.field(description="倾斜救助 / 再救助.")
    out_of_pocket: Decimal = strawberry.field(description="What the patient pays.")


def amounts(payments: Mapping[Payer, Decimal], out_of_pocket: Decimal) -> dict[str, Any]:
    """Constructor arguments of :class:`Amounts` from payments by payer (missing payers: 0).

    >>> amounts({Payer.ASSISTANCE: Decimal("3864.00")}, Decimal("5656.00"))["assistance"]
    Decimal('3864.00')
    """
    return {
        **{p.field_name: payments.get(p, ZERO) for p in PAYERS},
        "out_of_pocket": out_of_pocket,
    }
