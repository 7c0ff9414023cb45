"""The pure settlement engine: one test per rule of SETTLEMENT.md §3–§5, and the explanation."""

from __future__ import annotations

import doctest
import json
from datetime import date
from decimal import Decimal
from types import ModuleType

import pytest

import policies.benefits
import policies.money
import policies.settlement.cases
import policies.settlement.categories
import policies.settlement.engine
import policies.settlement.ledger
import policies.settlement.payers
import policies.settlement.schedule
import policies.settlement.subsidy
from policies.errors import InvalidInput, NoPolicyInForce
from policies.settlement.engine import (
    CategoryRecord,
    Ledger,
    Person,
    Visit,
    VisitSettlement,
    settle_visit,
    settle_visits,
    tilt_applies,
)
from policies.settlement.explanation import CountingRule, PayerLine
from policies.settlement.ledger import Stage
from policies.vocabulary import PAYERS, Category, HospitalLevel, Payer, VisitType
from tests.policies.shorthand import (
    CHRONIC,
    GENERAL,
    INPATIENT,
    POLICIES,
    PRIMARY,
    SECONDARY,
    TERTIARY,
)


def rec(category: Category, start: date, end: date | None = None) -> CategoryRecord:
    return CategoryRecord(category, start, end)


def person(
    region: str = "510402",
    *records: CategoryRecord,
    insured: bool = True,
    commercial: bool = False,
    born: date = date(1970, 1, 1),
) -> Person:
    return Person(region, born, insured, commercial, tuple(records))


def visit(
    visit_id: str = "v1",
    admitted: date = date(2023, 3, 1),
    discharged: date | None = None,
    total: str = "30000.00",
    scope: str | None = None,
    level: HospitalLevel | None = SECONDARY,
    kind: VisitType = INPATIENT,
    *,
    referral: bool = True,
    in_province: bool = True,
    diagnosis: str | None = None,
    special: bool = False,
) -> Visit:
    return Visit(
        visit_id,
        kind,
        level,
        admitted,
        discharged or admitted,
        Decimal(total),
        Decimal(scope if scope is not None else total),
        referral,
        in_province,
        diagnosis,
        special,
    )


def settle(who: Person, *visits: Visit) -> list[VisitSettlement]:
    return settle_visits(POLICIES, who, list(visits))


def amounts(settlement: VisitSettlement) -> list[str]:
    """The five payments then out-of-pocket, as strings."""
    return [str(settlement.payments[p]) for p in PAYERS] + [str(settlement.out_of_pocket)]


def line(settlement: VisitSettlement, payer: Payer) -> PayerLine:
    return settlement.explanation.line(payer)


def references(settlement: VisitSettlement, payer: Payer) -> dict[str, str]:
    return {p.name: p.reference for p in line(settlement, payer).parameters}


MINIMUM_LIVING_2021 = rec(Category.MINIMUM_LIVING, date(2021, 6, 1))


# -- basic insurance ---------------------------------------------------------------------------


def test_basic_inpatient_pays_its_ratio_above_the_level_deductible() -> None:
    [s] = settle(person("510402", MINIMUM_LIVING_2021), visit(scope="26000.00"))
    assert amounts(s) == ["20480.00", "0.00", "0.00", "3864.00", "0.00", "5656.00"]
    basic = line(s, Payer.BASIC_INSURANCE)
    assert (basic.method, basic.deductible, basic.year_to_date_base_before) == (
        "perStay",
        Decimal("400"),
        None,
    )
    assert [seg.ratio for seg in basic.segments] == [Decimal("0.80")]


def test_hunan_registered_poor_gets_ten_more_points_of_basic_inpatient_ratio() -> None:
    who = person("430102", rec(Category.REGISTERED_POOR, date(2016, 1, 1)))
    [s] = settle(who, visit(admitted=date(2017, 9, 1), total="80000.00", level=TERTIARY))
    assert s.payments[Payer.BASIC_INSURANCE] == Decimal("51350.00")  # 65% × (80000 − 1000)
    basic = line(s, Payer.BASIC_INSURANCE)
    assert basic.segments[0].ratio == Decimal("0.65")
    assert references(s, Payer.BASIC_INSURANCE)["basic.inpatient.tilt.ratio_bonus"] == (
        "湘人社发〔2017〕51号 二"
    )
    assert s.preferential_treatment


def test_hunan_minimum_living_gets_the_critical_illness_tilt_but_not_the_basic_one() -> None:
    who = person("430102", rec(Category.MINIMUM_LIVING, date(2016, 1, 1)))
    [s] = settle(who, visit(admitted=date(2017, 9, 1), total="80000.00", level=TERTIARY))
    assert s.payments[Payer.BASIC_INSURANCE] == Decimal("43450.00")  # 55% × 79000
    ci = line(s, Payer.CRITICAL_ILLNESS)
    assert ci.deductible == Decimal("7500")  # 15000 × 0.5, no ratio bonus
    assert s.payments[Payer.CRITICAL_ILLNESS] == Decimal("14525.00")  # 50% × (36550 − 7500)


def test_basic_yearly_cap_is_reached_mid_visit() -> None:
    first, second = settle(
        person("510402"),
        visit("v1", total="400000.00", level=TERTIARY),
        visit("v2", admitted=date(2023, 6, 1), total="10000.00", level=TERTIARY),
    )
    basic = line(first, Payer.BASIC_INSURANCE)
    assert basic.amount_before_cap == Decimal("259480.00")  # 65% × (400000 − 800)
    assert (basic.cap, basic.cap_room_before, basic.paid) == (
        Decimal("200000"),
        Decimal("200000"),
        Decimal("200000.00"),
    )
    assert first.payments[Payer.CRITICAL_ILLNESS] == Decimal("118000.00")  # 48000 + 70000
    assert second.payments[Payer.BASIC_INSURANCE] == Decimal("0.00")
    assert line(second, Payer.BASIC_INSURANCE).cap_room_before == Decimal("0")
    assert second.payments[Payer.CRITICAL_ILLNESS] == Decimal("7000.00")  # 70% above 100000


def test_chronic_visits_share_the_basic_cap_with_inpatient_stays() -> None:
    stay, chronic, general = settle(
        person("510402"),
        visit("v1", total="307000.00", level=TERTIARY),
        visit("c1", admitted=date(2023, 5, 1), total="5000.00", level=None, kind=CHRONIC),
        visit("g1", admitted=date(2023, 5, 2), total="100.00", level=None, kind=GENERAL),
    )
    assert stay.payments[Payer.BASIC_INSURANCE] == Decimal("199030.00")  # room left: 970
    chronic_line = line(chronic, Payer.BASIC_INSURANCE)
    assert chronic_line.amount_before_cap == Decimal("3055.00")  # 65% × (5000 − 300)
    assert chronic_line.cap_shared_with == ("basic.inpatient",)
    assert chronic.payments[Payer.BASIC_INSURANCE] == Decimal("970.00")
    assert general.payments[Payer.BASIC_INSURANCE] == Decimal("50.00")  # own cap of 400


def test_chronic_deductible_is_annual() -> None:
    c1, c2 = settle(
        person("510402"),
        visit("c1", admitted=date(2023, 2, 1), total="200.00", level=None, kind=CHRONIC),
        visit("c2", admitted=date(2023, 3, 1), total="200.00", level=None, kind=CHRONIC),
    )
    assert c1.payments[Payer.BASIC_INSURANCE] == Decimal("0.00")
    assert c2.payments[Payer.BASIC_INSURANCE] == Decimal("65.00")  # 65% × (400 − 300)
    assert line(c2, Payer.BASIC_INSURANCE).year_to_date_base_before == Decimal("200.00")


# -- critical illness and commercial -----------------------------------------------------------


def test_critical_illness_tilt_halves_the_deductible_and_adds_five_points() -> None:
    who = person("510411", rec(Category.EXTREME_POVERTY, date(2020, 1, 1)))
    [s] = settle(
        who, visit(admitted=date(2023, 5, 2), total="250000.00", scope="220000.00", level=TERTIARY)
    )
    assert amounts(s) == ["142480.00", "43888.00", "0.00", "33632.00", "0.00", "30000.00"]
    ci = line(s, Payer.CRITICAL_ILLNESS)
    assert ci.deductible == Decimal("10000")
    assert [seg.ratio for seg in ci.segments] == [Decimal("0.65"), Decimal("0.75")]
    refs = references(s, Payer.CRITICAL_ILLNESS)
    assert refs["critical_illness.tilt.deductible_factor"] == "攀枝花 第八条"
    assert refs["critical_illness.tilt.ratio_bonus"] == "攀枝花 第八条"
    assert refs["critical_illness.deductible"] == "assumed"
    assert any("攀枝花 第八条" in note for note in ci.notes)
    text = s.explanation.render_text()
    assert "deductible 10000.00; 65% up to 100000.00, 75% above" in text
    assert "critical_illness.tilt.ratio_bonus = + 5 percentage points [攀枝花 第八条]" in text


def test_monitored_person_gets_no_critical_illness_tilt() -> None:
    who = person("510402", rec(Category.MONITORED, date(2022, 1, 1)))
    [s] = settle(who, visit(total="100000.00", level=TERTIARY))
    assert line(s, Payer.CRITICAL_ILLNESS).deductible == Decimal("20000")
    assert s.payments[Payer.CRITICAL_ILLNESS] == Decimal("9312.00")  # 60% × (35520 − 20000)
    assert not s.preferential_treatment


def test_critical_illness_segments_split_a_visit_crossing_a_bound() -> None:
    [s] = settle(person("510402"), visit(total="300000.00", level=TERTIARY))
    ci = line(s, Payer.CRITICAL_ILLNESS)
    assert ci.base == Decimal("105520.00")
    assert [(p.lower, p.upper, p.ratio, p.amount) for p in ci.portions] == [
        (Decimal("20000"), Decimal("100000"), Decimal("0.60"), Decimal("48000.00")),
        (Decimal("100000"), Decimal("105520.00"), Decimal("0.70"), Decimal("3864.000")),
    ]
    assert ci.paid == Decimal("51864.00")


def test_inclusive_commercial_pays_after_critical_illness_and_before_assistance() -> None:
    who = person("510402", rec(Category.MONITORED, date(2022, 1, 1)), commercial=True)
    [s] = settle(who, visit(total="200000.00", scope="180000.00", level=TERTIARY))
    assert amounts(s) == [
        "116480.00",
        "26112.00",
        "10444.80",
        "16161.08",
        "1651.06",
        "29151.06",
    ]
    assert line(s, Payer.INCLUSIVE_COMMERCIAL).base == Decimal("37408.00")
    assert line(s, Payer.ASSISTANCE).base == Decimal("26963.20")


def test_commercial_needs_enrollment_and_a_plan() -> None:
    [not_enrolled] = settle(person("510402"), visit(total="200000.00", level=TERTIARY))
    assert "not enrolled" in line(not_enrolled, Payer.INCLUSIVE_COMMERCIAL).reason
    [no_plan] = settle(
        person("370811", commercial=True), visit(admitted=date(2021, 4, 1), total="200000.00")
    )
    commercial = line(no_plan, Payer.INCLUSIVE_COMMERCIAL)
    assert not commercial.applied
    assert "no inclusive commercial plan" in commercial.reason


# -- assistance --------------------------------------------------------------------------------


def test_second_stay_consumes_the_rest_of_the_monitoring_deductible() -> None:
    who = person("510421", rec(Category.MONITORED, date(2022, 9, 1)))
    first, second = settle(
        who,
        visit("v1", total="5000.00", scope="4500.00", level=PRIMARY),
        visit("v2", admitted=date(2023, 4, 1), total="20000.00", scope="18000.00"),
    )
    assert first.payments[Payer.ASSISTANCE] == Decimal("0.00")
    assert second.payments[Payer.ASSISTANCE] == Decimal("1534.00")  # 65% × (4460 − 2100)
    assistance = line(second, Payer.ASSISTANCE)
    assert (assistance.deductible, assistance.year_to_date_base_before) == (
        Decimal("2100.00"),
        Decimal("540.00"),
    )
    used = {p.name: (p.value, p.reference) for p in assistance.parameters}
    assert used["pcdi.2022"] == ("42000", "assumed")
    assert used["assistance.schedules.MONITORED.deductible"] == (
        "5% of PCDI 2022 = 2100.00",
        "攀枝花 第十二条(一)",
    )


def test_assistance_ledger_is_shared_across_categories_within_the_year() -> None:
    who = person(
        "320102",
        rec(Category.LOW_INCOME, date(2016, 1, 1)),
        rec(Category.MINIMUM_LIVING, date(2015, 6, 1), date(2016, 5, 10)),
    )
    first, second = settle(
        who,
        visit("v1", date(2016, 5, 20), date(2016, 5, 28), "20000.00", "18000.00"),
        visit("v2", date(2016, 6, 3), date(2016, 7, 20), "150000.00", "140000.00", TERTIARY),
    )
    assert first.payments[Payer.ASSISTANCE] == Decimal("3465.00")
    assistance = line(second, Payer.ASSISTANCE)
    assert second.category is Category.LOW_INCOME
    assert assistance.year_to_date_base_before == Decimal("4950.00")
    assert assistance.cap_room_before == Decimal("46535.00")  # 50000 − 3465
    assert assistance.paid == Decimal("16610.50")


def test_assistance_cap_limits_the_payment_and_reassistance_takes_the_rest() -> None:
    who = person("370811", rec(Category.MINIMUM_LIVING, date(2020, 1, 1)))
    [s] = settle(
        who, visit(admitted=date(2021, 4, 1), total="120000.00", scope="100000.00", level=TERTIARY)
    )
    assert amounts(s) == ["59400.00", "15360.00", "0.00", "10000.00", "7168.00", "28072.00"]
    assistance = line(s, Payer.ASSISTANCE)
    assert assistance.amount_before_cap == Decimal("17668.00")
    assert references(s, Payer.SECONDARY_ASSISTANCE)["secondary_assistance.threshold"] == (
        "鲁医保发〔2020〕79号 二(三)"
    )


def test_secondary_assistance_threshold_is_cumulative() -> None:
    who = person("510402", rec(Category.MARGINAL_LOW_INCOME, date(2022, 1, 1)))
    settlements = settle(
        who,
        visit("v1", date(2023, 2, 10), None, "40000.00", "36000.00", TERTIARY),
        visit("v2", date(2023, 5, 10), None, "30000.00", "28000.00", TERTIARY),
        visit("v3", date(2023, 9, 1), None, "25000.00", "24000.00", TERTIARY),
    )
    assert [str(s.payments[Payer.SECONDARY_ASSISTANCE]) for s in settlements] == [
        "580.00",
        "2064.00",
        "892.00",
    ]
    assert line(settlements[2], Payer.SECONDARY_ASSISTANCE).year_to_date_base_before == Decimal(
        "12788.00"
    )


def test_general_outpatient_assistance_has_its_own_yearly_cap() -> None:
    who = person("510402", rec(Category.MINIMUM_LIVING, date(2020, 1, 1)))
    visits = [
        visit(f"g{i}", date(2023, 2 + i, 15), None, "900.00", "800.00", None, GENERAL)
        for i in range(3)
    ]
    settlements = settle(who, *visits)
    assert [str(s.payments[Payer.BASIC_INSURANCE]) for s in settlements] == [
        "400.00",
        "0.00",
        "0.00",
    ]
    assert [str(s.payments[Payer.ASSISTANCE]) for s in settlements] == ["280.00", "520.00", "0.00"]
    second = line(settlements[1], Payer.ASSISTANCE)
    assert (second.stage, second.cap, second.cap_room_before) == (
        "assistance.generalOutpatient",
        Decimal("800"),
        Decimal("520.00"),
    )
    assert references(settlements[1], Payer.ASSISTANCE)[
        "assistance.general_outpatient.MINIMUM_LIVING.yearly_cap"
    ] == ("攀枝花 第十条")


def test_general_outpatient_and_main_assistance_ledgers_do_not_mix() -> None:
    who = person("510402", rec(Category.MINIMUM_LIVING, date(2020, 1, 1)))
    ledger = Ledger.empty(2023)
    general = visit("g1", date(2023, 2, 15), None, "900.00", "800.00", None, GENERAL)
    first, ledger = settle_visit(POLICIES, who, general, ledger)
    second, ledger = settle_visit(POLICIES, who, visit("v1", scope="26000.00"), ledger)
    assert first.payments[Payer.ASSISTANCE] == Decimal("280.00")
    assert second.payments[Payer.ASSISTANCE] == Decimal("3864.00")
    assert ledger.totals(Stage.ASSISTANCE_GENERAL).paid == Decimal("280.00")
    assert ledger.totals(Stage.ASSISTANCE).paid == Decimal("3864.00")
    assert ledger.paid_by_payer[Payer.ASSISTANCE] == Decimal("4144.00")


def test_general_outpatient_assistance_only_for_listed_categories() -> None:
    who = person("510402", rec(Category.MONITORED, date(2022, 1, 1)))
    [s] = settle(who, visit(total="10.01", level=None, kind=GENERAL))
    assert amounts(s) == ["5.01", "0.00", "0.00", "0.00", "0.00", "5.00"]
    assistance = line(s, Payer.ASSISTANCE)
    assert not assistance.applied
    assert "not listed for general outpatient" in assistance.reason


def test_jining_assists_inpatient_stays_only() -> None:
    who = person("370811", rec(Category.MINIMUM_LIVING, date(2020, 1, 1)))
    [s] = settle(who, visit(admitted=date(2021, 4, 1), total="5000.00", level=None, kind=CHRONIC))
    assert amounts(s) == ["3000.00", "0.00", "0.00", "0.00", "0.00", "2000.00"]
    assert "济医保发〔2020〕28号 一" in line(s, Payer.ASSISTANCE).reason
    assert not line(s, Payer.SECONDARY_ASSISTANCE).applied


def test_hunan_defines_no_assistance() -> None:
    who = person("430102", rec(Category.EXTREME_POVERTY, date(2016, 1, 1)))
    [s] = settle(who, visit(admitted=date(2017, 9, 1)))
    assert s.payments[Payer.ASSISTANCE] == Decimal("0.00")
    assert "defines no medical assistance" in line(s, Payer.ASSISTANCE).reason


# -- conditions --------------------------------------------------------------------------------


def test_non_compliant_referral_gets_no_assistance_in_panzhihua() -> None:
    who = person("510402", rec(Category.MINIMUM_LIVING, date(2020, 1, 1)))
    [s] = settle(who, visit(total="12000.00", scope="11000.00", referral=False))
    assert amounts(s) == ["8480.00", "0.00", "0.00", "0.00", "0.00", "3520.00"]
    assert (
        line(s, Payer.ASSISTANCE).reason == "referral not compliant (未按规定转诊, 攀枝花 第十七条)"
    )
    assert "referral not compliant" in line(s, Payer.SECONDARY_ASSISTANCE).reason


def test_jining_assists_without_a_referral_condition() -> None:
    who = person("370811", rec(Category.MINIMUM_LIVING, date(2020, 1, 1)))
    stay = visit(
        admitted=date(2021, 4, 1),
        total="120000.00",
        scope="100000.00",
        level=TERTIARY,
        referral=False,
    )
    [s] = settle(who, stay)
    assert (s.payments[Payer.ASSISTANCE], s.payments[Payer.SECONDARY_ASSISTANCE]) == (
        Decimal("10000.00"),
        Decimal("7168.00"),
    )


def test_treatment_outside_the_province_loses_only_the_tilted_secondary_assistance() -> None:
    who = person("510402", rec(Category.ILLNESS_IMPOVERISHED, date(2022, 6, 1)))
    stay = visit(total="180000.00", scope="160000.00", level=TERTIARY, in_province=False)
    [s] = settle(who, stay)
    assert s.payments[Payer.ASSISTANCE] == Decimal("12054.00")
    assert s.payments[Payer.SECONDARY_ASSISTANCE] == Decimal("0.00")
    assert line(s, Payer.SECONDARY_ASSISTANCE).reason == (
        "treated outside the province (攀枝花 第十三条)"
    )


def test_uninsured_key_object_is_assisted_on_the_whole_policy_scope_cost() -> None:
    who = person(
        "320102", rec(Category.ORPHAN, date(2010, 1, 1)), insured=False, born=date(2008, 1, 1)
    )
    [s] = settle(who, visit(admitted=date(2016, 3, 1), total="10000.00", scope="9000.00"))
    assert amounts(s) == ["0.00", "0.00", "0.00", "6300.00", "0.00", "3700.00"]
    for payer in (Payer.BASIC_INSURANCE, Payer.CRITICAL_ILLNESS, Payer.INCLUSIVE_COMMERCIAL):
        assert line(s, payer).reason.startswith("not insured")
    assert line(s, Payer.ASSISTANCE).base == Decimal("9000.00")


def test_uninsured_person_without_category_gets_nothing() -> None:
    [s] = settle(person("510402", insured=False), visit(total="30000.00", scope="26000.00"))
    assert amounts(s) == ["0.00", "0.00", "0.00", "0.00", "0.00", "30000.00"]
    assert s.category is None


# -- Hunan special diseases --------------------------------------------------------------------


def hunan_child(born: date, diagnosis: str = "C91.0", special: bool = True) -> VisitSettlement:
    who = person("430521", rec(Category.MINIMUM_LIVING, date(2000, 1, 1)), born=born)
    stay = visit(
        admitted=date(2017, 9, 1),
        total="60000.00",
        scope="55000.00",
        level=TERTIARY,
        diagnosis=diagnosis,
        special=special,
    )
    [s] = settle(who, stay)
    return s


def test_hunan_special_disease_waives_the_basic_deductible() -> None:
    who = person("430102", rec(Category.REGISTERED_POOR, date(2016, 1, 1)), born=date(1961, 2, 2))
    stay = visit(
        admitted=date(2017, 9, 1),
        total="90000.00",
        scope="80000.00",
        level=TERTIARY,
        diagnosis="C16.2",
        special=True,
    )
    [s] = settle(who, stay)
    # v2: no +10 points on a special-disease stay (湘人社发 二 "（指按项目付费）").
    assert amounts(s) == ["44000.00", "14250.00", "0.00", "0.00", "0.00", "31750.00"]
    basic = line(s, Payer.BASIC_INSURANCE)
    assert basic.deductible == Decimal("0")
    assert any("C16.2" in note and "湘人社发〔2017〕51号 三" in note for note in basic.notes)


def test_child_aged_fourteen_on_admission_gets_the_childrens_special_disease_waiver() -> None:
    turns_15_next_day = hunan_child(born=date(2002, 9, 2))
    assert turns_15_next_day.payments[Payer.BASIC_INSURANCE] == Decimal("30250.00")  # 55% × 55000
    basic = line(turns_15_next_day, Payer.BASIC_INSURANCE)
    assert any("a child aged 14 on admission (≤ 14)" in note for note in basic.notes)
    assert "basic.inpatient.special_diseases.child_max_age" in references(
        turns_15_next_day, Payer.BASIC_INSURANCE
    )


def test_child_aged_fifteen_on_admission_pays_the_basic_deductible() -> None:
    fifteenth_birthday = hunan_child(born=date(2002, 9, 1))
    assert fifteenth_birthday.payments[Payer.BASIC_INSURANCE] == Decimal("29700.00")  # 55% × 54000
    notes = line(fifteenth_birthday, Payer.BASIC_INSURANCE).notes
    assert any("the patient is 15 on admission" in note for note in notes)


def test_special_disease_needs_a_designated_hospital() -> None:
    s = hunan_child(born=date(2007, 6, 15), special=False)
    assert s.payments[Payer.BASIC_INSURANCE] == Decimal("29700.00")


def test_adult_special_diseases_apply_at_any_age() -> None:
    s = hunan_child(born=date(1950, 1, 1), diagnosis="N18.5")
    assert s.payments[Payer.BASIC_INSURANCE] == Decimal("30250.00")


def test_special_disease_needs_a_listed_category() -> None:
    stay = visit(
        admitted=date(2017, 9, 1), total="80000.00", level=TERTIARY, diagnosis="C16", special=True
    )
    [s] = settle(person("430102"), stay)
    assert s.payments[Payer.BASIC_INSURANCE] == Decimal("43450.00")  # 55% × (80000 − 1000)


# -- category choice ---------------------------------------------------------------------------


def test_identity_lost_during_the_month_counts_until_month_end_in_jiangsu() -> None:
    who = person("320102", rec(Category.MINIMUM_LIVING, date(2015, 6, 1), date(2016, 5, 10)))
    [s] = settle(who, visit(admitted=date(2016, 5, 20), discharged=date(2016, 5, 28)))
    assert s.category is Category.MINIMUM_LIVING
    [record] = s.explanation.category.records
    assert record.rules == (CountingRule.END_OF_MONTH_GRACE,)
    assert "2016-05-31" in record.reason


def test_end_of_month_grace_applies_only_to_the_six_listed_categories() -> None:
    who = person("320102", rec(Category.LOW_INCOME, date(2015, 6, 1), date(2016, 5, 10)))
    [s] = settle(who, visit(admitted=date(2016, 5, 20), discharged=date(2016, 5, 28)))
    assert s.category is None
    assert s.payments[Payer.ASSISTANCE] == Decimal("0.00")


def test_panzhihua_gives_no_end_of_month_grace() -> None:
    who = person("510402", rec(Category.MINIMUM_LIVING, date(2021, 6, 1), date(2023, 5, 10)))
    [s] = settle(who, visit(admitted=date(2023, 5, 20), discharged=date(2023, 5, 25)))
    assert s.category is None


def test_identity_gained_during_the_stay_covers_the_whole_stay() -> None:
    who = person("320506", rec(Category.EXTREME_POVERTY, date(2017, 3, 10)))
    [s] = settle(
        who,
        visit(
            admitted=date(2017, 3, 1),
            discharged=date(2017, 3, 20),
            total="50000.00",
            scope="45000.00",
            level=TERTIARY,
        ),
    )
    assert s.category is Category.EXTREME_POVERTY
    assert s.explanation.category.records[0].rules == (CountingRule.OVERLAP,)
    assert s.payments[Payer.ASSISTANCE] == Decimal("10941.00")


def test_recognition_counts_from_the_first_of_january_in_panzhihua() -> None:
    who = person("510402", rec(Category.MINIMUM_LIVING, date(2024, 7, 1)))
    december, march = settle(
        who,
        visit("v1", date(2023, 12, 1), date(2023, 12, 10), scope="26000.00"),
        visit("v2", date(2024, 3, 1), date(2024, 3, 10), scope="26000.00"),
    )
    assert december.category is None
    assert "1 January 2024" in december.explanation.category.records[0].reason
    assert march.category is Category.MINIMUM_LIVING
    record = march.explanation.category.records[0]
    assert record.rules == (CountingRule.RETROACTIVE_WITHIN_YEAR,)
    assert "攀枝花 第十九条" in record.reason
    assert march.payments[Payer.ASSISTANCE] == Decimal("3864.00")


def test_jiangsu_has_no_retroactive_recognition() -> None:
    who = person("320102", rec(Category.MINIMUM_LIVING, date(2016, 7, 1)))
    [s] = settle(who, visit(admitted=date(2016, 3, 1)))
    assert s.category is None


def test_highest_benefit_category_wins() -> None:
    who = person(
        "510402",
        rec(Category.MONITORED, date(2022, 1, 1)),
        rec(Category.MINIMUM_LIVING, date(2023, 1, 1)),
    )
    [s] = settle(who, visit(admitted=date(2023, 4, 1), total="12000.00", scope="11000.00"))
    assert s.category is Category.MINIMUM_LIVING
    assert s.payments[Payer.ASSISTANCE] == Decimal("1764.00")
    reason = s.explanation.category.reason
    assert "待遇就高" in reason
    assert "攀枝花 第四、十二、十四条" in reason
    assert "EXTREME_POVERTY > ORPHAN > MINIMUM_LIVING > MONITORED" in reason


def test_categories_a_policy_does_not_list_are_ignored() -> None:
    who = person("370811", rec(Category.DISTRESSED_WORKER, date(2020, 1, 1)))
    [s] = settle(who, visit(admitted=date(2021, 4, 1)))
    assert s.category is None
    [record] = s.explanation.category.records
    assert (record.listed, record.counted) == (False, False)
    assert "ordinary person" in s.explanation.category.reason


# -- money -------------------------------------------------------------------------------------


def test_payments_are_rounded_half_up_per_payer() -> None:
    who = person("510402", rec(Category.MONITORED, date(2022, 1, 1)))
    stay, outpatient = settle(
        who,
        visit("v1", total="1000.01", level=TERTIARY),
        visit("v2", date(2023, 3, 5), None, "10.01", None, None, GENERAL),
    )
    basic = line(stay, Payer.BASIC_INSURANCE)
    assert basic.amount_before_rounding == Decimal("130.0065")
    assert basic.paid == Decimal("130.01")
    assert amounts(stay)[-1] == "870.00"
    assert outpatient.payments[Payer.BASIC_INSURANCE] == Decimal("5.01")
    assert outpatient.out_of_pocket == Decimal("5.00")


def test_out_of_scope_cost_is_paid_by_no_payer() -> None:
    who = person("510411", rec(Category.EXTREME_POVERTY, date(2020, 1, 1)))
    [s] = settle(who, visit(total="250000.00", scope="220000.00", level=TERTIARY))
    assert sum(s.payments.values()) == Decimal("220000.00")
    assert s.out_of_pocket == Decimal("30000.00")


# -- ledgers and years -------------------------------------------------------------------------


def test_ledgers_are_per_calendar_year() -> None:
    who = person("510402", rec(Category.MINIMUM_LIVING, date(2020, 1, 1)))
    december, january = settle(
        who,
        visit("g1", date(2023, 12, 15), None, "900.00", "800.00", None, GENERAL),
        visit("g2", date(2024, 1, 15), None, "900.00", "800.00", None, GENERAL),
    )
    assert amounts(december) == amounts(january)
    assert january.settlement_year == 2024


def test_a_ledger_of_another_year_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        settle_visit(POLICIES, person("510402"), visit(), Ledger.empty(2022))
    assert (caught.value.field, caught.value.value) == ("ledger.year", 2022)


def test_ledger_round_trips_through_its_json_form() -> None:
    who = person("510402", rec(Category.MARGINAL_LOW_INCOME, date(2022, 1, 1)))
    ledger = Ledger.empty(2023)
    for v in (visit("v1", total="40000.00", level=TERTIARY), visit("c1", level=None, kind=CHRONIC)):
        _, ledger = settle_visit(POLICIES, who, v, ledger)
    data = json.loads(json.dumps(ledger.to_dict()))
    assert Ledger.from_dict(data) == ledger
    assert data["stages"]["assistance"] == {"base": "22086.00", "paid": "8943.00"}  # 5160 + 3783
    assert ledger.paid_by_payer[Payer.BASIC_INSURANCE] == Decimal("44785.00")  # 25480 + 19305


def test_ledger_from_dict_refuses_unknown_stages_and_bad_amounts() -> None:
    with pytest.raises(InvalidInput) as caught:
        Ledger.from_dict({"year": 2023, "stages": {"lottery": {"base": "1", "paid": "1"}}})
    assert caught.value.field == "ledger.stages.lottery"
    with pytest.raises(InvalidInput) as caught:
        Ledger.from_dict({"year": 2023, "stages": {"assistance": {"base": "-1", "paid": "0"}}})
    assert caught.value.field == "ledger.stages.assistance.base"


def test_settle_visit_does_not_change_the_ledger_it_is_given() -> None:
    ledger = Ledger.empty(2023)
    _, after = settle_visit(POLICIES, person("510402"), visit(), ledger)
    assert ledger == Ledger.empty(2023)
    assert after.totals(Stage.BASIC_INPATIENT).paid == Decimal("23680.00")


def test_no_policy_in_force_on_admission_raises() -> None:
    with pytest.raises(NoPolicyInForce) as caught:
        settle(person("510402"), visit(admitted=date(2023, 1, 15)))
    assert caught.value.on == date(2023, 1, 15)


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "field", "value"),
    [
        (visit(total="100.00", scope="100.01"), "visit.policyScopeCost", Decimal("100.01")),
        (visit(total="-1.00", scope="0.00"), "visit.totalCost", Decimal("-1.00")),
        (visit(total="10.001", scope="0.00"), "visit.totalCost", Decimal("10.001")),
        (
            visit(admitted=date(2023, 3, 5), discharged=date(2023, 3, 4)),
            "visit.dischargeDate",
            "2023-03-04",
        ),
        (visit(level=None), "visit.hospitalLevel", None),
        (
            Visit(
                "", INPATIENT, SECONDARY, date(2023, 3, 1), date(2023, 3, 1), Decimal(1), Decimal(1)
            ),
            "visit.id",
            "",
        ),
    ],
)
def test_malformed_visits_are_refused_naming_field_and_value(
    bad: Visit, field: str, value: object
) -> None:
    with pytest.raises(InvalidInput) as caught:
        settle_visit(POLICIES, person("510402"), bad, Ledger.empty(bad.admission_date.year))
    assert (caught.value.field, caught.value.value) == (field, value)


def test_admission_before_birth_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        settle(person("510402", born=date(2024, 1, 1)), visit())
    assert caught.value.field == "visits[0].admissionDate"


def test_category_record_ending_before_it_starts_is_refused() -> None:
    who = person("510402", rec(Category.ORPHAN, date(2023, 5, 1), date(2023, 4, 1)))
    with pytest.raises(InvalidInput) as caught:
        settle(who, visit())
    assert caught.value.field == "person.categories[0].validTo"


def test_duplicate_visit_ids_are_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        settle(person("510402"), visit("v1"), visit("v1", admitted=date(2023, 4, 1)))
    assert caught.value.field == "visits[1].id"


# -- explanation and small API -----------------------------------------------------------------


def test_explanation_is_json_and_names_every_payer_in_order() -> None:
    who = person("510402", rec(Category.ILLNESS_IMPOVERISHED, date(2022, 6, 1)))
    [s] = settle(who, visit(total="180000.00", scope="160000.00", level=TERTIARY))
    data = json.loads(json.dumps(s.explanation.model_dump(mode="json"), ensure_ascii=False))
    assert [entry["payer"] for entry in data["lines"]] == [p.value for p in PAYERS]
    secondary = data["lines"][4]
    assert secondary == secondary | {
        "applied": True,
        "stage": "secondaryAssistance",
        "method": "annual",
        "base": "22554.00",
        "yearToDateBaseBefore": "0.00",
        "deductible": "7500.00",
        "segments": [{"upTo": None, "ratio": "0.50"}],
        "cap": "20000.00",
        "capRoomBefore": "20000.00",
        "amountBeforeRounding": "7527.00",
        "paid": "7527.00",
    }
    assert data["category"]["chosen"] == "ILLNESS_IMPOVERISHED"
    assert data["outOfPocket"] == "35027.00"


def test_render_text_tells_the_story_line_by_line() -> None:
    [s] = settle(person("510402", MINIMUM_LIVING_2021), visit(scope="26000.00"))
    text = s.explanation.render_text()
    assert text.splitlines()[0].startswith("Visit v1: policy 510400-2023")
    assert "Category: MINIMUM_LIVING." in text
    assert "assistance: 3864.00 — MINIMUM_LIVING schedule" in text
    assert "inclusiveCommercial: 0.00 — not applied: not enrolled" in text
    assert text.splitlines()[-1] == "Out of pocket: 5656.00"


def test_visit_settlement_renders_the_case_output_entry() -> None:
    [s] = settle(person("510402", MINIMUM_LIVING_2021), visit(scope="26000.00"))
    assert s.to_dict() == {
        "id": "v1",
        "policy": "510400-2023",
        "category": "MINIMUM_LIVING",
        "basicInsurance": "20480.00",
        "criticalIllness": "0.00",
        "inclusiveCommercial": "0.00",
        "assistance": "3864.00",
        "secondaryAssistance": "0.00",
        "outOfPocket": "5656.00",
    }


def test_tilt_applies_to_the_categories_a_policy_tilts() -> None:
    panzhihua = POLICIES.by_id("510400-2023")
    hunan = POLICIES.by_id("430000-2017")
    jining = POLICIES.by_id("370800-2021")
    assert tilt_applies(panzhihua, Category.ORPHAN)
    assert not tilt_applies(panzhihua, Category.MONITORED)
    assert tilt_applies(hunan, Category.REGISTERED_POOR)
    assert tilt_applies(hunan, Category.MINIMUM_LIVING, date(2017, 9, 1))
    assert not tilt_applies(hunan, Category.POVERTY_EXIT_SECURED)
    assert not tilt_applies(jining, Category.EXTREME_POVERTY)
    assert not tilt_applies(panzhihua, None)


MODULES: list[ModuleType] = [
    policies.benefits,
    policies.settlement.cases,
    policies.settlement.categories,
    policies.settlement.engine,
    policies.settlement.ledger,
    policies.settlement.payers,
    policies.money,
    policies.settlement.schedule,
    policies.settlement.subsidy,
]


@pytest.mark.parametrize("module", MODULES, ids=[m.__name__ for m in MODULES])
def test_docstring_examples_hold(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0
