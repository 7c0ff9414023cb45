"""Every example of the spec, reproduced exactly by the pure engine (through ``simulate``)."""

from __future__ import annotations

from typing import Any

import pytest

from policies.benefits import PolicySet, load_policies
from policies.settlement.cases import simulate
from tests.spec.examples import examples_dir, load_examples

EXAMPLES = load_examples()


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies()


def test_the_examples_folder_holds_the_contract() -> None:
    assert examples_dir().is_dir()
    assert len(EXAMPLES) >= 18


@pytest.mark.parametrize(("name", "example"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_engine_reproduces_example(name: str, example: dict[str, Any], policies: PolicySet) -> None:
    assert simulate(example["case"], policies) == example["expected"], example["description"]


@pytest.mark.parametrize(("name", "example"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_explained_example_has_the_same_amounts_and_an_explanation_per_visit(
    name: str, example: dict[str, Any], policies: PolicySet
) -> None:
    explained = simulate(example["case"], policies, explain=True)
    expected_visits: list[dict[str, Any]] = example["expected"]["visits"]
    for entry, expected in zip(explained["visits"], expected_visits, strict=True):
        explanation = entry.pop("explanation")
        assert entry == expected
        assert explanation["visit"] == expected["id"]
        assert explanation["outOfPocket"] == expected["outOfPocket"]
        paid = {line["payer"]: line["paid"] for line in explanation["lines"]}
        assert paid == {payer: expected[payer] for payer in paid}
