"""Beneficiaries and what the departments record about them: identities, flags, enrollments,
claims (the visits billed by hospitals, SETTLEMENT.md §8) and high-cost alerts (主动发现).

One module because the types link both ways (a person's claims, a claim's person): the
policies of the graph stay in one place and no module imports another that imports it back."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Self, TypeVar

import strawberry

from gateway.storage import models
from policies.errors import NoPolicyInForce
from policies.settlement.categories import CategoryRecord
from policies.settlement.engine import preferential_on
from resolvers import alerts
from resolvers.claims import BY_ID
from resolvers.loaders import ClaimPage
from resolvers.pages import Page
from schema.amounts import ZERO, Amounts, amounts
from schema.enums import BasicScheme, Category, Gender, HospitalLevel, VisitType, described
from schema.pagination import AFTER, FIRST, Connection, after_key, check_first, connection

if TYPE_CHECKING:
    from resolvers.context import Context
    from schema.settlement import Settlement, SettlementEvent


YEAR = strawberry.argument(description="Only claims of this settlement year (admission year).")


@strawberry.type(description="A recognised category (身份) of a person, with its validity.")
class Identity:
    id: strawberry.ID = strawberry.field(
        description="Opaque identifier of the record (recogniseAlert and recogniseApplication "
        "take it as identityId, or flagId for a monitoring flag)."
    )
    category: Category = strawberry.field(description="The category recognised.")
    valid_from: date = strawberry.field(
        description="First day it holds (China time; at most today when recorded)."
    )
    valid_to: date | None = strawberry.field(description="Null while still valid.")
    reference: str = strawberry.field(description="Number of the recognition decision.")
    decided_on: date | None = strawberry.field(
        description="When the latest change (the end, once ended) was decided (China time)."
    )
    department: str = strawberry.field(description="The recognising department.")
    org: str = strawberry.field(description="The organisation (of the token) that recorded it.")
    recorded_at: datetime = strawberry.field(description="When the gateway recorded it.")
    beneficiary_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_model(cls, m: models.Identity | models.MonitoringFlag) -> Self:
        return cls(
            id=strawberry.ID(str(m.id)),
            category=Category(m.category),
            valid_from=m.valid_from,
            valid_to=m.valid_to,
            reference=m.reference,
            decided_on=m.decided_on,
            department=m.department,
            org=m.org,
            recorded_at=m.recorded_at,
            beneficiary_id=m.beneficiary_id,
        )


@strawberry.type(
    description="A poverty-monitoring flag (防止返贫监测 etc.) of rural revitalisation."
)
class MonitoringFlag(Identity):
    pass


@strawberry.type(description="资助参保: how the year's individual contribution is paid.")
class SubsidySplit:
    policy: str | None = strawberry.field(
        description="The policy whose rules split the contribution; null when no assistance "
        "policy covers the region in the year: enrolling does not depend on one, nothing is "
        "subsidised and the individual pays the whole contribution."
    )
    category: Category | None = strawberry.field(
        description="The subsidised category that won; null when none is held (or no policy)."
    )
    assistance_fund: Decimal = strawberry.field(
        description="Paid by the medical-assistance fund (医疗救助基金), yuan."
    )
    finance: Decimal = strawberry.field(description="Paid by public finance (财政补贴), yuan.")
    individual: Decimal = strawberry.field(description="Left to the person (个人缴费), yuan.")


@strawberry.type(description="Enrollment in the resident basic medical insurance for one year.")
class Enrollment:
    year: int = strawberry.field(description="The insurance year (calendar year).")
    scheme: BasicScheme = strawberry.field(
        description="RESIDENT (城乡居民医保) or EMPLOYEE (职工医保)."
    )
    contribution: Decimal = strawberry.field(
        description="The individual contribution of the year (个人缴费标准), yuan."
    )
    inclusive_commercial: bool = strawberry.field(
        description="Also enrolled in the region's inclusive commercial plan (惠民保)."
    )
    enrolled_on: date = strawberry.field(
        description="Enrollment date (China time): the categories held on it decide the subsidy."
    )
    subsidy: SubsidySplit = strawberry.field(
        description="资助参保: who pays the contribution (SETTLEMENT.md §7)."
    )
    beneficiary_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_model(cls, m: models.Enrollment) -> Enrollment:
        return cls(
            year=m.year,
            scheme=BasicScheme(m.scheme),
            contribution=m.contribution,
            inclusive_commercial=m.inclusive_commercial,
            enrolled_on=m.enrolled_on,
            subsidy=SubsidySplit(
                policy=m.subsidy_policy,
                category=Category(m.subsidy_category) if m.subsidy_category else None,
                assistance_fund=m.subsidy_assistance_fund,
                finance=m.subsidy_finance,
                individual=m.subsidy_individual,
            ),
            beneficiary_id=m.beneficiary_id,
        )


@strawberry.type(description="What a person's year cost and who paid it (the ledger).")
class YearlySummary(Amounts):
    year: int = strawberry.field(description="The settlement year (year of admission).")
    visits: int = strawberry.field(description="Settled claims (not reversed).")
    total_cost: Decimal = strawberry.field(description="总费用 of those claims, yuan.")

    @classmethod
    def of(cls, year: int, m: models.Ledger | None) -> YearlySummary:
        if m is None:
            return cls(year=year, visits=0, total_cost=ZERO, **amounts({}, ZERO))
        return cls(
            year=year,
            visits=m.visits,
            total_cost=m.total_cost,
            **amounts(m.paid(), m.out_of_pocket),
        )


async def person_of(
    info: strawberry.Info[Context, None], beneficiary_id: uuid.UUID
) -> Beneficiary | None:
    """The person a claim or an alert is about, through the loader (and the row rules)."""
    row = await info.context.loaders.beneficiaries.load(beneficiary_id)
    return Beneficiary.from_model(row) if row else None


@strawberry.type(description="A person known to the gateway.")
class Beneficiary:
    id: strawberry.ID = strawberry.field(description="Opaque identifier.")
    id_number: str = strawberry.field(description="Resident ID number (身份证号).")
    name: str = strawberry.field(description="Full name (姓名) as registered.")
    gender: Gender = strawberry.field(description="性别, as recorded.")
    birth_date: date = strawberry.field(
        description="出生日期; by default the one the ID number encodes."
    )
    region_code: str = strawberry.field(description="6-digit administrative region code.")
    beneficiary_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_model(cls, m: models.Beneficiary) -> Beneficiary:
        return cls(
            id=strawberry.ID(str(m.id)),
            id_number=m.id_number,
            name=m.name,
            gender=Gender(m.gender),
            birth_date=m.birth_date,
            region_code=m.region_code,
            beneficiary_id=m.id,
        )

    @strawberry.field(
        description="Year of birth (出生年份): what an insurer may know of the birth date."
    )
    def birth_year(self) -> int:
        return self.birth_date.year

    @strawberry.field(description="Categories recognised by civil affairs and similar bodies.")
    async def identities(self, info: strawberry.Info[Context, None]) -> list[Identity]:
        rows = await info.context.loaders.identities.load(self.beneficiary_id)
        return [Identity.from_model(r) for r in rows]

    @strawberry.field(description="Flags of poverty monitoring (rural revitalisation).")
    async def monitoring_flags(self, info: strawberry.Info[Context, None]) -> list[MonitoringFlag]:
        rows = await info.context.loaders.monitoring_flags.load(self.beneficiary_id)
        return [MonitoringFlag.from_model(r) for r in rows]

    @strawberry.field(
        description="Whether a preferential tilt (倾斜支付) applies to the person's category on "
        "a date (default today), without saying which category."
    )
    async def preferential_treatment(
        self,
        info: strawberry.Info[Context, None],
        on: Annotated[
            date | None,
            strawberry.argument(description="The date asked about (China time; default today)."),
        ] = None,
    ) -> bool:
        day = on or info.context.settings.today()
        identities = await info.context.loaders.identities.load(self.beneficiary_id)
        flags = await info.context.loaders.monitoring_flags.load(self.beneficiary_id)
        records = [
            CategoryRecord(Category(r.category), r.valid_from, r.valid_to)
            for r in [*identities, *flags]
        ]
        try:
            policy = info.context.policies.in_force(self.region_code, day)
        except NoPolicyInForce:
            return False
        return preferential_on(policy, records, day)

    @strawberry.field(description="Totals of a settlement year (zeros when nothing settled).")
    async def yearly_summary(
        self,
        info: strawberry.Info[Context, None],
        year: Annotated[int, strawberry.argument(description="The settlement year.")],
    ) -> YearlySummary:
        row = await info.context.loaders.ledgers.load((self.beneficiary_id, year))
        return YearlySummary.of(year, row)

    @strawberry.field(description="High-cost alerts about this person (主动发现).")
    async def high_cost_alerts(self, info: strawberry.Info[Context, None]) -> list[HighCostAlert]:
        rows = await info.context.loaders.alerts.load(self.beneficiary_id)
        return [HighCostAlert.from_model(r) for r in rows]

    @strawberry.field(description="Basic-insurance enrollments, one per year.")
    async def enrollments(self, info: strawberry.Info[Context, None]) -> list[Enrollment]:
        rows = await info.context.loaders.enrollments.load(self.beneficiary_id)
        return [Enrollment.from_model(r) for r in rows]

    @strawberry.field(description="Claims (visits), oldest first.")
    async def claims(
        self,
        info: strawberry.Info[Context, None],
        year: Annotated[int | None, YEAR] = None,
        first: Annotated[int, FIRST] = 20,
        after: Annotated[str | None, AFTER] = None,
    ) -> Connection[Claim]:
        loaders = info.context.loaders
        key = after_key("claim", BY_ID, after)
        page = ClaimPage(
            beneficiary_id=self.beneficiary_id,
            year=year,
            first=check_first(first, info.context.settings.max_page_size) + 1,
            after=None if key is None else key[0],
        )
        rows = await loaders.claim_pages.load(page)
        counted = (self.beneficiary_id, year)
        found = Page(rows, lambda: loaders.claim_counts.load(counted))
        return connection(found, first, "claim", Claim.from_model, BY_ID.key, after)


@strawberry.type(description="One visit (a stay or an outpatient visit) as billed.")
class Claim:
    claim_number: str = strawberry.field(
        description="The claim's number (结算单号), unique; the idempotency key of settleClaim."
    )
    year: int = strawberry.field(
        description="Settlement year: the calendar year of the admission date (SETTLEMENT.md §3)."
    )
    type: VisitType = strawberry.field(description="住院, 门诊慢特病 or 普通门诊.")
    hospital_level: HospitalLevel | None = strawberry.field(
        description="Grade of the hospital (null when not given)."
    )
    hospital_code: str | None = strawberry.field(
        description="The hospital's code (定点医疗机构编码), as the hospital sent it."
    )
    admission_date: date = strawberry.field(description="入院日期 (China time).")
    discharge_date: date = strawberry.field(
        description="出院日期 (China time); the admission date for an outpatient visit."
    )
    total_cost: Decimal = strawberry.field(description="总费用, yuan.")
    policy_scope_cost: Decimal = strawberry.field(description="政策范围内费用.")
    referral_compliant: bool = strawberry.field(
        description="按规定转诊: false means no assistance payer where the policy requires "
        "compliance (SETTLEMENT.md §5)."
    )
    in_province: bool = strawberry.field(
        description="省内就医: treated within the province (a condition of 倾斜救助 in 攀枝花)."
    )
    diagnosis: str | None = strawberry.field(description="ICD-10 code.")
    special_treatment_hospital: bool = strawberry.field(
        description="A designated hospital for 大病专项救治 (湖南 三)."
    )
    carrier: str | None = strawberry.field(description="The insurer carrying the claim.")
    reversed: bool = strawberry.field(description="Reversed (冲销) by reverseSettlement.")
    acknowledged: bool = strawberry.field(description="Acknowledged by its carrier.")
    claim_id: strawberry.Private[int]
    beneficiary_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="What the claim has been paid (null before settlement).")
    async def settlement(
        self, info: strawberry.Info[Context, None]
    ) -> Annotated[Settlement, strawberry.lazy("schema.settlement")] | None:
        from schema.settlement import Settlement

        events = await info.context.loaders.settlements.load((self.claim_id, self.year))
        if not events:
            return None
        lines = await info.context.loaders.lines.load_many([(e.id, e.year) for e in events])
        return Settlement.of(
            self.claim_number, events, {e.id: ls for e, ls in zip(events, lines, strict=True)}
        )

    @strawberry.field(description="The settlement events of the claim, oldest first.")
    async def settlements(
        self, info: strawberry.Info[Context, None]
    ) -> list[Annotated[SettlementEvent, strawberry.lazy("schema.settlement")]]:
        from schema.settlement import SettlementEvent

        events = await info.context.loaders.settlements.load((self.claim_id, self.year))
        lines = await info.context.loaders.lines.load_many([(e.id, e.year) for e in events])
        return [
            SettlementEvent.of(self.claim_number, e, ls)
            for e, ls in zip(events, lines, strict=True)
        ]

    @strawberry.field(
        description="Whether the claim's current settlement applied a preferential tilt "
        "(倾斜支付), without saying which category; null before settlement."
    )
    async def preferential_treatment(self, info: strawberry.Info[Context, None]) -> bool | None:
        settlement = await self.settlement(info)
        return None if settlement is None else settlement.preferential_treatment()

    @strawberry.field(description="The person of the claim.")
    async def beneficiary(self, info: strawberry.Info[Context, None]) -> Beneficiary | None:
        return await person_of(info, self.beneficiary_id)

    @classmethod
    def from_model(cls, m: models.Claim) -> Claim:
        return cls(
            claim_number=m.claim_number,
            year=m.year,
            type=VisitType(m.type),
            hospital_level=HospitalLevel(m.hospital_level) if m.hospital_level else None,
            hospital_code=m.hospital_code,
            admission_date=m.admission_date,
            discharge_date=m.discharge_date,
            total_cost=m.total_cost,
            policy_scope_cost=m.policy_scope_cost,
            referral_compliant=m.referral_compliant,
            in_province=m.in_province,
            diagnosis=m.diagnosis,
            special_treatment_hospital=m.special_treatment_hospital,
            carrier=m.carrier,
            reversed=m.reversed_at is not None,
            acknowledged=m.acknowledged_at is not None,
            claim_id=m.id,
            beneficiary_id=m.beneficiary_id,
        )


class ClaimOrder(StrEnum):
    ID = "ID"
    ADMISSION_DATE_ASC = "ADMISSION_DATE_ASC"
    ADMISSION_DATE_DESC = "ADMISSION_DATE_DESC"


described(
    ClaimOrder,
    "The order of a page of claims; ties are broken by the claim's id, so the order is total "
    "and cursors stay exact.",
    {
        ClaimOrder.ID: "As recorded (the default): oldest record first.",
        ClaimOrder.ADMISSION_DATE_ASC: "By admission date (入院日期), earliest first.",
        ClaimOrder.ADMISSION_DATE_DESC: "By admission date (入院日期), latest first.",
    },
)


class AlertOrder(StrEnum):
    ID = "ID"
    OUT_OF_POCKET_DESC = "OUT_OF_POCKET_DESC"
    OUT_OF_POCKET_ASC = "OUT_OF_POCKET_ASC"


class AlertStatus(StrEnum):
    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    RECOGNISED = "RECOGNISED"
    REJECTED = "REJECTED"
    CLOSED = "CLOSED"


described(
    AlertStatus,
    "Where a high-cost alert (主动发现) or an application (依申请救助) stands; the allowed moves "
    "are a table (resolvers/lifecycle.py): OPEN → ACKNOWLEDGED → RECOGNISED or REJECTED; "
    "RECOGNISED automatically once the person is recognised by any department; an alert is "
    "CLOSED when the out-of-pocket falls back under the threshold and OPEN again if it rises "
    "above it later.",
    {
        AlertStatus.OPEN: "Raised or received; nobody has taken it up yet (待核查 / 已受理).",
        AlertStatus.ACKNOWLEDGED: "Taken up by an assessing department (核查中 / 已转办).",
        AlertStatus.RECOGNISED: "The person was recognised (认定): linked to the identity or "
        "monitoring-flag record.",
        AlertStatus.REJECTED: "The assessing department decided not to recognise, with a reason "
        "(不予认定).",
        AlertStatus.CLOSED: "Closed without a decision: the out-of-pocket is no longer above the "
        "threshold (or closed by the deprecated resolveAlert with its note).",
    },
)
described(
    AlertOrder,
    "The order of a page of high-cost alerts; ties are broken by the alert's id (in the same "
    "direction), so the order is total and cursors stay exact.",
    {
        AlertOrder.ID: "As raised (the default): oldest alert first.",
        AlertOrder.OUT_OF_POCKET_DESC: "By out-of-pocket amount (个人自付), largest first: who "
        "needs attention most.",
        AlertOrder.OUT_OF_POCKET_ASC: "By out-of-pocket amount (个人自付), smallest first.",
    },
)


@strawberry.type(
    description="An insured person whose yearly out-of-pocket passed the policy's threshold "
    "(主动发现, 攀枝花 第十八条; 主动识别, 鲁医保发 四(一)), pushed to the recognising departments."
)
class HighCostAlert:
    id: strawberry.ID = strawberry.field(
        description="Opaque identifier (acknowledgeAlert, recogniseAlert and rejectAlert take it)."
    )
    year: int = strawberry.field(description="The settlement year.")
    policy: str | None = strawberry.field(
        description="The benefit policy whose discovery rule raised it (e.g. 510400-2023)."
    )
    out_of_pocket: Decimal = strawberry.field(
        description="The person's out-of-pocket (个人自付) of the year now, yuan: kept current by "
        "every settlement, adjustment, recovery and reversal (as yearlySummary.outOfPocket)."
    )
    threshold: Decimal = strawberry.field(
        description="The policy's threshold, yuan (攀枝花 第十八条: 50% of the previous year's "
        "per-capita disposable income; 济宁: an assumed amount)."
    )
    status: AlertStatus = strawberry.field(description="Where it stands (AlertStatus).")
    acknowledged_by: str | None = strawberry.field(
        description="department/org that took it up (ACKNOWLEDGED); null before."
    )
    acknowledged_at: datetime | None = strawberry.field(description="When it was taken up.")
    assessing_department: str | None = strawberry.field(
        description="The department that assessed it: acknowledged, rejected, or recorded the "
        "recognising record."
    )
    resolution: str | None = strawberry.field(
        description="Why it was closed: the rejection's reason, the recognition, the fall under "
        "the threshold; null while open."
    )
    resolved_by: str | None = strawberry.field(
        description="department/org that decided it, or gateway for an automatic change."
    )
    resolved_at: datetime | None = strawberry.field(description="When it was decided or closed.")
    updated_at: datetime = strawberry.field(description="When it last changed (figure or state).")
    beneficiary_id: strawberry.Private[uuid.UUID]
    identity_id: strawberry.Private[int | None]
    flag_id: strawberry.Private[int | None]

    @classmethod
    def from_model(cls, m: models.HighCostAlert) -> HighCostAlert:
        return cls(
            id=strawberry.ID(str(m.id)),
            year=m.year,
            policy=m.policy,
            out_of_pocket=m.out_of_pocket,
            threshold=m.threshold,
            status=AlertStatus(m.status),
            acknowledged_by=m.acknowledged_by,
            acknowledged_at=m.acknowledged_at,
            assessing_department=m.department,
            resolution=m.resolution,
            resolved_by=m.resolved_by,
            resolved_at=m.resolved_at,
            updated_at=m.updated_at,
            beneficiary_id=m.beneficiary_id,
            identity_id=m.identity_id,
            flag_id=m.flag_id,
        )

    @strawberry.field(description="The person the alert is about.")
    async def beneficiary(self, info: strawberry.Info[Context, None]) -> Beneficiary | None:
        return await person_of(info, self.beneficiary_id)

    @strawberry.field(description="The identity record that recognised the person (RECOGNISED).")
    async def identity(self, info: strawberry.Info[Context, None]) -> Identity | None:
        return await linked_record(info, models.Identity, self.identity_id, Identity)

    @strawberry.field(description="The monitoring-flag record that recognised the person.")
    async def monitoring_flag(self, info: strawberry.Info[Context, None]) -> MonitoringFlag | None:
        return await linked_record(info, models.MonitoringFlag, self.flag_id, MonitoringFlag)


R = TypeVar("R", Identity, MonitoringFlag)


async def linked_record(
    info: strawberry.Info[Context, None],
    model: type[models.Identity] | type[models.MonitoringFlag],
    key: int | None,
    kind: type[R],
) -> R | None:
    """The linked identity or flag record (its person is the alert's, already in the rows)."""
    if key is None:
        return None
    row = await alerts.linked(info.context, model, key)
    return None if row is None else kind.from_model(row)
