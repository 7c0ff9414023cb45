"""The explanation through the API: a settled claim answers, from the JSON stored with its
settlement, exactly what a simulation of the same visit answers from the engine; explanations
stored before settlement v2 still answer; an event without one answers null."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from gateway.storage import models
from gateway.storage.database import Database
from policies.settlement.cases import parse_case
from policies.settlement.engine import settle_visits
from policies.vocabulary import Category
from tests.conftest import GraphQLClient
from tests.policies.shorthand import POLICIES
from tests.resolvers.test_settlement import (
    claims,
    end_minimum_living_back_dated,
    pending_recoveries,
    person,
    settle,
    stay,
)
from tests.spec.examples import load_examples
from tests.spec.test_examples_api import MI, claim_input, load_person

EXPLANATION = """explanation { text reported
  category { category reason heldForInsurance heldForAssistance
    candidates { category validFrom validTo counted rules reason decidedOn countsForInsurance }
    assistanceCandidates { category amount chosen } }
  payers { payer applied reason base baseBefore deductible segments { upTo ratio } cap roomBefore
    amount references { parameter value clause assumed } method notes } }"""
SIMULATE = f"""mutation($i: SimulateSettlementInput!) {{ simulateSettlement(input: $i) {{
  visits {{ id {EXPLANATION} }} }} }}"""
SETTLE = f"""mutation($i: SettleClaimInput!) {{ settleClaim(input: $i) {{
  preferentialTreatment {EXPLANATION} }} }}"""
CLAIM = f"""query($n: String!) {{ claim(claimNumber: $n) {{ settlement {{
  preferentialTreatment {EXPLANATION} }} }} }}"""
EXAMPLES = dict(load_examples())


@pytest.mark.parametrize(
    "stem",
    [
        "P06-panzhihua-highest-benefit",  # two assistance candidates
        "P09-panzhihua-retroactive-recognition",  # a record for assistance only
        "P19-panzhihua-reported-basic-payment",  # a reported payment
        "P12-jiangsu-low-income-tiers-and-loss",  # a category lost between two visits
    ],
)
async def test_a_settled_claim_explains_itself_as_its_simulation_did(
    gql: GraphQLClient, stem: str
) -> None:
    case = EXAMPLES[stem]["case"]
    years = {date.fromisoformat(v["admissionDate"]).year for v in case["visits"]}
    number = await load_person(gql, case["person"], years)
    # The same case as the API settles it: the claim number as visit id, decidedOn as recorded,
    # identities before monitoring flags as the person's records are read.
    records = sorted(
        case["person"].get("categories", []),
        key=lambda r: Category(r["category"]).is_monitoring_flag,
    )
    simulated_case = {
        "person": {
            **case["person"],
            "categories": [
                {**r, "decidedOn": r.get("decidedOn") or r.get("validTo") or r["validFrom"]}
                for r in records
            ],
        },
        "visits": [{**v, "id": f"{stem}-{v['id']}"} for v in case["visits"]],
    }
    simulated = (await gql.data(SIMULATE, {"i": simulated_case}))["simulateSettlement"]["visits"]
    tilted = []
    for visit, simulation in zip(case["visits"], simulated, strict=True):
        claim = claim_input(number, stem, visit)
        answered = (await gql.data(SETTLE, {"i": claim}, **MI))["settleClaim"]
        read = (await gql.data(CLAIM, {"n": claim["claimNumber"]}, **MI))["claim"]["settlement"]
        assert answered == read
        assert read["explanation"] == simulation["explanation"]
        tilted.append(read["preferentialTreatment"])
        assert read["explanation"]["text"].startswith(f"Visit {claim['claimNumber']}: policy ")
    engine = settle_visits(POLICIES, *parse_case(simulated_case))
    assert tilted == [settlement.preferential_treatment for settlement in engine]


async def test_an_explanation_stored_before_settlement_v2_still_answers(
    gql: GraphQLClient, db: Database
) -> None:
    await person(gql, ("MINIMUM_LIVING", "2021-06-01", None))
    await settle(gql, stay("C1", "2023-03-01", "30000.00", "26000.00"))
    before = (await gql.data(CLAIM, {"n": "C1"}))["claim"]["settlement"]
    async with db.sessions() as session, session.begin():
        event = await session.scalar(select(models.Settlement))
        assert event is not None
        old = dict(event.explanation)
        old["category"] = {
            k: v
            for k, v in old["category"].items()
            if k not in ("heldForInsurance", "heldForAssistance", "candidates")
        }
        old["category"]["records"] = [
            {k: v for k, v in r.items() if k not in ("decidedOn", "countsForInsurance")}
            for r in old["category"]["records"]
        ]
        del old["reported"]
        # Stored with every explanation written before 2026-12, and so with every v1 one.
        old["text"] = before["explanation"]["text"]
        event.explanation = old
    after = (await gql.data(CLAIM, {"n": "C1"}))["claim"]["settlement"]
    assert after["explanation"]["category"]["assistanceCandidates"] == []
    assert after["explanation"]["category"]["heldForAssistance"] == []
    [record] = after["explanation"]["category"]["candidates"]
    assert (record["counted"], record["countsForInsurance"], record["decidedOn"]) == (
        True,
        True,
        None,
    )
    assert after["explanation"]["payers"] == before["explanation"]["payers"]
    assert after["explanation"]["text"] == before["explanation"]["text"]
    assert after["preferentialTreatment"] is before["preferentialTreatment"] is True


async def test_after_a_recovery_the_claim_has_no_explanation(gql: GraphQLClient) -> None:
    """A recovery event stores no explanation ({}): it decides the claim's settlement, which then
    has none, and no preferential treatment."""
    await person(gql, ("MINIMUM_LIVING", "2021-06-01", None))
    await settle(gql, stay("C1", "2023-03-01", "30000.00", "26000.00"))
    explained = (await gql.data(CLAIM, {"n": "C1"}))["claim"]["settlement"]
    assert explained["explanation"]["category"]["category"] == "MINIMUM_LIVING"
    await end_minimum_living_back_dated(gql)
    [recovery] = await pending_recoveries(gql)
    await gql.data(
        f'mutation {{ decideRecovery(id: "{recovery["id"]}", decision: RECOVER) {{ status }} }}'
    )
    [claim] = await claims(gql)
    assert [e["kind"] for e in claim["settlements"]] == ["ORIGINAL", "RECOVERY"]
    settlement: dict[str, Any] = (await gql.data(CLAIM, {"n": "C1"}))["claim"]["settlement"]
    assert settlement == {"preferentialTreatment": False, "explanation": None}


async def test_a_claim_reads_its_stored_explanation_only_when_it_is_asked_for(
    gql: GraphQLClient, db: Database
) -> None:
    """The stored JSON is turned into the model by the explanation's field: a claim queried without
    it never reads it (here, one that no longer reads at all)."""
    await person(gql, ("MINIMUM_LIVING", "2021-06-01", None))
    await settle(gql, stay("C1", "2023-03-01", "30000.00", "26000.00"))
    async with db.sessions() as session, session.begin():
        event = await session.scalar(select(models.Settlement))
        assert event is not None
        event.explanation = {"notAnExplanation": True}
    amounts = """query { claim(claimNumber: "C1") { settlement { claimNumber policy category
      assistance outOfPocket } } }"""
    assert (await gql.data(amounts))["claim"]["settlement"] == {
        "claimNumber": "C1",
        "policy": "510400-2023",
        "category": "MINIMUM_LIVING",
        "assistance": "3864.00",
        "outOfPocket": "5656.00",
    }
    error = await gql.error(
        'query { claim(claimNumber: "C1") { settlement { explanation { text } } } }'
    )
    assert error["path"] == ["claim", "settlement", "explanation"]
    assert "notAnExplanation" in error["message"]
