"""Settlement types: what each payer paid for a claim, its history, and why."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import strawberry

from gateway.storage import models
from policies.settlement import explanation as explained
from policies.settlement.engine import CategoryRecord, Person, Reported, Visit, VisitSettlement
from policies.vocabulary import Payer
from resolvers.settlement import totals
from schema.amounts import Amounts, amounts
from schema.enums import Category, HospitalLevel, VisitType, described


@strawberry.type(description="A segment of a schedule: ratio up to a cumulative base (null: ∞).")
class Segment:
    up_to: Decimal | None = strawberry.field(
        description="Upper bound of the cumulative base, yuan (null: no bound)."
    )
    ratio: Decimal = strawberry.field(description="Share paid within the segment, 0 to 1.")


@strawberry.type(description="A policy parameter used, with its clause or 'assumed'.")
class ParameterReference:
    name: str = strawberry.field(
        name="parameter", description="The parameter's path in the policy file."
    )
    value: str = strawberry.field(description="Its value as applied (amounts in yuan).")
    clause: str | None = strawberry.field(description="Clause of the policy document.")
    assumed: bool = strawberry.field(description="Illustrative default, not from a document.")


@strawberry.type(description="One payer's part of a visit and the figures behind it.")
class PayerLine:
    payer: str = strawberry.field(
        description="basicInsurance (基本医保), criticalIllness (大病保险), inclusiveCommercial "
        "(普惠型商业健康保险), assistance (医疗救助) or secondaryAssistance (倾斜救助 / 再救助)."
    )
    applied: bool = strawberry.field(description="Whether the payer applied to the visit.")
    reason: str = strawberry.field(description="Why it applied or did not.")
    base: Decimal | None = strawberry.field(description="This visit's base for the payer.")
    year_to_date_base_before: Decimal | None = strawberry.field(
        name="baseBefore", description="Year-to-date base before."
    )
    deductible: Decimal | None = strawberry.field(description="起付线 used, yuan.")
    segments: list[Segment] = strawberry.field(description="The schedule's segments (分段比例).")
    cap: Decimal | None = strawberry.field(description="Yearly cap (null: none).")
    cap_room_before: Decimal | None = strawberry.field(
        name="roomBefore", description="Cap room before this visit."
    )
    paid: Decimal = strawberry.field(name="amount", description="Paid, rounded half up to the fen.")
    parameters: list[ParameterReference] = strawberry.field(
        name="references", description="The policy parameters used, with their clauses."
    )
    method: str | None = strawberry.field(
        description="perStay (basic inpatient), annual (cumulative over the year) or reported "
        "(taken as given from the core system, SETTLEMENT.md §5).",
    )
    notes: list[str] = strawberry.field(
        description="Tilts, waivers, candidates, caps passed by reports."
    )


@strawberry.type(description="A category record of the person and whether it counted.")
class CategoryCandidate:
    category: Category = strawberry.field(description="The category of the record.")
    valid_from: date = strawberry.field(description="First day of the record.")
    valid_to: date | None = strawberry.field(description="Last day (null: still valid).")
    counted: bool = strawberry.field(
        description="Whether it counts for the visit (its interval overlaps the stay, §4.1)."
    )
    rules: list[str] = strawberry.field(
        description="The rules that moved its interval (§4.2 end-of-month grace, §4.3 追溯)."
    )
    reason: str = strawberry.field(description="Why it counted or not.")
    decided_on: date | None = strawberry.field(
        description="When its end was decided (SETTLEMENT.md §4.2)."
    )
    insurance_stages: bool = strawberry.field(
        name="countsForInsurance",
        description="Whether it counts for basic, critical-illness and commercial insurance too "
        "(retroactivity reaches assistance only, §4.3).",
    )


@strawberry.type(
    description="A category held whose assistance schedule was computed for the visit "
    "(待遇就高 item by item, SETTLEMENT.md §4.5); the largest payment wins."
)
class AssistanceCandidate:
    category: Category = strawberry.field(description="The category whose schedule was computed.")
    paid: Decimal = strawberry.field(name="amount", description="What its schedule pays, yuan.")
    chosen: bool = strawberry.field(description="Whether this schedule was used.")


@strawberry.type(description="The visit's category and why (SETTLEMENT.md §4).")
class CategoryChoice:
    chosen: Category | None = strawberry.field(
        name="category",
        description="The visit's category (§4.6); null when none is held.",
    )
    reason: str = strawberry.field(description="Why this category.")
    records: list[CategoryCandidate] = strawberry.field(
        name="candidates", description="Every category record of the person, counted or not."
    )
    held_for_insurance: list[Category] = strawberry.field(
        description="Categories the insurance stages see (tilts, waivers)."
    )
    held_for_assistance: list[Category] = strawberry.field(
        description="Categories the assistance stages see (§4.3, §4.4)."
    )
    candidates: list[AssistanceCandidate] = strawberry.field(
        name="assistanceCandidates",
        description="The categories whose assistance schedules competed (待遇就高, §4.5).",
    )


@strawberry.type(description="Why a visit was settled the way it was.")
class Explanation:
    """The GraphQL view of ``policies.settlement.explanation.Explanation``: the resolvers return
    that model, and each field here reads the attribute of its Python name (``name=`` gives the
    GraphQL name where the two differ)."""

    category: CategoryChoice = strawberry.field(description="The visit's category and why.")
    lines: list[PayerLine] = strawberry.field(
        name="payers", description="The five payers in order (保险在先、救助在后)."
    )
    text: str = strawberry.field(description="The whole explanation as readable text.")
    reported: list[str] = strawberry.field(
        description="Insurance payers whose amounts were reported upstream and taken as given.",
    )


@strawberry.type(
    description="What a claim has been paid: its original settlement plus every "
    "adjustment and reversal since."
)
class Settlement(Amounts):
    claim_number: str = strawberry.field(description="The claim's number.")
    policy: str = strawberry.field(description="The policy applied, e.g. 510400-2023.")
    category: Category | None = strawberry.field(
        description="The visit's category (§4.6); null when none applies."
    )
    stored: strawberry.Private[Mapping[str, Any]]
    """The decisive event's explanation as stored (``{}``: none), read only when asked for."""
    beneficiary_id: strawberry.Private[uuid.UUID | None] = None

    @strawberry.field(description="Whether a preferential tilt (倾斜支付) applied.")
    def preferential_treatment(self) -> bool:
        return self._explained is not None and self._explained.preferential_treatment

    @strawberry.field(
        graphql_type=Explanation | None,
        description="Why: the decisive event's explanation (null if none was stored).",
    )
    def explanation(self) -> explained.Explanation | None:
        return self._explained

    @functools.cached_property
    def _explained(self) -> explained.Explanation | None:
        return explained.Explanation.model_validate(self.stored) if self.stored else None

    @classmethod
    def of(
        cls,
        claim_number: str,
        events: Sequence[models.Settlement],
        lines: Mapping[int, Sequence[models.SettlementLine]],
    ) -> Settlement:
        payments, out_of_pocket = totals(events, lines)
        # The newest event that settled (not a reversal) says which policy, category and why.
        decisive = next((e for e in reversed(events) if e.kind != "REVERSAL"), None)
        return cls(
            claim_number=claim_number,
            policy=decisive.policy if decisive else "",
            category=Category(decisive.category) if decisive and decisive.category else None,
            **amounts(payments, out_of_pocket),
            stored=decisive.explanation if decisive else {},
            beneficiary_id=events[0].beneficiary_id if events else None,
        )


class SettlementKind(StrEnum):
    ORIGINAL = "ORIGINAL"
    ADJUSTMENT = "ADJUSTMENT"
    REVERSAL = "REVERSAL"
    RECOVERY = "RECOVERY"


described(
    SettlementKind,
    "Original settlement, later adjustment, reversal, or recovery (追回) decided by medical "
    "insurance.",
    {
        SettlementKind.ORIGINAL: "The settlement of the claim (一站式结算).",
        SettlementKind.ADJUSTMENT: "More assistance paid after late news (追溯救助, "
        "SETTLEMENT.md §9.4).",
        SettlementKind.REVERSAL: "The whole claim cancelled (冲销, §9.6): every payer's part "
        "negated.",
        SettlementKind.RECOVERY: "Assistance taken back by medical insurance's decision (追回, "
        "§9.4).",
    },
)


@strawberry.type(description="One settlement event of a claim (amounts are this event's part).")
class SettlementEvent(Amounts):
    claim_number: str = strawberry.field(description="The claim the event belongs to (结算单号).")
    kind: SettlementKind = strawberry.field(description="What the event did.")
    reason: str | None = strawberry.field(
        description="Why (the late news, or the reversal's reason); null on the original."
    )
    created_at: datetime = strawberry.field(description="When it was stored.")
    policy: str = strawberry.field(description="The policy applied, e.g. 510400-2023.")
    category: Category | None = strawberry.field(
        description="The visit's category in this event; null when none applies."
    )
    beneficiary_id: strawberry.Private[uuid.UUID | None] = None

    @classmethod
    def of(
        cls, claim_number: str, event: models.Settlement, lines: Sequence[models.SettlementLine]
    ) -> SettlementEvent:
        payments = {Payer(line.payer): line.amount for line in lines}
        return cls(
            claim_number=claim_number,
            kind=SettlementKind(event.kind),
            reason=event.reason,
            created_at=event.created_at,
            policy=event.policy,
            category=Category(event.category) if event.category else None,
            **amounts(payments, event.out_of_pocket),
            beneficiary_id=event.beneficiary_id,
        )


@strawberry.type(description="One visit of a simulation (nothing stored).")
class SimulatedVisit(Amounts):
    id: str = strawberry.field(description="The visit's id as given.")
    policy: str = strawberry.field(description="The policy applied, e.g. 510400-2023.")
    category: Category | None = strawberry.field(
        description="The visit's category (§4.6); null when none applies."
    )
    settled: strawberry.Private[explained.Explanation]

    @strawberry.field(graphql_type=Explanation, description="Why it was settled so.")
    def explanation(self) -> explained.Explanation:
        """As a settled claim answers it: stored as JSON and read back (amounts at the precision
        they are stored with)."""
        return explained.Explanation.model_validate(self.settled.stored())

    @classmethod
    def of(cls, result: VisitSettlement) -> SimulatedVisit:
        return cls(
            id=result.visit_id,
            policy=result.policy_id,
            category=Category(result.category) if result.category else None,
            **amounts(result.payments, result.out_of_pocket),
            settled=result.explanation,
        )


@strawberry.type(description="The result of simulateSettlement, one entry per visit in order.")
class Simulation:
    visits: list[SimulatedVisit] = strawberry.field(description="One per visit, in input order.")


# Descriptions of the visit fields that settleClaim and simulateSettlement share.
VISIT_TYPE = "住院, 门诊慢特病 or 普通门诊."
HOSPITAL_LEVEL = "Hospital grade: sets the basic inpatient deductible and ratio."
ADMISSION_DATE = "入院日期 (China time): picks the policy and the settlement year (§3)."
TOTAL_COST = "总费用, yuan (two decimals at most)."
POLICY_SCOPE_COST = "政策范围内费用, yuan (at most totalCost; the rest no payer pays)."
REFERRAL_COMPLIANT = (
    "按规定转诊: false means no assistance payer where the policy requires it (§5)."
)
IN_PROVINCE = "省内就医 (a condition of 倾斜救助 in 攀枝花 第十三条)."
DIAGNOSIS = "ICD-10 code, compared upper-case without dots by prefix (N18.5 = N185)."
SPECIAL_TREATMENT_HOSPITAL = "A designated hospital for 大病专项救治 (湖南 三)."
REPORTED = "Insurance payments reported by the core system (§5), taken as given."


@strawberry.input(
    description="Insurance payments determined by the core insurance system or the insurer "
    "(来自核心系统的结算结果, SETTLEMENT.md §5), yuan: a prefix of basicInsurance → "
    "criticalIllness → inclusiveCommercial, taken as given."
)
class ReportedPaymentsInput:
    basic_insurance: Decimal | None = strawberry.field(
        default=None, description="基本医保 paid, yuan."
    )
    critical_illness: Decimal | None = strawberry.field(
        default=None, description="大病保险 paid, yuan (only with basicInsurance)."
    )
    inclusive_commercial: Decimal | None = strawberry.field(
        default=None,
        description="普惠型商业健康保险 paid, yuan (only with the two others; the person must be "
        "enrolled in the plan).",
    )

    def engine(self) -> Reported:
        return Reported(self.basic_insurance, self.critical_illness, self.inclusive_commercial)


@strawberry.input(description="The claim of a discharged patient (SETTLEMENT.md §8).")
class SettleClaimInput:
    claim_number: str = strawberry.field(description="Idempotency key of the claim.")
    id_number: str = strawberry.field(description="The patient's resident ID number (身份证号).")
    type: VisitType = strawberry.field(description=VISIT_TYPE)
    hospital_level: HospitalLevel | None = strawberry.field(
        default=None, description=HOSPITAL_LEVEL
    )
    admission_date: date = strawberry.field(description=ADMISSION_DATE)
    discharge_date: date | None = strawberry.field(
        default=None, description="Defaults to the admission date."
    )
    total_cost: Decimal = strawberry.field(description=TOTAL_COST)
    policy_scope_cost: Decimal = strawberry.field(description=POLICY_SCOPE_COST)
    referral_compliant: bool = strawberry.field(default=True, description=REFERRAL_COMPLIANT)
    in_province: bool = strawberry.field(default=True, description=IN_PROVINCE)
    diagnosis: str | None = strawberry.field(default=None, description=DIAGNOSIS)
    special_treatment_hospital: bool = strawberry.field(
        default=False, description=SPECIAL_TREATMENT_HOSPITAL
    )
    carrier: str | None = strawberry.field(
        default=None, description="The insurer carrying the critical-illness claim."
    )
    hospital_code: str | None = strawberry.field(
        default=None, description="The hospital's code (定点医疗机构编码)."
    )
    insured: bool | None = strawberry.field(
        default=None,
        description="false settles the claim as uninsured (no enrollment of the year may "
        "exist); by default the enrollment of the settlement year decides (SETTLEMENT.md §9.1).",
    )
    reported: ReportedPaymentsInput | None = strawberry.field(default=None, description=REPORTED)


@strawberry.input(description="A category record of a hypothetical person (SETTLEMENT.md §8).")
class CategoryRecordInput:
    category: Category = strawberry.field(description="The category held.")
    valid_from: date = strawberry.field(description="First day it holds.")
    valid_to: date | None = strawberry.field(default=None, description="Last day (null: open).")
    decided_on: date | None = strawberry.field(
        default=None, description="When the end was decided (§4.2); absent: on validTo."
    )


@strawberry.input(description="A hypothetical person (nothing is read from the database).")
class SimulatedPersonInput:
    region_code: str = strawberry.field(
        description="6-digit region code: picks the policy (SETTLEMENT.md §3)."
    )
    birth_date: date = strawberry.field(description="Birth date (age-dependent rules, 湖南 三).")
    insured: bool = strawberry.field(
        default=True, description="Enrolled in basic insurance (参保) in the settlement year."
    )
    inclusive_commercial: bool = strawberry.field(
        default=False, description="Enrolled in the region's inclusive commercial plan (惠民保)."
    )
    categories: list[CategoryRecordInput] = strawberry.field(
        default_factory=list, description="The person's category records (none: ordinary)."
    )


@strawberry.input(description="A hypothetical visit (SETTLEMENT.md §8); visits settle in order.")
class SimulatedVisitInput:
    id: str = strawberry.field(description="Any id, echoed in the result.")
    type: VisitType = strawberry.field(description=VISIT_TYPE)
    hospital_level: HospitalLevel | None = strawberry.field(
        default=None, description=HOSPITAL_LEVEL
    )
    admission_date: date = strawberry.field(description=ADMISSION_DATE)
    discharge_date: date | None = strawberry.field(
        default=None, description="Defaults to the admission date."
    )
    total_cost: Decimal = strawberry.field(description=TOTAL_COST)
    policy_scope_cost: Decimal = strawberry.field(description=POLICY_SCOPE_COST)
    referral_compliant: bool = strawberry.field(default=True, description=REFERRAL_COMPLIANT)
    in_province: bool = strawberry.field(default=True, description=IN_PROVINCE)
    diagnosis: str | None = strawberry.field(default=None, description=DIAGNOSIS)
    special_treatment_hospital: bool = strawberry.field(
        default=False, description=SPECIAL_TREATMENT_HOSPITAL
    )
    reported: ReportedPaymentsInput | None = strawberry.field(default=None, description=REPORTED)


@strawberry.input(description="A case in the format of SETTLEMENT.md §8.")
class SimulateSettlementInput:
    person: SimulatedPersonInput = strawberry.field(description="The hypothetical person.")
    visits: list[SimulatedVisitInput] = strawberry.field(
        description="The visits, settled one after the other on the year's ledgers."
    )

    def engine(self) -> tuple[Person, list[Visit]]:
        """The person and visits as the engine takes them; the engine validates them and names
        the field (``person.regionCode``, ``visits[0].policyScopeCost``)."""
        p = self.person
        person = Person(
            region_code=p.region_code,
            birth_date=p.birth_date,
            insured=p.insured,
            inclusive_commercial=p.inclusive_commercial,
            categories=tuple(
                CategoryRecord(c.category, c.valid_from, c.valid_to, c.decided_on)
                for c in p.categories
            ),
        )
        visits = [
            Visit(
                id=v.id,
                type=v.type,
                hospital_level=v.hospital_level,
                admission_date=v.admission_date,
                discharge_date=v.discharge_date or v.admission_date,
                total_cost=v.total_cost,
                policy_scope_cost=v.policy_scope_cost,
                referral_compliant=v.referral_compliant,
                in_province=v.in_province,
                diagnosis=v.diagnosis.strip() if v.diagnosis else None,
                special_treatment_hospital=v.special_treatment_hospital,
                reported=None if v.reported is None else v.reported.engine(),
            )
            for v in self.visits
        ]
        return person, visits
