"""Money (SETTLEMENT.md §2): decimal yuan, each payment rounded half up to the fen; how amounts,
ratios and unrounded figures are shown.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
ONE = Decimal("1")


def round_money(amount: Decimal) -> Decimal:
    """Round half up to the fen (0.01 yuan), as every payer's payment is (§2).

    >>> round_money(Decimal("5.005")), round_money(Decimal("130.0065")), round_money(Decimal("7"))
    (Decimal('5.01'), Decimal('130.01'), Decimal('7.00'))
    """
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def money(amount: Decimal) -> str:
    """The two-decimal string used for amounts in JSON.

    >>> money(Decimal("20480")), money(Decimal("10444.8"))
    ('20480.00', '10444.80')
    """
    return format(amount.quantize(CENT, rounding=ROUND_HALF_UP), "f")


def exact(amount: Decimal) -> str:
    """An unrounded amount: two decimals when that is exact, otherwise every digit.

    >>> exact(Decimal("142480.0000")), exact(Decimal("130.0065")), exact(Decimal("10000.0"))
    ('142480.00', '130.0065', '10000.00')
    """
    rounded = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    if amount == rounded:
        return format(rounded, "f")
    return format(amount.normalize(), "f")


def percent(ratio: Decimal) -> str:
    """A ratio shown as a percentage.

    >>> percent(Decimal("0.65")), percent(Decimal("1")), percent(Decimal("0.055"))
    ('65%', '100%', '5.5%')
    """
    shown = (ratio * 100).normalize()
    return f"{format(shown, 'f')}%"
