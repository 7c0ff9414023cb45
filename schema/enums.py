"""GraphQL enums: the domain vocabulary of ``policies.vocabulary``, exposed as is.

``strawberry.enum`` registers the classes in place, so the schema and the engine share one type.
"""

from __future__ import annotations

from enum import StrEnum

import strawberry

from policies.vocabulary import Category, HospitalLevel, VisitType

strawberry.enum(
    Category,
    description="An assistance category (identity) or a monitoring flag (SETTLEMENT.md §1).",
)
strawberry.enum(VisitType, description="住院, 门诊慢特病 or 普通门诊.")
strawberry.enum(HospitalLevel, description="Hospital grade.")


@strawberry.enum(description="As recorded; the ID number's 17th digit must agree.")
class Gender(StrEnum):
    MALE = "MALE"
    FEMALE = "FEMALE"


@strawberry.enum(description="The basic medical insurance scheme of an enrollment.")
class BasicScheme(StrEnum):
    RESIDENT = "RESIDENT"
    """城乡居民基本医疗保险: basic payments computed from the policy files."""
    EMPLOYEE = "EMPLOYEE"
    """职工基本医疗保险: basic payments reported by the core system (reported.basicInsurance)."""


__all__ = ["BasicScheme", "Category", "Gender", "HospitalLevel", "VisitType"]
