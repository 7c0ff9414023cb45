"""The explanation model: what the engine builds is what a settlement event stores (JSON) and what
reads back from it, in the stored shape of every explanation written so far."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from policies.settlement.cases import case_of, parse_case
from policies.settlement.engine import VisitSettlement, settle_visits
from policies.settlement.explanation import Explanation
from policies.vocabulary import Category
from tests.policies.shorthand import POLICIES
from tests.spec.examples import load_examples

EXAMPLES = load_examples()


def settled(stem: str) -> list[VisitSettlement]:
    example = dict(EXAMPLES)[stem]
    case, _ = case_of(example)
    return settle_visits(POLICIES, *parse_case(case))


def stored(explanation: Explanation) -> dict[str, Any]:
    """As a settlement event keeps it: JSON text in a JSONB column, read back as a dict."""
    loaded: dict[str, Any] = json.loads(explanation.stored_json())
    assert loaded == explanation.stored()
    return loaded


@pytest.mark.parametrize("stem", [stem for stem, _ in EXAMPLES])
def test_every_example_explanation_reads_back_equal_from_its_json(stem: str) -> None:
    for settlement in settled(stem):
        built = settlement.explanation
        data = stored(built)
        read = Explanation.model_validate(data)
        assert read == built
        assert read.text == built.text == built.render_text()
        assert read.stored() == data
        assert read.model_dump(mode="json") == data | {"text": built.text}


def test_the_stored_keys_are_those_every_stored_explanation_has() -> None:
    """Rows already in the database hold these keys (and ``text``, up to 2026-11): the model keeps
    reading and writing them; the JSON it shows (``model_dump``, ``simulate``) ends with the
    text."""
    [p06] = settled("P06-panzhihua-highest-benefit")
    data = stored(p06.explanation)
    shown = p06.explanation.model_dump(mode="json")
    assert list(shown) == [*data, "text"]
    assert shown["text"] == p06.explanation.render_text()
    assert list(data) == [
        "visit",
        "policy",
        "policyTitle",
        "settlementYear",
        "category",
        "preferentialTreatment",
        "totalCost",
        "policyScopeCost",
        "outOfScope",
        "reported",
        "lines",
        "outOfPocket",
    ]
    category = data["category"]
    assert list(category) == [
        "chosen",
        "reason",
        "priority",
        "priorityReference",
        "heldForInsurance",
        "heldForAssistance",
        "candidates",
        "records",
    ]
    assert [list(c) for c in category["candidates"]] == [["category", "paid", "chosen"]] * 2
    assert list(category["records"][0]) == [
        "category",
        "validFrom",
        "validTo",
        "decidedOn",
        "listedByPolicy",
        "counted",
        "countsForInsurance",
        "rules",
        "reason",
    ]
    ci = next(line for line in data["lines"] if line["payer"] == "criticalIllness")
    assert list(ci) == [
        "payer",
        "applied",
        "reason",
        "stage",
        "method",
        "base",
        "yearToDateBaseBefore",
        "deductible",
        "segments",
        "portions",
        "cap",
        "capSharedWith",
        "capRoomBefore",
        "amountBeforeCap",
        "amountBeforeRounding",
        "paid",
        "parameters",
        "notes",
    ]
    assert ci["segments"] == [
        {"upTo": "100000.00", "ratio": "0.65"},
        {"upTo": None, "ratio": "0.75"},
    ]
    portions = [p for line in data["lines"] for p in line["portions"]]
    assert portions
    assert {tuple(p) for p in portions} == {("from", "to", "ratio", "amount")}
    assert list(ci["parameters"][0]) == ["name", "value", "reference", "note"]
    assert data["outOfScope"] == format(
        Decimal(data["totalCost"]) - Decimal(data["policyScopeCost"]), "f"
    )


def test_an_explanation_stored_before_settlement_v2_still_reads() -> None:
    """Before v2 an explanation had no decidedOn, countsForInsurance, held categories, candidates
    or reported; the first ones had no text either."""
    _, retroactive = settled("P09-panzhihua-retroactive-recognition")
    new = retroactive.explanation
    assert [(r.counted, r.insurance_stages) for r in new.category.records] == [(True, False)]
    assert len(new.category.candidates) == 1
    data = stored(new)
    del data["reported"]
    for key in ("heldForInsurance", "heldForAssistance", "candidates"):
        del data["category"][key]
    for record in data["category"]["records"]:
        del record["decidedOn"], record["countsForInsurance"]
    old = Explanation.model_validate(data)
    assert old.reported == ()
    assert old.category.candidates == old.category.held_for_insurance == ()
    # One category for every stage, as v1 settled.
    assert [(r.counted, r.insurance_stages, r.decided_on) for r in old.category.records] == [
        (True, True, None)
    ]
    assert old.category.chosen is Category.MINIMUM_LIVING
    assert old.lines == new.lines
    assert old.text.startswith(f"Visit {retroactive.visit_id}: policy {retroactive.policy_id}")
    assert old.text == old.render_text()


def test_an_explanation_stored_with_its_text_reads_back_that_text() -> None:
    """Up to 2026-11 the text was rendered when the visit was settled and stored: that account
    is the one shown, not one rendered again by today's code."""
    [p06] = settled("P06-panzhihua-highest-benefit")
    data = stored(p06.explanation)
    assert "text" not in data
    old = Explanation.model_validate(data | {"text": "Visit as rendered in 2025"})
    assert old.text == "Visit as rendered in 2025"
    assert old.render_text() == p06.explanation.text
    assert old.stored() == data
    assert old.model_dump(mode="json")["text"] == "Visit as rendered in 2025"


def test_a_stored_explanation_with_an_unknown_or_missing_key_is_refused_by_name() -> None:
    [p01] = settled("P01-panzhihua-minimum-living-single-stay")
    data = stored(p01.explanation)
    data["lines"][1]["surprise"] = "1"
    with pytest.raises(ValidationError, match=r"lines\.1\.surprise"):
        Explanation.model_validate(data)
    del data["lines"][1]["surprise"], data["lines"][1]["paid"]
    with pytest.raises(ValidationError, match=r"lines\.1\.paid"):
        Explanation.model_validate(data)


def test_an_explanation_is_frozen() -> None:
    [p01] = settled("P01-panzhihua-minimum-living-single-stay")
    with pytest.raises(ValidationError, match="frozen"):
        p01.explanation.lines[0].paid = Decimal("1")  # type: ignore[misc]
