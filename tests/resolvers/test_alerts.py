"""The high-cost alert lifecycle through the API (攀枝花 第十八条): raised by settlement, kept
current by every settlement event, closed under the threshold, recognised (linked) when a
department records the person's category, assessed and rejected by a department."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select

from gateway.storage import models
from gateway.storage.database import Database
from tests.conftest import GraphQLClient
from tests.factories import id_number
from tests.resolvers.test_settlement_governance import (
    PANZHIHUA,
    enroll,
    record,
    register,
    settle,
    stay,
)

PERSON = id_number(PANZHIHUA, date(1968, 4, 2), 31)
OTHER = id_number(PANZHIHUA, date(1969, 5, 3), 32)
CIVIL = {"department": "civil_affairs", "org": "mz-5104", "regions": ("5104",)}
RURAL = {"department": "rural_revitalisation", "org": "xczx-5104", "regions": ("5104",)}

ALERT_FIELDS = """id year policy status outOfPocket threshold acknowledgedBy assessingDepartment
  resolution resolvedBy identity { id category } monitoringFlag { id }"""
ALERTS = f"""{{ highCostAlerts(first: 10) {{ edges {{ node {{ {ALERT_FIELDS} }} }} }} }}"""
SUMMARY = """query($n: String!) { beneficiary(idNumber: $n) { yearlySummary(year: 2023) {
  outOfPocket assistance } } }"""
ACK = f"mutation($id: ID!) {{ acknowledgeAlert(id: $id) {{ {ALERT_FIELDS} }} }}"
REJECT = f"""mutation($id: ID!, $r: String!) {{ rejectAlert(id: $id, reason: $r) {{
  {ALERT_FIELDS} }} }}"""
RECOGNISE = f"""mutation($id: ID!, $i: ID, $f: ID) {{ recogniseAlert(id: $id, identityId: $i,
  flagId: $f) {{ {ALERT_FIELDS} }} }}"""
FLAGS = """query($n: String!) { beneficiary(idNumber: $n) { monitoringFlags { id } } }"""
IDENTITIES = """query($n: String!) { beneficiary(idNumber: $n) { identities { id } } }"""
REVERSE = """mutation($n: String!) { reverseSettlement(claimNumber: $n, reason: "refund") {
  __typename } }"""

COSTLY = ("200000.00", "150000.00")  # 50,000 outside the policy scope alone passes 21,000


async def alerts(gql: GraphQLClient, **token: Any) -> list[dict[str, Any]]:
    data = await gql.data(ALERTS, **token)
    return [edge["node"] for edge in data["highCostAlerts"]["edges"]]


async def only_alert(gql: GraphQLClient) -> dict[str, Any]:
    [alert] = await alerts(gql)
    return alert


async def out_of_pocket(gql: GraphQLClient, number: str = PERSON) -> str:
    data = await gql.data(SUMMARY, {"n": number})
    return str(data["beneficiary"]["yearlySummary"]["outOfPocket"])


async def insured_person(gql: GraphQLClient, number: str = PERSON) -> None:
    await register(gql, number, PANZHIHUA)
    await enroll(gql, number, 2023)


async def raised(gql: GraphQLClient, claim: str = "A1", number: str = PERSON) -> dict[str, Any]:
    await insured_person(gql, number)
    await settle(gql, stay(number, claim, "2023-03-01", *COSTLY))
    return await only_alert(gql)


async def audit_count(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(models.AuditRecord)) or 0)


async def test_settling_past_the_threshold_raises_an_open_alert_with_the_current_figure(
    gql: GraphQLClient,
) -> None:
    alert = await raised(gql)
    assert (alert["status"], alert["year"], alert["policy"]) == ("OPEN", 2023, "510400-2023")
    assert alert["threshold"] == "21000.00"  # 50% of 攀枝花's 2022 PCDI 42,000
    assert alert["outOfPocket"] == await out_of_pocket(gql)
    assert float(alert["outOfPocket"]) > 21000


async def test_the_loop_alert_then_civil_affairs_recognises_and_the_alert_is_recognised_linked(
    gql: GraphQLClient,
) -> None:
    alert = await raised(gql)
    before = alert["outOfPocket"]
    taken = (await gql.data(ACK, {"id": alert["id"]}, **CIVIL))["acknowledgeAlert"]
    assert (taken["status"], taken["assessingDepartment"]) == ("ACKNOWLEDGED", "civil_affairs")
    assert taken["acknowledgedBy"] == "civil_affairs/mz-5104"
    # civil affairs records 低保 from June: 追溯 from 1 January (第十九条) re-runs the year
    body = await record(gql, PERSON, "MINIMUM_LIVING", "2023-06-01")
    assert "errors" not in body, body
    alert = await only_alert(gql)
    assert alert["status"] == "RECOGNISED"
    assert alert["identity"]["category"] == "MINIMUM_LIVING"
    assert alert["resolvedBy"] == "gateway"
    assert alert["assessingDepartment"] == "civil_affairs"
    assert alert["resolution"] == "recognised: MINIMUM_LIVING recorded by civil_affairs/mi-5104"
    # assistance was re-run (an adjustment paid) and the alert's figure followed it
    summary = (await gql.data(SUMMARY, {"n": PERSON}))["beneficiary"]["yearlySummary"]
    assert float(summary["assistance"]) > 0
    assert alert["outOfPocket"] == summary["outOfPocket"] != before


async def test_a_reversal_under_the_threshold_closes_the_alert_and_a_new_stay_reopens_it(
    gql: GraphQLClient,
) -> None:
    alert = await raised(gql)
    await gql.data(ACK, {"id": alert["id"]}, **RURAL)
    await gql.data(REVERSE, {"n": "A1"})
    closed = await only_alert(gql)
    assert (closed["status"], closed["outOfPocket"]) == ("CLOSED", "0.00")
    assert closed["resolution"] == ("out-of-pocket 0.00 is no longer above the threshold 21000.00")
    await settle(gql, stay(PERSON, "A2", "2023-05-01", *COSTLY))
    reopened = await only_alert(gql)
    assert (reopened["id"], reopened["status"]) == (alert["id"], "OPEN")
    assert reopened["outOfPocket"] == await out_of_pocket(gql) == alert["outOfPocket"]
    assert reopened["resolution"] is None
    assert reopened["acknowledgedBy"] is None


async def test_a_rejected_alert_keeps_its_reason_and_department_and_its_figure_current(
    gql: GraphQLClient,
) -> None:
    alert = await raised(gql)
    await gql.data(ACK, {"id": alert["id"]}, **RURAL)
    reason = "家庭收入高于监测标准，不纳入防止返贫监测"
    rejected = (await gql.data(REJECT, {"id": alert["id"], "r": reason}, **RURAL))["rejectAlert"]
    assert (rejected["status"], rejected["resolution"]) == ("REJECTED", reason)
    assert rejected["assessingDepartment"] == "rural_revitalisation"
    assert rejected["resolvedBy"] == "rural_revitalisation/xczx-5104"
    await settle(gql, stay(PERSON, "A2", "2023-05-01", "5000.00", "4000.00"))
    later = await only_alert(gql)
    assert (later["status"], later["resolution"]) == ("REJECTED", reason)
    assert later["assessingDepartment"] == "rural_revitalisation"
    assert later["outOfPocket"] == await out_of_pocket(gql) != alert["outOfPocket"]
    # the same rejection again is answered with what is stored
    again = await gql.data(REJECT, {"id": alert["id"], "r": reason}, **RURAL)
    assert again["rejectAlert"]["status"] == "REJECTED"


async def test_invalid_transitions_are_refused_naming_the_state_and_store_nothing(
    gql: GraphQLClient, db: Database
) -> None:
    alert = await raised(gql)
    await insured_person(gql, OTHER)
    await record(gql, OTHER, "MINIMUM_LIVING", "2023-01-01")
    async with db.sessions() as session:
        others = await session.scalar(
            select(models.Identity.id)
            .join(models.Beneficiary, models.Beneficiary.id == models.Identity.beneficiary_id)
            .where(models.Beneficiary.id_number == OTHER)
        )
    written = await audit_count(db)
    error = await gql.error(REJECT, {"id": alert["id"], "r": "不符合"}, **CIVIL)
    assert error["extensions"]["code"] == "CONFLICT"
    assert error["extensions"]["state"] == "OPEN"
    assert error["message"] == (
        f"id = {alert['id']}: the alert is OPEN; rejectAlert is allowed only when it is "
        "ACKNOWLEDGED"
    )
    await gql.data(ACK, {"id": alert["id"]}, **CIVIL)
    written = await audit_count(db)
    error = await gql.error(ACK, {"id": alert["id"]}, **RURAL)
    assert error["extensions"]["code"] == "CONFLICT"
    assert (
        "the alert is ACKNOWLEDGED; acknowledgeAlert is allowed only when it is OPEN"
        in (error["message"])
    )
    error = await gql.error(REJECT, {"id": alert["id"], "r": "不符合"}, **RURAL)
    assert error["message"] == (
        f"id = {alert['id']}: the alert was acknowledged by civil_affairs, which decides it"
    )
    # another person's record does not resolve this alert
    error = await gql.error(RECOGNISE, {"id": alert["id"], "i": str(others)}, **CIVIL)
    assert (error["extensions"]["code"], error["extensions"]["field"]) == (
        "BAD_INPUT",
        "identityId",
    )
    assert error["message"] == f"identityId = {others}: no identity record of this person"
    error = await gql.error(RECOGNISE, {"id": alert["id"]}, **CIVIL)
    assert error["extensions"]["field"] == "identityId"
    assert await audit_count(db) == written
    assert (await only_alert(gql))["status"] == "ACKNOWLEDGED"


async def test_a_flag_recorded_by_rural_revitalisation_recognises_and_links_the_alert(
    gql: GraphQLClient,
) -> None:
    alert = await raised(gql)
    await gql.data(ACK, {"id": alert["id"]}, **RURAL)
    body = await record(gql, PERSON, "MONITORED", "2023-12-01")
    assert "errors" not in body, body
    alert = await only_alert(gql)
    flags = await gql.data(FLAGS, {"n": PERSON})
    [flag_id] = [f["id"] for f in flags["beneficiary"]["monitoringFlags"]]
    assert (alert["status"], alert["monitoringFlag"], alert["identity"]) == (
        "RECOGNISED",
        {"id": flag_id},
        None,
    )
    assert alert["assessingDepartment"] == "rural_revitalisation"
    # recognising by hand with the same record again answers what is stored
    again = await gql.data(RECOGNISE, {"id": alert["id"], "f": flag_id}, **RURAL)
    assert again["recogniseAlert"]["monitoringFlag"] == {"id": flag_id}


async def test_recognising_by_hand_links_a_record_that_does_not_reach_the_year(
    gql: GraphQLClient,
) -> None:
    alert = await raised(gql)
    await gql.data(ACK, {"id": alert["id"]}, **CIVIL)
    # 低保 from 2024: it does not reach 2023, so it does not close the 2023 alert by itself
    assert "errors" not in await record(gql, PERSON, "MINIMUM_LIVING", "2024-01-01")
    assert (await only_alert(gql))["status"] == "ACKNOWLEDGED"
    identities = await gql.data(IDENTITIES, {"n": PERSON})
    [identity] = identities["beneficiary"]["identities"]
    done = await gql.data(RECOGNISE, {"id": alert["id"], "i": identity["id"]}, **CIVIL)
    alert = done["recogniseAlert"]
    assert alert["status"] == "RECOGNISED"
    assert alert["identity"] == {"id": identity["id"], "category": "MINIMUM_LIVING"}
    assert alert["resolvedBy"] == "civil_affairs/mz-5104"
    assert alert["resolution"] == "recognised: MINIMUM_LIVING (MINIMUM_LIVING-2024-01-01)"


async def test_a_person_already_holding_an_assisted_category_is_not_alerted(
    gql: GraphQLClient,
) -> None:
    await insured_person(gql)
    await record(gql, PERSON, "MARGINAL_LOW_INCOME", "2023-01-01")
    await settle(gql, stay(PERSON, "A1", "2023-03-01", *COSTLY))
    assert float(await out_of_pocket(gql)) > 21000
    assert await alerts(gql) == []


async def test_the_deprecated_resolve_alert_closes_with_its_note(gql: GraphQLClient) -> None:
    alert = await raised(gql)
    body = await gql.data(
        'mutation($id: ID!) { resolveAlert(id: $id, resolution: "已电话核实") {'
        " status resolution } }",
        {"id": alert["id"]},
        **CIVIL,
    )
    assert body["resolveAlert"] == {"status": "CLOSED", "resolution": "已电话核实"}
    error = await gql.error(ACK, {"id": alert["id"]}, **CIVIL)
    assert error["extensions"]["state"] == "CLOSED"
