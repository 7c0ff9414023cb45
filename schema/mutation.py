"""The root Mutation type: department writes (and, later, settlement)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry

from policies.settlement.engine import Visit, settle_visits
from resolvers import (
    alerts,
    applications,
    claims,
    closings,
    ingestion,
    recoveries,
    settlement,
    webhooks,
)
from resolvers.lifecycle import Action
from schema import webhook
from schema.application import Application, SubmitApplicationInput
from schema.beneficiary import (
    Beneficiary,
    Claim,
    Enrollment,
    HighCostAlert,
    Identity,
    MonitoringFlag,
)
from schema.enums import BasicScheme, Category, Gender
from schema.payload import (
    EndIdentityPayload,
    EndMonitoringFlagPayload,
    RecordIdentityPayload,
    RecordMonitoringFlagPayload,
    ReverseSettlementPayload,
)
from schema.recovery import Recovery, RecoveryDecision, SettlementYearClosing
from schema.settlement import (
    SettleClaimInput,
    Settlement,
    SimulatedVisit,
    SimulateSettlementInput,
    Simulation,
)

if TYPE_CHECKING:
    from resolvers.context import Context


ALERT_ID = strawberry.argument(description="The alert's id (HighCostAlert.id).")
APPLICATION_ID = strawberry.argument(description="The application's id (Application.id).")
IDENTITY_ID = strawberry.argument(
    description="Identity.id of the record that recognised the person (or give flagId)."
)
FLAG_ID = strawberry.argument(
    description="MonitoringFlag.id of the record that recognised the person (or give identityId)."
)
REASON = strawberry.argument(description="Why (≤ 500 characters); kept with the decision.")

ID_NUMBER = "The person's resident ID number (身份证号, 18 characters; check digit verified)."


@strawberry.input(description="A person to register (登记).")
class RegisterBeneficiaryInput:
    id_number: str = strawberry.field(description=ID_NUMBER)
    name: str = strawberry.field(description="Full name (姓名).")
    region_code: str = strawberry.field(
        description="6-digit administrative region code of residence; within the token's regions."
    )
    gender: Gender | None = strawberry.field(
        default=None, description="Default: from the ID number's 17th digit, which must agree."
    )
    birth_date: date | None = strawberry.field(
        default=None, description="Default: the date the ID number encodes, which must agree."
    )


DECIDED_ON = (
    "When the change was decided (China time; default today, never in the future). In Jiangsu "
    "an end counts until the end of the month of the later of validTo and decidedOn "
    "(SETTLEMENT.md §4.2); a caller replaying history passes it explicitly."
)


@strawberry.input(
    description="A recognised category (身份认定) or monitoring flag, with its validity."
)
class RecordCategoryInput:
    id_number: str = strawberry.field(description=ID_NUMBER)
    category: Category = strawberry.field(
        description="The category; the department must be the one that recognises it."
    )
    valid_from: date = strawberry.field(description="At most today (China time).")
    valid_to: date | None = strawberry.field(
        default=None, description="Last day it holds (null: open)."
    )
    reference: str = strawberry.field(
        description="Number of the recognition decision (认定文书编号)."
    )
    decided_on: date | None = strawberry.field(default=None, description=DECIDED_ON)


@strawberry.input(description="The end of an open category record (身份终止).")
class EndCategoryInput:
    id_number: str = strawberry.field(description=ID_NUMBER)
    category: Category = strawberry.field(description="The category whose open record ends.")
    valid_to: date = strawberry.field(description="Last day it holds (China time).")
    decided_on: date | None = strawberry.field(default=None, description=DECIDED_ON)


@strawberry.input(
    description="Enrollment (参保登记) in basic medical insurance for one year (SETTLEMENT.md §7)."
)
class RecordEnrollmentInput:
    id_number: str = strawberry.field(description=ID_NUMBER)
    year: int = strawberry.field(description="The insurance year.")
    contribution: Decimal = strawberry.field(description="Individual contribution, yuan.")
    inclusive_commercial: bool = strawberry.field(
        default=False,
        description="Also enrolled in the region's inclusive commercial plan (惠民保).",
    )
    enrolled_on: date = strawberry.field(
        description="Enrollment date (China time): the categories held on it decide the subsidy."
    )
    scheme: BasicScheme = strawberry.field(
        default=BasicScheme.RESIDENT,
        description="RESIDENT (城乡居民医保) or EMPLOYEE (职工医保: its claims must carry "
        "reported.basicInsurance).",
    )


INPUT = strawberry.argument(description="What to write (see the input type).")
CLAIM_NUMBER = strawberry.argument(description="The claim's number (结算单号).")


def _settlement(state: settlement.ClaimState) -> Settlement:
    return Settlement.of(state.claim.claim_number, state.events, state.lines)


def _record(data: RecordCategoryInput) -> ingestion.CategoryInput:
    return ingestion.CategoryInput(
        id_number=data.id_number,
        category=data.category,
        valid_from=data.valid_from,
        valid_to=data.valid_to,
        reference=data.reference,
        decided_on=data.decided_on,
    )


def _end(data: EndCategoryInput) -> ingestion.EndCategoryInput:
    return ingestion.EndCategoryInput(data.id_number, data.category, data.valid_to, data.decided_on)


@strawberry.type(
    description="Department writes. Every field is nullable: a document's mutation fields run in "
    "order, each in its own transaction, and each reports its own outcome (a failed field is "
    "null with its error; the fields before it stay stored and keep their results)."
)
class Mutation:
    @strawberry.mutation(description="Register a person; the same ID number again returns them.")
    async def register_beneficiary(
        self,
        info: strawberry.Info[Context, None],
        input: Annotated[RegisterBeneficiaryInput, INPUT],
    ) -> Beneficiary | None:
        row = await ingestion.register(
            info.context,
            ingestion.PersonInput(
                id_number=input.id_number,
                name=input.name,
                region_code=input.region_code,
                gender=input.gender.value if input.gender else None,
                birth_date=input.birth_date,
            ),
        )
        return Beneficiary.from_model(row)

    @strawberry.mutation(
        description="Record a recognised category (身份认定; civil affairs and the other "
        "recognising departments, each its own categories). Assistance of the open years the "
        "record reaches is re-run in the same transaction (SETTLEMENT.md §9.4); the payload "
        "lists the adjustments stored. The same record again changes nothing. Overlapping a "
        "stored record of the category is CONFLICT; another department's category FORBIDDEN."
    )
    async def record_identity(
        self, info: strawberry.Info[Context, None], input: Annotated[RecordCategoryInput, INPUT]
    ) -> RecordIdentityPayload | None:
        row, consequences = await ingestion.record_category(
            info.context, _record(input), flags=False
        )
        return RecordIdentityPayload.of(Identity.from_model(row), consequences)

    @strawberry.mutation(
        description="End the open record of a category on validTo (身份终止); assistance is "
        "re-run as for recordIdentity (a lower amount becomes a pending recovery, §9.4). "
        "Ending it again on the same day changes nothing; no open record is NOT_FOUND."
    )
    async def end_identity(
        self, info: strawberry.Info[Context, None], input: Annotated[EndCategoryInput, INPUT]
    ) -> EndIdentityPayload | None:
        row, consequences = await ingestion.end_category(info.context, _end(input), flags=False)
        return EndIdentityPayload.of(Identity.from_model(row), consequences)

    @strawberry.mutation(
        description="Record a poverty-monitoring flag (监测标识; rural revitalisation). "
        "Assistance is re-run as for recordIdentity."
    )
    async def record_monitoring_flag(
        self, info: strawberry.Info[Context, None], input: Annotated[RecordCategoryInput, INPUT]
    ) -> RecordMonitoringFlagPayload | None:
        row, _ = await ingestion.record_category(info.context, _record(input), flags=True)
        return RecordMonitoringFlagPayload(monitoring_flag=MonitoringFlag.from_model(row))

    @strawberry.mutation(
        description="End the open monitoring flag of a category on validTo; assistance is "
        "re-run as for endIdentity."
    )
    async def end_monitoring_flag(
        self, info: strawberry.Info[Context, None], input: Annotated[EndCategoryInput, INPUT]
    ) -> EndMonitoringFlagPayload | None:
        row, _ = await ingestion.end_category(info.context, _end(input), flags=True)
        return EndMonitoringFlagPayload(monitoring_flag=MonitoringFlag.from_model(row))

    @strawberry.mutation(
        description="Enroll a person for a year; the answer carries the subsidy split (§7)."
    )
    async def record_enrollment(
        self, info: strawberry.Info[Context, None], input: Annotated[RecordEnrollmentInput, INPUT]
    ) -> Enrollment | None:
        row = await ingestion.record_enrollment(
            info.context,
            ingestion.EnrollmentInput(
                id_number=input.id_number,
                year=input.year,
                contribution=input.contribution,
                inclusive_commercial=input.inclusive_commercial,
                enrolled_on=input.enrolled_on,
                scheme=input.scheme.value,
            ),
        )
        return Enrollment.from_model(row)

    @strawberry.mutation(
        description="Settle a discharged claim through all five payers in one step "
        "(SETTLEMENT.md §5, §9). The claim number is the idempotency key: the same claim again "
        "returns the stored result. Insured when an enrollment of the year is recorded; "
        "uninsured only with insured: false; neither is PRECONDITION_FAILED. A discharge after "
        "today (China time) is BAD_INPUT; a closed year or a reversed claim number is CONFLICT."
    )
    async def settle_claim(
        self, info: strawberry.Info[Context, None], input: Annotated[SettleClaimInput, INPUT]
    ) -> Settlement | None:
        state = await settlement.settle(
            info.context,
            settlement.ClaimInput(
                id_number=input.id_number,
                visit=Visit(
                    id=input.claim_number,
                    type=input.type,
                    hospital_level=input.hospital_level,
                    admission_date=input.admission_date,
                    discharge_date=input.discharge_date or input.admission_date,
                    total_cost=input.total_cost,
                    policy_scope_cost=input.policy_scope_cost,
                    referral_compliant=input.referral_compliant,
                    in_province=input.in_province,
                    diagnosis=input.diagnosis,
                    special_treatment_hospital=input.special_treatment_hospital,
                    reported=None if input.reported is None else input.reported.engine(),
                ),
                carrier=input.carrier,
                hospital_code=input.hospital_code,
                insured=input.insured,
            ),
        )
        return _settlement(state)

    @strawberry.mutation(
        description="Cancel a settlement (refund, 追回) and re-settle the later visits of its "
        "year with adjustments."
    )
    async def reverse_settlement(
        self,
        info: strawberry.Info[Context, None],
        claim_number: Annotated[str, CLAIM_NUMBER],
        reason: Annotated[str, strawberry.argument(description="Why (退费, 冲销); audited.")],
    ) -> ReverseSettlementPayload | None:
        state, consequences = await settlement.reverse(info.context, claim_number, reason)
        return ReverseSettlementPayload.of(state, consequences)

    @strawberry.mutation(
        description="Settle hypothetical visits of a hypothetical person; nothing is read or "
        "stored."
    )
    def simulate_settlement(
        self, info: strawberry.Info[Context, None], input: Annotated[SimulateSettlementInput, INPUT]
    ) -> Simulation | None:
        person, visits = input.engine()
        results = settle_visits(info.context.policies, person, visits)
        return Simulation(visits=[SimulatedVisit.of(r) for r in results])

    @strawberry.mutation(
        description="Medical insurance decides a pending recovery (SETTLEMENT.md §9.4): RECOVER "
        "stores a RECOVERY event of negative lines and a receivable from the person; WAIVE (a "
        "reason is required) lets the payment stand. CONFLICT when no longer pending."
    )
    async def decide_recovery(
        self,
        info: strawberry.Info[Context, None],
        id: Annotated[strawberry.ID, strawberry.argument(description="The recovery's id.")],
        decision: Annotated[RecoveryDecision, strawberry.argument(description="RECOVER or WAIVE.")],
        reason: Annotated[
            str | None, strawberry.argument(description="Why; required to WAIVE.")
        ] = None,
    ) -> Recovery | None:
        row = await recoveries.decide(info.context, id, decision.value, reason)
        numbers = await recoveries.claim_numbers(info.context, [row])
        return Recovery.from_model(row, numbers[row.claim_id])

    @strawberry.mutation(
        description="Close a settlement year for a policy's region, e.g. 510400 and 2025 "
        "(SETTLEMENT.md §9.5): refused while a recovery of that year is pending; afterwards its "
        "claims are never re-run, settled or reversed, and late news is only listed (lateNews)."
    )
    async def close_settlement_year(
        self,
        info: strawberry.Info[Context, None],
        region_code: Annotated[
            str, strawberry.argument(description="The policy's region code, e.g. 510400.")
        ],
        year: Annotated[int, strawberry.argument(description="The settlement year to close.")],
    ) -> SettlementYearClosing | None:
        row = await closings.close_year(info.context, region_code, year)
        return SettlementYearClosing.from_model(row)

    @strawberry.mutation(description="The carrier acknowledges receipt of a claim it carries.")
    async def acknowledge_claim(
        self, info: strawberry.Info[Context, None], claim_number: Annotated[str, CLAIM_NUMBER]
    ) -> Claim | None:
        return Claim.from_model(await claims.acknowledge(info.context, claim_number))

    @strawberry.mutation(
        description="Close an OPEN or ACKNOWLEDGED high-cost alert with a free-text note "
        "(status CLOSED).",
        deprecation_reason="Free text links nothing: use acknowledgeAlert, then recogniseAlert "
        "(with the identity or flag record) or rejectAlert (with a reason).",
    )
    async def resolve_alert(
        self,
        info: strawberry.Info[Context, None],
        id: Annotated[strawberry.ID, strawberry.argument(description="The alert's id.")],
        resolution: Annotated[
            str,
            strawberry.argument(
                description="What was done (assistance granted, not eligible, …), ≤ 500 characters."
            ),
        ],
    ) -> HighCostAlert | None:
        row = await alerts.act(info.context, id, Action.CLOSE, reason=resolution)
        return HighCostAlert.from_model(row)

    @strawberry.mutation(
        description="An assessing department takes up an OPEN high-cost alert (核查): "
        "ACKNOWLEDGED, and that department decides it. CONFLICT naming the state otherwise."
    )
    async def acknowledge_alert(
        self, info: strawberry.Info[Context, None], id: Annotated[strawberry.ID, ALERT_ID]
    ) -> HighCostAlert | None:
        return HighCostAlert.from_model(await alerts.act(info.context, id, Action.ACKNOWLEDGE))

    @strawberry.mutation(
        description="The assessing department recognised the person (认定): the ACKNOWLEDGED alert "
        "becomes RECOGNISED, linked to the identity or monitoring-flag record (of this person; "
        "give exactly one). Recording an assisted category for the person does this by itself."
    )
    async def recognise_alert(
        self,
        info: strawberry.Info[Context, None],
        id: Annotated[strawberry.ID, ALERT_ID],
        identity_id: Annotated[strawberry.ID | None, IDENTITY_ID] = None,
        flag_id: Annotated[strawberry.ID | None, FLAG_ID] = None,
    ) -> HighCostAlert | None:
        row = await alerts.act(
            info.context, id, Action.RECOGNISE, identity_id=identity_id, flag_id=flag_id
        )
        return HighCostAlert.from_model(row)

    @strawberry.mutation(
        description="The assessing department decided not to recognise the person (不予认定): the "
        "ACKNOWLEDGED alert becomes REJECTED with the reason and the department."
    )
    async def reject_alert(
        self,
        info: strawberry.Info[Context, None],
        id: Annotated[strawberry.ID, ALERT_ID],
        reason: Annotated[str, REASON],
    ) -> HighCostAlert | None:
        row = await alerts.act(info.context, id, Action.REJECT, reason=reason)
        return HighCostAlert.from_model(row)

    @strawberry.mutation(
        description="受理: record a person's application for assistance at the caller's window; "
        "it is routed (分办转办) to the department that recognises the category (OPEN)."
    )
    async def submit_application(
        self,
        info: strawberry.Info[Context, None],
        input: Annotated[
            SubmitApplicationInput, strawberry.argument(description="The application.")
        ],
    ) -> Application | None:
        row = await applications.submit(
            info.context, input.id_number, input.category, input.statement
        )
        return Application.from_model(row)

    @strawberry.mutation(
        description="The department an application was routed to takes it up (ACKNOWLEDGED)."
    )
    async def acknowledge_application(
        self, info: strawberry.Info[Context, None], id: Annotated[strawberry.ID, APPLICATION_ID]
    ) -> Application | None:
        row = await applications.act(info.context, id, Action.ACKNOWLEDGE)
        return Application.from_model(row)

    @strawberry.mutation(
        description="The routed department recognised the applicant: RECOGNISED, linked to the "
        "identity or monitoring-flag record it recorded (give exactly one); recording the "
        "category applied for does this by itself. Fed back to the receiving window."
    )
    async def recognise_application(
        self,
        info: strawberry.Info[Context, None],
        id: Annotated[strawberry.ID, APPLICATION_ID],
        identity_id: Annotated[strawberry.ID | None, IDENTITY_ID] = None,
        flag_id: Annotated[strawberry.ID | None, FLAG_ID] = None,
        reason: Annotated[
            str | None,
            strawberry.argument(description="Optional note (≤ 500 characters)."),
        ] = None,
    ) -> Application | None:
        row = await applications.act(
            info.context,
            id,
            Action.RECOGNISE,
            identity_id=identity_id,
            flag_id=flag_id,
            reason=reason,
        )
        return Application.from_model(row)

    @strawberry.mutation(
        description="The routed department decided not to recognise the applicant: REJECTED with "
        "the reason, fed back to the receiving window (结果反馈)."
    )
    async def reject_application(
        self,
        info: strawberry.Info[Context, None],
        id: Annotated[strawberry.ID, APPLICATION_ID],
        reason: Annotated[str, REASON],
    ) -> Application | None:
        row = await applications.act(info.context, id, Action.REJECT, reason=reason)
        return Application.from_model(row)

    # -- webhooks (schema/webhook.py, resolvers/webhooks.py) ----------------------------------

    @strawberry.mutation(
        description="Register an endpoint for change notifications on behalf of the caller's "
        "department and organisation (deliveries read with the token's regions and purpose). "
        "BAD_INPUT for a bad url, no events, an event the department may not read, or a secret "
        "not of the whsec_ form."
        " BAD_INPUT (url) too for a receiver the egress rules refuse; CONFLICT when the "
        "organisation holds MEDGW_WEBHOOKS_PER_ORG webhooks already."
    )
    async def register_webhook(
        self,
        info: strawberry.Info[Context, None],
        input: Annotated[webhook.RegisterWebhookInput, INPUT],
    ) -> webhook.Webhook | None:
        row = await webhooks.register(
            info.context, input.url, [e.value for e in input.events], input.secret
        )
        return webhook.Webhook.from_model(row)

    @strawberry.mutation(
        description="Delete one of the caller's webhooks (its deliveries with it) and answer it "
        "as it was; NOT_FOUND otherwise."
    )
    async def delete_webhook(
        self,
        info: strawberry.Info[Context, None],
        id: Annotated[strawberry.ID, strawberry.argument(description="The webhook's id.")],
    ) -> webhook.Webhook | None:
        return webhook.Webhook.from_model(await webhooks.delete(info.context, id))

    @strawberry.mutation(
        description="Send a delivery again (a dead letter, or one already delivered): pending, "
        "due now, attempts counted afresh."
    )
    async def redeliver_webhook(
        self,
        info: strawberry.Info[Context, None],
        id: Annotated[strawberry.ID, strawberry.argument(description="The delivery's id.")],
    ) -> webhook.WebhookDelivery | None:
        return webhook.WebhookDelivery.from_model(await webhooks.redeliver(info.context, id))
