"""Property: whatever order late recognitions arrive in, interleaved with settlements, every
claim's original settlement plus its adjustments equals what the engine computes knowing
everything from the start."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.benefits import PolicySet
from policies.settlement.engine import CategoryRecord, Person, Visit, settle_visits
from policies.vocabulary import PAYERS, Category, HospitalLevel, VisitType
from tests.conftest import GraphQLClient
from tests.factories import id_number, recorder

REGIONS = {
    "510402": [
        Category.EXTREME_POVERTY,
        Category.MINIMUM_LIVING,
        Category.MONITORED,
        Category.MARGINAL_LOW_INCOME,
        Category.ILLNESS_IMPOVERISHED,
    ],
    "370811": [Category.EXTREME_POVERTY, Category.MINIMUM_LIVING],
    "320102": [Category.MINIMUM_LIVING, Category.LOW_INCOME, Category.ORPHAN],
    "430102": [Category.EXTREME_POVERTY, Category.MINIMUM_LIVING, Category.REGISTERED_POOR],
}
YEAR = 2023
SEQUENCE = itertools.count(1)
SETTLE = "mutation($i: SettleClaimInput!) { settleClaim(input: $i) { claimNumber } }"


@st.composite
def visits(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(list(VisitType)))
    admitted = date(YEAR, 3, 1) + timedelta(days=draw(st.integers(0, 280)))
    scope = Decimal(draw(st.integers(0, 30_000_000))) / 100
    total = scope + Decimal(draw(st.integers(0, 2_000_000))) / 100
    return {
        "type": kind.value,
        "hospitalLevel": draw(st.sampled_from(list(HospitalLevel))).value,
        "admissionDate": admitted.isoformat(),
        "dischargeDate": (admitted + timedelta(days=draw(st.integers(0, 20)))).isoformat(),
        "totalCost": str(total),
        "policyScopeCost": str(scope),
        "referralCompliant": draw(st.booleans()),
    }


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    region = draw(st.sampled_from(sorted(REGIONS)))
    categories = draw(
        st.lists(st.sampled_from(REGIONS[region]), min_size=1, max_size=3, unique=True)
    )
    news = []
    for category in categories:
        start = date(YEAR, 1, 1) + timedelta(days=draw(st.integers(-400, 330)))
        end = draw(st.one_of(st.none(), st.integers(0, 200)))
        news.append((category, start, None if end is None else start + timedelta(days=end)))
    stays = draw(st.lists(visits(), min_size=1, max_size=5))
    # When each piece of news arrives: after how many settlements.
    arrivals = [draw(st.integers(0, len(stays))) for _ in news]
    return {
        "region": region,
        "insured": draw(st.booleans()),
        "commercial": draw(st.booleans()),
        "news": news,
        "arrivals": arrivals,
        "stays": stays,
    }


async def _record(
    gql: GraphQLClient, number: str, news: tuple[Category, date, date | None], i: int
) -> None:
    category, start, end = news
    mutation = "recordMonitoringFlag" if category.is_monitoring_flag else "recordIdentity"
    await gql.data(
        f"mutation($i: RecordCategoryInput!) {{ {mutation}(input: $i) {{ category }} }}",
        {
            "i": {
                "idNumber": number,
                "category": category.value,
                "validFrom": start.isoformat(),
                "validTo": None,
                "reference": f"N{i}",
            }
        },
        department=recorder(category.value),
    )
    if end is not None:
        # Recognised, then ended later: a second piece of late news.
        ender = "endMonitoringFlag" if category.is_monitoring_flag else "endIdentity"
        await gql.data(
            f"mutation($i: EndCategoryInput!) {{ {ender}(input: $i) {{ category }} }}",
            {"i": {"idNumber": number, "category": category.value, "validTo": end.isoformat()}},
            department=recorder(category.value),
        )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
async def test_original_plus_adjustments_equal_the_full_knowledge_result(
    gql: GraphQLClient, policies: PolicySet, scenario: dict[str, Any]
) -> None:
    n = next(SEQUENCE)
    region = scenario["region"]
    number = id_number(region, date(1960, 1, 1), n)
    await gql.data(
        "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }",
        {"i": {"idNumber": number, "name": "性质", "regionCode": region}},
    )
    if scenario["insured"]:
        await gql.data(
            "mutation($i: RecordEnrollmentInput!) { recordEnrollment(input: $i) { year } }",
            {
                "i": {
                    "idNumber": number,
                    "year": YEAR,
                    "contribution": "380.00",
                    "inclusiveCommercial": scenario["commercial"],
                    "enrolledOn": f"{YEAR - 1}-12-01",
                }
            },
        )
    claim_numbers = []
    for step in range(len(scenario["stays"]) + 1):
        for i, (news, arrival) in enumerate(
            zip(scenario["news"], scenario["arrivals"], strict=True)
        ):
            if arrival == step:
                await _record(gql, number, news, i)
        if step < len(scenario["stays"]):
            claim = {"claimNumber": f"P{n}-{step}", "idNumber": number, **scenario["stays"][step]}
            await gql.data(SETTLE, {"i": claim})
            claim_numbers.append(claim["claimNumber"])

    data = await gql.data(
        """query($n: String) { beneficiary(idNumber: $n) { claims(first: 10) { edges { node {
          claimNumber settlement { category basicInsurance criticalIllness inclusiveCommercial
          assistance secondaryAssistance outOfPocket } } } } } }""",
        {"n": number},
    )
    stored = {
        e["node"]["claimNumber"]: e["node"]["settlement"]
        for e in data["beneficiary"]["claims"]["edges"]
    }

    person = Person(
        region,
        date(1960, 1, 1),
        insured=scenario["insured"],
        inclusive_commercial=scenario["insured"] and scenario["commercial"],
        categories=tuple(CategoryRecord(c, s, e) for c, s, e in scenario["news"]),
    )
    truth = settle_visits(
        policies,
        person,
        [
            Visit(
                number_,
                VisitType(s["type"]),
                HospitalLevel(s["hospitalLevel"]),
                date.fromisoformat(s["admissionDate"]),
                date.fromisoformat(s["dischargeDate"]),
                Decimal(s["totalCost"]),
                Decimal(s["policyScopeCost"]),
                s["referralCompliant"],
            )
            for number_, s in zip(claim_numbers, scenario["stays"], strict=True)
        ],
    )
    for result in truth:
        got = stored[result.visit_id]
        assert [Decimal(got[p.value]) for p in PAYERS] == [result.payments[p] for p in PAYERS]
        assert Decimal(got["outOfPocket"]) == result.out_of_pocket
        assert got["category"] == (result.category.value if result.category else None)
