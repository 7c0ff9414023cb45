"""The shared vocabulary of the domain (SETTLEMENT.md §1): categories, visit types, payers.

These enums are plain Python so that the pure engine, the ORM and the GraphQL schema all
speak the same words; the schema wraps them with ``strawberry.enum``.
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """Who a person is for assistance purposes, and which body recognises it."""

    EXTREME_POVERTY = "EXTREME_POVERTY"
    ORPHAN = "ORPHAN"
    MINIMUM_LIVING = "MINIMUM_LIVING"
    MARGINAL_LOW_INCOME = "MARGINAL_LOW_INCOME"
    ILLNESS_IMPOVERISHED = "ILLNESS_IMPOVERISHED"
    LOW_INCOME = "LOW_INCOME"
    TEMPORARY_ASSISTANCE_SERIOUS_ILLNESS = "TEMPORARY_ASSISTANCE_SERIOUS_ILLNESS"
    DOWNSIZED_1960S_WORKER = "DOWNSIZED_1960S_WORKER"
    PRIORITY_ENTITLED = "PRIORITY_ENTITLED"
    DISTRESSED_WORKER = "DISTRESSED_WORKER"
    LOW_INCOME_SEVERELY_DISABLED = "LOW_INCOME_SEVERELY_DISABLED"
    MONITORED = "MONITORED"
    REGISTERED_POOR = "REGISTERED_POOR"
    POVERTY_EXIT_SECURED = "POVERTY_EXIT_SECURED"

    @property
    def is_monitoring_flag(self) -> bool:
        """Flags kept by rural revitalisation rather than identities recognised by civil affairs.

        >>> Category.MONITORED.is_monitoring_flag, Category.ORPHAN.is_monitoring_flag
        (True, False)
        """
        return self in MONITORING_FLAGS


MONITORING_FLAGS: frozenset[Category] = frozenset(
    {Category.MONITORED, Category.REGISTERED_POOR, Category.POVERTY_EXIT_SECURED}
)
IDENTITY_CATEGORIES: frozenset[Category] = frozenset(Category) - MONITORING_FLAGS


class VisitType(StrEnum):
    INPATIENT = "INPATIENT"
    OUTPATIENT_CHRONIC = "OUTPATIENT_CHRONIC"
    OUTPATIENT_GENERAL = "OUTPATIENT_GENERAL"


class HospitalLevel(StrEnum):
    PRIMARY = "PRIMARY"
    SECONDARY = "SECONDARY"
    TERTIARY = "TERTIARY"


class Payer(StrEnum):
    """The five payers, in the order they pay (保险在先、救助在后)."""

    BASIC_INSURANCE = "basicInsurance"
    CRITICAL_ILLNESS = "criticalIllness"
    INCLUSIVE_COMMERCIAL = "inclusiveCommercial"
    ASSISTANCE = "assistance"
    SECONDARY_ASSISTANCE = "secondaryAssistance"

    @property
    def field_name(self) -> str:
        """The snake_case name of the payer's Python fields and table columns: the one
        payer → column mapping.

        >>> Payer.SECONDARY_ASSISTANCE.field_name, Payer.ASSISTANCE.field_name
        ('secondary_assistance', 'assistance')
        """
        return _FIELD_NAMES[self]


_FIELD_NAMES: dict[Payer, str] = {
    payer: "".join(f"_{c.lower()}" if c.isupper() else c for c in payer.value) for payer in Payer
}
""":attr:`Payer.field_name` of each payer, computed once (the engine asks thousands of times)."""

PAYERS: tuple[Payer, ...] = tuple(Payer)
