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
from schema.enums import Category, HospitalLevel, VisitType


@strawberry.type(description="A segment of a schedule: ratio up to a cumulative base (null: ∞).")
class Segment:
    up_to: Decimal | None
    ratio: Decimal


@strawberry.type(description="A policy parameter used, with its clause or 'assumed'.")
class ParameterReference:
    name: str = strawberry.field(name="parameter")
    value: str
    clause: str | None = strawberry.field(description="Clause of the policy document.")
    assumed: bool = strawberry.field(description="Illustrative default, not from a document.")


@strawberry.type(description="One payer's part of a visit and the figures behind it.")
class PayerLine:
    payer: str
    applied: bool
    reason: str
    base: Decimal | None = strawberry.field(description="This visit's base for the payer.")
    year_to_date_base_before: Decimal | None = strawberry.field(
        name="baseBefore", description="Year-to-date base before."
    )
    deductible: Decimal | None
    segments: list[Segment]
    cap: Decimal | None = strawberry.field(description="Yearly cap (null: none).")
    cap_room_before: Decimal | None = strawberry.field(
        name="roomBefore", description="Cap room before this visit."
    )
    paid: Decimal = strawberry.field(name="amount", description="Paid, rounded half up to the fen.")
    parameters: list[ParameterReference] = strawberry.field(name="references")
    method: str | None = strawberry.field(
        description="perStay (basic inpatient), annual (cumulative over the year) or reported "
        "(taken as given from the core system, SETTLEMENT.md §5).",
    )
    notes: list[str] = strawberry.field(
        description="Tilts, waivers, candidates, caps passed by reports."
    )


@strawberry.type(description="A category record of the person and whether it counted.")
class CategoryCandidate:
    category: Category
    valid_from: date
    valid_to: date | None
    counted: bool
    rules: list[str]
    reason: str
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
    category: Category
    paid: Decimal = strawberry.field(name="amount", description="What its schedule pays, yuan.")
    chosen: bool


@strawberry.type(description="The visit's category and why (SETTLEMENT.md §4).")
class CategoryChoice:
    chosen: Category | None = strawberry.field(name="category")
    reason: str
    records: list[CategoryCandidate] = strawberry.field(name="candidates")
    held_for_insurance: list[Category] = strawberry.field(
        description="Categories the insurance stages see (tilts, waivers)."
    )
    held_for_assistance: list[Category] = strawberry.field(
        description="Categories the assistance stages see (§4.3, §4.4)."
    )
    candidates: list[AssistanceCandidate] = strawberry.field(name="assistanceCandidates")


@strawberry.type(description="Why a visit was settled the way it was.")
class Explanation:
    """The GraphQL view of ``policies.settlement.explanation.Explanation``: the resolvers return
    that model, and each field here reads the attribute of its Python name (``name=`` gives the
    GraphQL name where the two differ)."""

    category: CategoryChoice
    lines: list[PayerLine] = strawberry.field(name="payers")
    text: str
    reported: list[str] = strawberry.field(
        description="Insurance payers whose amounts were reported upstream and taken as given.",
    )


@strawberry.type(
    description="What a claim has been paid: its original settlement plus every "
    "adjustment and reversal since."
)
class Settlement(Amounts):
    claim_number: str
    policy: str
    category: Category | None
    stored: strawberry.Private[Mapping[str, Any]]
    """The decisive event's explanation as stored (``{}``: none), read only when asked for."""
    beneficiary_id: strawberry.Private[uuid.UUID | None] = None

    @strawberry.field(description="Whether a preferential tilt (倾斜支付) applied.")
    def preferential_treatment(self) -> bool:
        return self._explained is not None and self._explained.preferential_treatment

    @strawberry.field(graphql_type=Explanation | None)
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


@strawberry.enum(
    description="Original settlement, later adjustment, reversal, or recovery (追回) decided by "
    "medical insurance."
)
class SettlementKind(StrEnum):
    ORIGINAL = "ORIGINAL"
    ADJUSTMENT = "ADJUSTMENT"
    REVERSAL = "REVERSAL"
    RECOVERY = "RECOVERY"


@strawberry.type(description="One settlement event of a claim (amounts are this event's part).")
class SettlementEvent(Amounts):
    kind: SettlementKind
    reason: str | None
    created_at: datetime
    policy: str
    category: Category | None
    beneficiary_id: strawberry.Private[uuid.UUID | None] = None

    @classmethod
    def of(
        cls, event: models.Settlement, lines: Sequence[models.SettlementLine]
    ) -> SettlementEvent:
        payments = {Payer(line.payer): line.amount for line in lines}
        return cls(
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
    id: str
    policy: str
    category: Category | None
    settled: strawberry.Private[explained.Explanation]

    @strawberry.field(graphql_type=Explanation)
    def explanation(self) -> explained.Explanation:
        """As a settled claim answers it: stored as JSON and read back (amounts at the precision
        they are stored with)."""
        return explained.Explanation.model_validate(self.settled.model_dump(mode="json"))

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
    visits: list[SimulatedVisit]


@strawberry.input(
    description="Insurance payments determined by the core insurance system or the insurer "
    "(来自核心系统的结算结果, SETTLEMENT.md §5), yuan: a prefix of basicInsurance → "
    "criticalIllness → inclusiveCommercial, taken as given."
)
class ReportedPaymentsInput:
    basic_insurance: Decimal | None = None
    critical_illness: Decimal | None = None
    inclusive_commercial: Decimal | None = None

    def engine(self) -> Reported:
        return Reported(self.basic_insurance, self.critical_illness, self.inclusive_commercial)


@strawberry.input(description="The claim of a discharged patient (SETTLEMENT.md §8).")
class SettleClaimInput:
    claim_number: str = strawberry.field(description="Idempotency key of the claim.")
    id_number: str
    type: VisitType
    hospital_level: HospitalLevel | None = None
    admission_date: date
    discharge_date: date | None = strawberry.field(
        default=None, description="Defaults to the admission date."
    )
    total_cost: Decimal
    policy_scope_cost: Decimal
    referral_compliant: bool = True
    in_province: bool = True
    diagnosis: str | None = None
    special_treatment_hospital: bool = False
    carrier: str | None = strawberry.field(
        default=None, description="The insurer carrying the critical-illness claim."
    )
    hospital_code: str | None = None
    insured: bool | None = strawberry.field(
        default=None,
        description="false settles the claim as uninsured (no enrollment of the year may "
        "exist); by default the enrollment of the settlement year decides (SETTLEMENT.md §9.1).",
    )
    reported: ReportedPaymentsInput | None = None


@strawberry.input
class CategoryRecordInput:
    category: Category
    valid_from: date
    valid_to: date | None = None
    decided_on: date | None = strawberry.field(
        default=None, description="When the end was decided (§4.2); absent: on validTo."
    )


@strawberry.input(description="A hypothetical person (nothing is read from the database).")
class SimulatedPersonInput:
    region_code: str
    birth_date: date
    insured: bool = True
    inclusive_commercial: bool = False
    categories: list[CategoryRecordInput] = strawberry.field(default_factory=list)


@strawberry.input
class SimulatedVisitInput:
    id: str
    type: VisitType
    hospital_level: HospitalLevel | None = None
    admission_date: date
    discharge_date: date | None = None
    total_cost: Decimal
    policy_scope_cost: Decimal
    referral_compliant: bool = True
    in_province: bool = True
    diagnosis: str | None = None
    special_treatment_hospital: bool = False
    reported: ReportedPaymentsInput | None = None


@strawberry.input(description="A case in the format of SETTLEMENT.md §8.")
class SimulateSettlementInput:
    person: SimulatedPersonInput
    visits: list[SimulatedVisitInput]

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
