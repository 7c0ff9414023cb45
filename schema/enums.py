"""GraphQL enums: the domain vocabulary of ``policies.vocabulary``, exposed as is.

``strawberry.enum`` registers the classes in place, so the schema and the engine share one type;
:func:`described` adds the descriptions of the type and of every value (the Chinese term and the
clause, SETTLEMENT.md §1) without changing a Python value or a GraphQL name.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

import strawberry
from strawberry.types.enum import StrawberryEnumDefinition

from policies.vocabulary import Category, HospitalLevel, VisitType

E = TypeVar("E", bound=StrEnum)


def described(cls: type[E], description: str, values: Mapping[E, str]) -> type[E]:
    """Register ``cls`` as a GraphQL enum with ``description`` and one description per value.

    :raises ValueError: when ``values`` does not describe every member of ``cls`` exactly once.
    """
    if set(values) != set(cls):
        raise ValueError(f"{cls.__name__}: describe every value ({set(cls) ^ set(values)})")
    strawberry.enum(cls, description=description)
    definition: StrawberryEnumDefinition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    for value in definition.values:
        value.description = values[cls(value.value)]
    return cls


described(
    Category,
    "An assistance category (身份, an identity recognised by a department) or a poverty-"
    "monitoring flag kept by rural revitalisation (SETTLEMENT.md §1). Which ones a region "
    "assists, and in what priority (待遇就高), its benefit policy says.",
    {
        Category.EXTREME_POVERTY: "特困人员 / 特困供养人员: persons in extreme poverty "
        "(civil affairs, 民政).",
        Category.ORPHAN: "孤儿 (享受政府基本生活保障): orphans receiving the government's basic "
        "living allowance (civil affairs).",
        Category.MINIMUM_LIVING: "低保对象 / 最低生活保障家庭成员: members of minimum-living-"
        "guarantee households (civil affairs).",
        Category.MARGINAL_LOW_INCOME: "低保边缘家庭成员: members of households just above the "
        "低保 line (civil affairs).",
        Category.ILLNESS_IMPOVERISHED: "因病致贫重病患者: seriously ill persons impoverished by "
        "medical costs (civil affairs).",
        Category.LOW_INCOME: "低收入医疗救助对象: medical-assistance recipients of low-income "
        "families; in Jiangsu the elderly, minors, severely disabled and seriously ill of such "
        "families (civil affairs; 苏政办发 二(二)).",
        Category.TEMPORARY_ASSISTANCE_SERIOUS_ILLNESS: "临时救助对象中的大重病患者: seriously ill "
        "recipients of temporary assistance (civil affairs; 苏政办发 二(一)).",
        Category.DOWNSIZED_1960S_WORKER: "20世纪60年代精减退职职工: workers downsized in the 1960s "
        "who receive the civil-affairs regular living allowance (civil affairs; 苏政办发 二(一), "
        "end-of-month grace 二(三)).",
        Category.PRIORITY_ENTITLED: "重点优抚对象: key entitled groups of veterans and their "
        "families (veterans affairs; 苏政办发 二(一)).",
        Category.DISTRESSED_WORKER: "特困职工 (总工会核定): workers in extreme hardship as "
        "certified by the trade union (trade union; 苏政办发 二(一)).",
        Category.LOW_INCOME_SEVERELY_DISABLED: "低收入重度残疾人 / 贫困残疾人: severely disabled "
        "persons of low income (disabled persons' federation).",
        Category.MONITORED: "防止返贫监测对象: persons monitored to prevent a return to poverty "
        "(a flag of rural revitalisation, 乡村振兴).",
        Category.REGISTERED_POOR: "建档立卡贫困人口: the registered poor (a flag of rural "
        "revitalisation, formerly 扶贫办).",
        Category.POVERTY_EXIT_SECURED: "社会保障兜底脱贫对象: persons lifted out of poverty by the "
        "social-security safety net (a flag of rural revitalisation).",
    },
)
described(
    VisitType,
    "The kind of visit (SETTLEMENT.md §1): 住院, 门诊慢特病 or 普通门诊.",
    {
        VisitType.INPATIENT: "住院: a hospital stay, from admission to discharge.",
        VisitType.OUTPATIENT_CHRONIC: "门诊慢特病: outpatient treatment of a chronic or special "
        "disease (shares the basic yearly cap with stays).",
        VisitType.OUTPATIENT_GENERAL: "普通门诊: general outpatient visit (its own ledgers and "
        "caps).",
    },
)
described(
    HospitalLevel,
    "Hospital grade (医院等级): sets the basic inpatient deductible and ratio (SETTLEMENT.md §6).",
    {
        HospitalLevel.PRIMARY: "基层 / 一级: primary (township, community) hospital.",
        HospitalLevel.SECONDARY: "二级: secondary hospital.",
        HospitalLevel.TERTIARY: "三级: tertiary hospital.",
    },
)


class Gender(StrEnum):
    MALE = "MALE"
    FEMALE = "FEMALE"


described(
    Gender,
    "As recorded; the ID number's 17th digit must agree.",
    {
        Gender.MALE: "男: male (odd 17th digit of the ID number).",
        Gender.FEMALE: "女: female (even 17th digit of the ID number).",
    },
)


class BasicScheme(StrEnum):
    RESIDENT = "RESIDENT"
    EMPLOYEE = "EMPLOYEE"


described(
    BasicScheme,
    "The basic medical insurance scheme of an enrollment.",
    {
        BasicScheme.RESIDENT: "城乡居民基本医疗保险: basic payments computed from the policy "
        "files.",
        BasicScheme.EMPLOYEE: "职工基本医疗保险: basic payments reported by the core system "
        "(reported.basicInsurance).",
    },
)


__all__ = ["BasicScheme", "Category", "Gender", "HospitalLevel", "VisitType", "described"]
