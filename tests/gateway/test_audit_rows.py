"""The auditor's rows (spec/ACCESS.md): an audit record is visible when one of its beneficiaries is
in the auditor's regions, in the log and in the access report alike."""

from __future__ import annotations

from typing import Any

from tests.conftest import GraphQLClient

REGISTER = "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }"
PANZHIHUA = "510402197001010013"
JINING = "370802198002020010"
LOG = """query($after: String) { auditLog(first: 100, after: $after) {
  edges { node { department action beneficiaryIds } } pageInfo { hasNextPage endCursor } } }"""


async def everything_in_the_log(gql: GraphQLClient, **token: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await gql.data(LOG, {"after": after}, department="auditor", **token))["auditLog"]
        records += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return records
        after = page["pageInfo"]["endCursor"]


async def test_an_auditor_reads_the_records_of_its_regions_persons_only(
    gql: GraphQLClient,
) -> None:
    ids = {}
    for number, region in ((PANZHIHUA, "510402"), (JINING, "370802")):
        registered = await gql.data(
            REGISTER,
            {"i": {"idNumber": number, "name": "测试", "regionCode": region}},
            purpose="seeding",
        )
        ids[region] = registered["registerBeneficiary"]["id"]
        await gql.data(f'{{ beneficiary(idNumber: "{number}") {{ name }} }}', purpose="seeding")

    everywhere = await everything_in_the_log(gql, regions=("51", "37"))
    assert {i for r in everywhere for i in r["beneficiaryIds"]} == set(ids.values())

    panzhihua = await everything_in_the_log(gql, regions=("5104",))
    assert panzhihua, "the 5104 auditor sees its own person's records"
    assert {i for r in panzhihua for i in r["beneficiaryIds"]} == {ids["510402"]}

    query = '{ accessReport(idNumber: "%s") { beneficiaryId } }'
    assert (await gql.data(query % JINING, department="auditor", regions=("5104",))) == {
        "accessReport": None
    }
    filtered = await gql.data(
        "query($b: ID) { auditLog(beneficiaryId: $b) { edges { node { action } } } }",
        {"b": ids["370802"]},
        department="auditor",
        regions=("5104",),
    )
    assert filtered["auditLog"]["edges"] == []
