"""Applications for assistance (依申请救助, 攀枝花 第十九、二十二条): received at any window (受理),
routed to the recognising department (分办转办), decided there and fed back (结果反馈); and what
rural revitalisation may not see."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from gateway.storage import models
from gateway.storage.database import Database
from tests.conftest import GraphQLClient
from tests.factories import id_number
from tests.resolvers.test_alerts import CIVIL, RURAL, raised
from tests.resolvers.test_settlement_governance import PANZHIHUA, record, register

PERSON = id_number(PANZHIHUA, date(1975, 7, 8), 41)
FIELDS = """id category statement receivedBy routedTo status acknowledgedBy resolution
  resolvedBy identity { id category } monitoringFlag { id }"""
SUBMIT = (
    f"""mutation($i: SubmitApplicationInput!) {{ submitApplication(input: $i) {{ {FIELDS} }} }}"""
)
ACK = f"mutation($id: ID!) {{ acknowledgeApplication(id: $id) {{ {FIELDS} }} }}"
REJECT = f"""mutation($id: ID!, $r: String!) {{ rejectApplication(id: $id, reason: $r) {{
  {FIELDS} }} }}"""
LIST = f"""query($s: AlertStatus) {{ applications(status: $s, first: 20) {{ totalCount
  edges {{ node {{ {FIELDS} }} }} }} }}"""
MI = {"department": "medical_insurance", "org": "mi-5104", "regions": ("5104",)}


def application(category: str, statement: str = "住院花费大，申请认定") -> dict[str, Any]:
    return {"i": {"idNumber": PERSON, "category": category, "statement": statement}}


async def listed(gql: GraphQLClient, **token: Any) -> list[dict[str, Any]]:
    data = await gql.data(LIST, {"s": None}, **token)
    return [edge["node"] for edge in data["applications"]["edges"]]


async def test_an_application_is_routed_decided_and_fed_back_with_the_linked_recognition(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql, PERSON, PANZHIHUA)
    # 受理 at rural revitalisation's window; 低保 is civil affairs' to recognise (分办转办)
    got = (await gql.data(SUBMIT, application("MINIMUM_LIVING"), **RURAL))["submitApplication"]
    assert (got["status"], got["receivedBy"], got["routedTo"]) == (
        "OPEN",
        "rural_revitalisation/xczx-5104",
        "civil_affairs",
    )
    # a flag applied for at medical insurance's window goes to rural revitalisation
    flag = (await gql.data(SUBMIT, application("MONITORED"), **MI))["submitApplication"]
    assert flag["routedTo"] == "rural_revitalisation"
    # only the department it was routed to decides it
    error = await gql.error(ACK, {"id": got["id"]}, **RURAL)
    assert (error["extensions"]["code"], error["message"]) == (
        "FORBIDDEN",
        f"id = {got['id']}: routed to civil_affairs, which decides it",
    )
    taken = (await gql.data(ACK, {"id": got["id"]}, **CIVIL))["acknowledgeApplication"]
    assert (taken["status"], taken["acknowledgedBy"]) == ("ACKNOWLEDGED", "civil_affairs/mz-5104")
    # civil affairs records the category: the application is RECOGNISED, linked to the record
    assert "errors" not in await record(gql, PERSON, "MINIMUM_LIVING", "2023-06-01")
    [fed_back] = [a for a in await listed(gql, **RURAL) if a["id"] == got["id"]]
    assert fed_back["status"] == "RECOGNISED"
    assert fed_back["identity"]["category"] == "MINIMUM_LIVING"
    assert fed_back["resolution"] == "recognised: MINIMUM_LIVING recorded by civil_affairs/mi-5104"
    # rural revitalisation rejects the flag application with a reason; medical insurance reads it
    await gql.data(ACK, {"id": flag["id"]}, **RURAL)
    reason = "人均纯收入高于监测标准"
    await gql.data(REJECT, {"id": flag["id"], "r": reason}, **RURAL)
    [result] = [a for a in await listed(gql, **MI) if a["id"] == flag["id"]]
    assert (result["status"], result["resolution"], result["resolvedBy"]) == (
        "REJECTED",
        reason,
        "rural_revitalisation/xczx-5104",
    )
    # every change was audited with the person, and the reads of applications too
    async with db.sessions() as session:
        operations = (
            await session.scalars(
                select(models.AuditRecord.operation).where(models.AuditRecord.action == "WRITE")
            )
        ).all()
        reads = (
            await session.scalars(
                select(models.AuditRecord.field_paths).where(
                    models.AuditRecord.action == "READ",
                    models.AuditRecord.department == "medical_insurance",
                )
            )
        ).all()
    for operation in ("submitApplication", "acknowledgeApplication", "rejectApplication"):
        assert operation in operations
    assert any("applications.edges.node.resolution" in paths for paths in reads), reads


async def test_a_rejection_needs_a_reason_and_a_pending_application_is_not_received_twice(
    gql: GraphQLClient,
) -> None:
    await register(gql, PERSON, PANZHIHUA)
    got = (await gql.data(SUBMIT, application("ORPHAN"), **CIVIL))["submitApplication"]
    again = (await gql.data(SUBMIT, application("ORPHAN"), **CIVIL))["submitApplication"]
    assert again["id"] == got["id"]
    error = await gql.error(SUBMIT, application("ORPHAN", "另一份申请"), **CIVIL)
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("CONFLICT", "category")
    error = await gql.error(REJECT, {"id": got["id"], "r": "不符合"}, **CIVIL)
    assert error["extensions"]["state"] == "OPEN"
    await gql.data(ACK, {"id": got["id"]}, **CIVIL)
    error = await gql.error(REJECT, {"id": got["id"], "r": " "}, **CIVIL)
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("BAD_INPUT", "reason")
    error = await gql.error(SUBMIT, application("ORPHAN", "x" * 501), **CIVIL)
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("BAD_INPUT", "statement")


async def test_rural_revitalisation_cannot_see_what_it_may_not(gql: GraphQLClient) -> None:
    await raised(gql)
    await register(gql, PERSON, PANZHIHUA)
    await gql.data(SUBMIT, application("MINIMUM_LIVING"), **CIVIL)
    # an application neither received nor routed to it is not its row
    assert await listed(gql, **RURAL) == []
    assert len(await listed(gql, **CIVIL)) == 1
    # ACCESS.md: no claims or settlement breakdowns for rural revitalisation, not via an alert
    error = await gql.error(
        "{ highCostAlerts(first: 5) { edges { node { beneficiary { claims(first: 5) { edges {"
        " node { settlement { assistance } } } } } } } } }",
        **RURAL,
    )
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["extensions"]["forbidden"] == ["highCostAlerts.edges.node.beneficiary.claims"]
    # nor applications or alerts of persons outside its token's regions
    elsewhere = {**RURAL, "regions": ("3708",)}
    assert await listed(gql, **elsewhere) == []
    data = await gql.data("{ highCostAlerts(first: 5) { totalCount } }", **elsewhere)
    assert data["highCostAlerts"]["totalCount"] == 0
