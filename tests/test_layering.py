"""The import graph (DESIGN.md "Imports go one way"): no module imports one that imports it back,
and each layer imports only the layers below it.

    gateway.app, gateway.cli, gateway.main, …     the app and the CLI, on top
    schema                                         Strawberry types, the per-department schemas
    resolvers                                      what queries and mutations do
    policies                                       rules as data and the pure engine
    gateway.storage, gateway.config, gateway.auth  storage and settings, at the bottom
    policies.vocabulary, policies.errors           the shared words and error types, under all

Checked with grimp over every import, those under ``TYPE_CHECKING`` and inside functions
included, so a cycle cannot hide in a lazy import.
"""

from __future__ import annotations

import grimp
import pytest

PACKAGES = ("gateway", "schema", "resolvers", "policies", "migrations")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=False)


def cycles(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """Every pair of modules where each reaches the other."""
    found: set[tuple[str, str]] = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                found.add((min(module, imported), max(module, imported)))
    return sorted(found)


def test_no_module_imports_one_that_imports_it_back(graph: grimp.ImportGraph) -> None:
    assert cycles(graph) == []


def test_the_check_finds_a_cycle_when_there_is_one(graph: grimp.ImportGraph) -> None:
    graph.add_import(importer="policies.vocabulary", imported="policies.errors")
    graph.add_import(importer="policies.errors", imported="policies.vocabulary")
    assert ("policies.errors", "policies.vocabulary") in cycles(graph)


BOTTOM = (
    "gateway.storage",
    "gateway.config",
    "gateway.auth",
    "gateway.errors",
    "gateway.resident_id",
)
RULES = ("policies.benefits", "policies.settlement", "policies.access")
TOP = ("gateway.app", "gateway.cli", "gateway.main", "gateway.migrate", "gateway.demo")


def importers_across(
    graph: grimp.ImportGraph, lower: tuple[str, ...], higher: tuple[str, ...]
) -> list[str]:
    """Imports from a module of ``lower`` into a module of ``higher`` (which must not exist)."""
    found = []
    for low in lower:
        low_modules = {low} | graph.find_descendants(low) if low in graph.modules else set()
        for high in higher:
            if high not in graph.modules:
                continue
            high_modules = {high} | graph.find_descendants(high)
            for module in sorted(low_modules):
                for imported in sorted(graph.find_modules_directly_imported_by(module)):
                    if imported in high_modules:
                        found.append(f"{module} -> {imported}")
    return found


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        (("policies.vocabulary", "policies.errors"), ("gateway", "resolvers", "schema", *RULES)),
        (BOTTOM, (*RULES, "resolvers", "schema", *TOP)),
        (("policies",), ("gateway", "resolvers", "schema", "migrations")),
        (("policies.benefits",), ("policies.settlement", "policies.access")),
        (("policies.access",), ("policies.benefits", "policies.settlement")),
        (("policies.settlement",), ("policies.access",)),
        (("resolvers",), ("schema", *TOP)),
        (("schema",), TOP),
    ],
    ids=[
        "vocabulary",
        "storage-and-settings",
        "policies",
        "benefit-rules",
        "access-rules",
        "engine",
        "resolvers",
        "schema",
    ],
)
def test_each_layer_imports_only_the_layers_below_it(
    graph: grimp.ImportGraph, lower: tuple[str, ...], higher: tuple[str, ...]
) -> None:
    assert importers_across(graph, lower, higher) == []
