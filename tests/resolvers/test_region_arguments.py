"""Region arguments outside the token are FORBIDDEN, like writes (issue 10, point 7): never zeros
or empty lists that look real. A prefix broader than the token's overlaps it and is narrowed to
the token's rows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.storage import models
from gateway.storage.database import Database
from schema import build_schema
from tests.conftest import GraphQLClient
from tests.factories import add_people

STATISTICS = "query($p: String) { statistics(year: 2023, regionPrefix: $p) { persons } }"
DASHBOARD = "query($p: String) { dashboard(year: 2023, regionPrefix: $p) { total { persons } } }"
BENEFICIARIES = """query($p: String) { beneficiaries(regionPrefix: $p) {
  edges { node { regionCode } } } }"""
LATE_NEWS = "query($r: String) { lateNews(regionCode: $r) { edges { node { year } } } }"
CLOSINGS = "query($r: String) { settlementYearClosings(regionCode: $r) { regionCode year } }"
CLOSE = """mutation($r: String!) { closeSettlementYear(regionCode: $r, year: 2016) {
  regionCode } }"""
REGISTER = """mutation($r: String!) { registerBeneficiary(input: {
  idNumber: "370802197001019013", name: "张三", regionCode: $r }) { id } }"""
FUND_STATEMENT = "query($p: String) { fundStatement(year: 2023, regionPrefix: $p) { closing } }"
FUND_RECONCILIATION = """query($p: String) { fundReconciliation(year: 2023, regionPrefix: $p) {
  balanced } }"""

# Every region argument of the schema, with a query using it and a value outside a 5104 token.
OUTSIDE = {
    "Query.statistics(regionPrefix)": (STATISTICS, {"p": "37"}),
    "Query.dashboard(regionPrefix)": (DASHBOARD, {"p": "37"}),
    "Query.beneficiaries(regionPrefix)": (BENEFICIARIES, {"p": "3708"}),
    "Query.lateNews(regionCode)": (LATE_NEWS, {"r": "370800"}),
    "Query.settlementYearClosings(regionCode)": (CLOSINGS, {"r": "320000"}),
    "Mutation.closeSettlementYear(regionCode)": (CLOSE, {"r": "320000"}),
    "RegisterBeneficiaryInput.regionCode": (REGISTER, {"r": "370802"}),
    "Query.fundStatement(regionPrefix)": (FUND_STATEMENT, {"p": "37"}),
    "Query.fundReconciliation(regionPrefix)": (FUND_RECONCILIATION, {"p": "3708"}),
}
NOT_DATA_SCOPE = {
    # A hypothetical person of a simulation: nothing is read or stored.
    "SimulatedPersonInput.regionCode",
}


def region_arguments() -> set[str]:
    """Every argument and input field of the full schema whose name starts with "region"."""
    found: set[str] = set()
    for name, graphql_type in build_schema()._schema.type_map.items():
        if name.startswith("__"):
            continue
        fields = getattr(graphql_type, "fields", None) or {}
        for field_name, field in fields.items():
            found |= {
                f"{name}.{field_name}({argument})"
                for argument in getattr(field, "args", {})
                if argument.startswith("region")
            }
            if name.endswith("Input") and field_name.startswith("region"):
                found.add(f"{name}.{field_name}")
    return found


def test_every_region_argument_of_the_schema_is_checked_here() -> None:
    assert region_arguments() == set(OUTSIDE) | NOT_DATA_SCOPE


@pytest.mark.parametrize(("query", "variables"), OUTSIDE.values(), ids=list(OUTSIDE))
async def test_a_region_argument_outside_the_token_is_forbidden(
    gql: GraphQLClient, db: Database, query: str, variables: dict[str, Any]
) -> None:
    await add_people(db, 1, region="370802")
    before = await audit_count(db)
    body = await gql.post(query, variables, regions=("5104",))
    [error] = body["errors"]
    [(field, value)] = variables.items()
    expected_field = "regionPrefix" if field == "p" else "regionCode"
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert (error["extensions"]["field"], error["extensions"]["value"]) == (expected_field, value)
    assert (
        f"{expected_field} = {value}: outside the regions of this token (5104)"
        in (error["message"])
    )
    assert body["data"] is None or next(iter(body["data"].values())) is None
    # Nothing was written or read about anyone: no new person, closing or audit record.
    async with db.sessions() as session:
        persons = await session.scalar(select(func.count()).select_from(models.Beneficiary))
        closings = await session.scalar(
            select(func.count()).select_from(models.SettlementYearClosing)
        )
    assert (persons, closings) == (1, 0)
    assert await audit_count(db) == before


async def audit_count(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(models.AuditRecord)) or 0)


async def test_a_broader_prefix_is_narrowed_to_the_token(gql: GraphQLClient, db: Database) -> None:
    await add_people(db, 2, region="510402")
    await add_people(db, 3, region="511002", start=10)  # 内江: in 51, outside 5104
    for prefix, persons in (("51", 2), ("5104", 2), ("510402", 2), (None, 2)):
        data = await gql.data(STATISTICS, {"p": prefix}, regions=("5104",))
        assert data["statistics"]["persons"] == persons, prefix
        listed = await gql.data(BENEFICIARIES, {"p": prefix}, regions=("5104",))
        codes = [e["node"]["regionCode"] for e in listed["beneficiaries"]["edges"]]
        assert codes == ["510402", "510402"], prefix
    # A narrower token inside the prefix, and a prefix inside one of several token prefixes.
    data = await gql.data(STATISTICS, {"p": "5"}, regions=("511002", "3708"))
    assert data["statistics"]["persons"] == 3
    error = await gql.error(STATISTICS, {"p": "510402"}, regions=("511002", "3708"))
    assert (error["extensions"]["code"], error["extensions"]["value"]) == ("FORBIDDEN", "510402")


async def test_a_malformed_region_argument_is_bad_input(gql: GraphQLClient) -> None:
    for query, variables, field in (
        (STATISTICS, {"p": "5104021"}, "regionPrefix"),
        (BENEFICIARIES, {"p": "51a"}, "regionPrefix"),
        (LATE_NEWS, {"r": "5104"}, "regionCode"),
        (CLOSINGS, {"r": "110100"}, "regionCode"),  # no benefit policy has this region code
    ):
        error = await gql.error(query, variables, regions=("5104",))
        [value] = variables.values()
        assert error["extensions"]["code"] == "BAD_INPUT", (query, error)
        assert (error["extensions"]["field"], error["extensions"]["value"]) == (field, value)


async def test_closings_of_a_policy_region_that_overlaps_the_token_are_listed(
    gql: GraphQLClient, db: Database
) -> None:
    async with db.transaction() as session:
        for region, policy in (("510400", "510400-2023"), ("320000", "320000-2015")):
            session.add(
                models.SettlementYearClosing(
                    region_code=region, year=2016, policy=policy, department="m", org="o"
                )
            )
    county = {"regions": ("510402",)}
    listed = await gql.data(CLOSINGS, {"r": None}, **county)
    assert listed["settlementYearClosings"] == [{"regionCode": "510400", "year": 2016}]
    by_code = await gql.data(CLOSINGS, {"r": "510400"}, **county)
    assert by_code["settlementYearClosings"] == [{"regionCode": "510400", "year": 2016}]
    both = await gql.data(CLOSINGS, {"r": None}, regions=("5",))
    assert [c["regionCode"] for c in both["settlementYearClosings"]] == ["510400"]
    news = await gql.data(LATE_NEWS, {"r": "510400"}, **county)
    assert news["lateNews"]["edges"] == []
    # Closing a year stays with a token for the whole policy region, not one of its counties.
    error = await gql.error(CLOSE, {"r": "320000"}, regions=("320102",))
    assert (error["extensions"]["code"], error["extensions"]["value"]) == ("FORBIDDEN", "320000")
