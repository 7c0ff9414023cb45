"""Short Chinese names of the vocabulary, for pages and tables (the dashboard): categories,
visit types, hospital levels, payers, alert states, the funds of the enrollment subsidy and the
fund account kinds.

>>> LABELS["category"]["MINIMUM_LIVING"], LABELS["payer"]["assistance"]
('低保对象', '医疗救助')
"""

from __future__ import annotations

from policies.funds import AccountKind
from policies.vocabulary import Category, HospitalLevel, Payer, VisitType

NONE = "NONE"
"""The value of a cell without a category or a hospital level."""

CATEGORIES: dict[str, str] = {
    Category.EXTREME_POVERTY: "特困人员",
    Category.ORPHAN: "孤儿",
    Category.MINIMUM_LIVING: "低保对象",
    Category.MARGINAL_LOW_INCOME: "低保边缘家庭成员",
    Category.ILLNESS_IMPOVERISHED: "因病致贫重病患者",
    Category.LOW_INCOME: "低收入救助对象",
    Category.TEMPORARY_ASSISTANCE_SERIOUS_ILLNESS: "临时救助大重病患者",
    Category.DOWNSIZED_1960S_WORKER: "60年代精减退职职工",
    Category.PRIORITY_ENTITLED: "重点优抚对象",
    Category.DISTRESSED_WORKER: "特困职工",
    Category.LOW_INCOME_SEVERELY_DISABLED: "低收入重度残疾人",
    Category.MONITORED: "防止返贫监测对象",
    Category.REGISTERED_POOR: "建档立卡贫困人口",
    Category.POVERTY_EXIT_SECURED: "兜底脱贫对象",
    NONE: "无救助身份",
}
VISIT_TYPES: dict[str, str] = {
    VisitType.INPATIENT: "住院",
    VisitType.OUTPATIENT_CHRONIC: "门诊慢特病",
    VisitType.OUTPATIENT_GENERAL: "普通门诊",
}
HOSPITAL_LEVELS: dict[str, str] = {
    HospitalLevel.PRIMARY: "基层 / 一级",
    HospitalLevel.SECONDARY: "二级",
    HospitalLevel.TERTIARY: "三级",
    NONE: "未注明",
}
PAYERS: dict[str, str] = {
    Payer.BASIC_INSURANCE: "基本医保",
    Payer.CRITICAL_ILLNESS: "大病保险",
    Payer.INCLUSIVE_COMMERCIAL: "普惠型商业健康保险",
    Payer.ASSISTANCE: "医疗救助",
    Payer.SECONDARY_ASSISTANCE: "倾斜救助 / 再救助",
}
ALERT_STATES: dict[str, str] = {
    "ALL": "预警人数",
    "OPEN": "待处理",
    "ACKNOWLEDGED": "已受理",
    "RECOGNISED": "已认定",
    "REJECTED": "未认定",
    "CLOSED": "已关闭",
}
FUNDS: dict[str, str] = {
    "assistanceFund": "医疗救助基金",
    "finance": "财政",
    "individual": "个人缴费",
}
ACCOUNTS: dict[str, str] = {
    AccountKind.BASIC_FUND: "基本医疗保险基金",
    AccountKind.CRITICAL_ILLNESS_INSURER: "大病保险承办机构",
    AccountKind.INCLUSIVE_COMMERCIAL_INSURER: "普惠型商业补充保险承办机构",
    AccountKind.ASSISTANCE_FUND: "医疗救助基金专账",
    AccountKind.FINANCE: "财政",
    AccountKind.HOSPITAL: "定点医疗机构",
    AccountKind.PERSON: "个人 (事后救助应付 / 追回应收)",
}
"""The fund account kinds (policies/funds/postings.yaml), for the dashboard's fund balances."""
LABELS: dict[str, dict[str, str]] = {
    "category": CATEGORIES,
    "visit_type": VISIT_TYPES,
    "hospital_level": HOSPITAL_LEVELS,
    "payer": PAYERS,
    "alert": ALERT_STATES,
    "fund": FUNDS,
    "account": ACCOUNTS,
}
"""Labels by dimension (the dimension names of resolvers/cube.py)."""


def label(dimension: str, value: str) -> str:
    """The Chinese name of ``value`` in ``dimension``, else the value itself (a month, a region).

    >>> label("visit_type", "INPATIENT"), label("month", "03")
    ('住院', '03')
    """
    return LABELS.get(dimension, {}).get(value, value)
