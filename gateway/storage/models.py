"""ORM models: the tables of the gateway.

Money is ``Numeric(14, 2)``/``Decimal``. Enumerated values are stored as short strings with CHECK
constraints (not native PostgreSQL enums, which make every new category a migration that cannot
run inside a transaction). The large tables (claims, settlements and their lines, audit) are
partitioned by year (migrations 0018, 0019; gateway/storage/partitions.py), and the person-scoped
ones are keyed by beneficiary id and year so that they can be distributed by beneficiary later.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from policies.vocabulary import (
    IDENTITY_CATEGORIES,
    MONITORING_FLAGS,
    HospitalLevel,
    Payer,
    VisitType,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(14, 2)


def _one_of(column: str, values: list[str]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


IDENTITY_CODES = sorted(c.value for c in IDENTITY_CATEGORIES)
FLAG_CODES = sorted(c.value for c in MONITORING_FLAGS)
VISIT_TYPES = [t.value for t in VisitType]
LEVELS = [level.value for level in HospitalLevel]
PAYERS = [p.value for p in Payer]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Beneficiary(Base):
    __tablename__ = "beneficiaries"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    gender: Mapped[str] = mapped_column(String(6))
    birth_date: Mapped[date] = mapped_column(Date)
    region_code: Mapped[str] = mapped_column(String(6))
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        CheckConstraint("gender IN ('MALE', 'FEMALE')", name="gender"),
        CheckConstraint("region_code ~ '^[0-9]{6}$'", name="region_code"),
        # Row rules filter by region prefix (LIKE '5104%'); text_pattern_ops serves LIKE
        # under any collation. The id tail makes region-filtered pages index-ordered.
        Index(
            "ix_beneficiaries_region_code_id",
            "region_code",
            "id",
            postgresql_ops={"region_code": "text_pattern_ops"},
        ),
    )


class _CategoryRecord:
    """Columns shared by identities (civil affairs and others) and monitoring flags."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    category: Mapped[str] = mapped_column(String(40))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    reference: Mapped[str] = mapped_column(String(120))
    decided_on: Mapped[date | None] = mapped_column(Date)
    """When the record's latest change (its end, once ended) was decided (SETTLEMENT.md §4.2)."""
    department: Mapped[str] = mapped_column(String(40))
    org: Mapped[str] = mapped_column(String(120))
    recorded_at: Mapped[datetime] = _now()


class Identity(_CategoryRecord, Base):
    __tablename__ = "identities"

    beneficiary_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("beneficiaries.id", ondelete="RESTRICT"), index=True
    )
    __table_args__ = (
        CheckConstraint(_one_of("category", IDENTITY_CODES), name="category"),
        CheckConstraint("valid_to IS NULL OR valid_from <= valid_to", name="interval"),
        Index("ix_identities_category_beneficiary_id", "category", "beneficiary_id"),
    )


class MonitoringFlag(_CategoryRecord, Base):
    __tablename__ = "monitoring_flags"

    beneficiary_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("beneficiaries.id", ondelete="RESTRICT"), index=True
    )
    __table_args__ = (
        CheckConstraint(_one_of("category", FLAG_CODES), name="category"),
        CheckConstraint("valid_to IS NULL OR valid_from <= valid_to", name="interval"),
        Index("ix_monitoring_flags_category_beneficiary_id", "category", "beneficiary_id"),
    )


class Enrollment(Base):
    __tablename__ = "enrollments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    beneficiary_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("beneficiaries.id"))
    year: Mapped[int] = mapped_column(SmallInteger)
    scheme: Mapped[str] = mapped_column(String(12), default="RESIDENT", server_default="RESIDENT")
    """RESIDENT (城乡居民医保, computed from the policy files) or EMPLOYEE (职工医保, reported)."""
    contribution: Mapped[Decimal] = mapped_column(Money)
    inclusive_commercial: Mapped[bool] = mapped_column(Boolean)
    enrolled_on: Mapped[date] = mapped_column(Date)
    subsidy_policy: Mapped[str | None] = mapped_column(String(40))
    subsidy_category: Mapped[str | None] = mapped_column(String(40))
    subsidy_assistance_fund: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    subsidy_finance: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    subsidy_individual: Mapped[Decimal] = mapped_column(Money)
    department: Mapped[str] = mapped_column(String(40))
    org: Mapped[str] = mapped_column(String(120))
    recorded_at: Mapped[datetime] = _now()

    __table_args__ = (
        UniqueConstraint("beneficiary_id", "year"),
        CheckConstraint("contribution >= 0", name="contribution"),
        CheckConstraint("scheme IN ('RESIDENT', 'EMPLOYEE')", name="scheme"),
    )


class Claim(Base):
    """One visit (stay or outpatient visit) as billed by the hospital: SETTLEMENT.md §8."""

    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(BigInteger, autoincrement=True)
    """Unique on its own (one sequence); the key adds the partition key and the person."""
    claim_number: Mapped[str] = mapped_column(String(64), index=True)
    """Unique across every partition through :class:`ClaimNumber` (the database registers it)."""
    beneficiary_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("beneficiaries.id"))
    year: Mapped[int] = mapped_column(SmallInteger)
    """The settlement year: the partition key (migration 0019)."""
    type: Mapped[str] = mapped_column(String(24))
    hospital_level: Mapped[str | None] = mapped_column(String(12))
    hospital_code: Mapped[str | None] = mapped_column(String(40))
    admission_date: Mapped[date] = mapped_column(Date)
    discharge_date: Mapped[date] = mapped_column(Date)
    total_cost: Mapped[Decimal] = mapped_column(Money)
    policy_scope_cost: Mapped[Decimal] = mapped_column(Money)
    referral_compliant: Mapped[bool] = mapped_column(Boolean)
    in_province: Mapped[bool] = mapped_column(Boolean)
    diagnosis: Mapped[str | None] = mapped_column(String(20))
    special_treatment_hospital: Mapped[bool] = mapped_column(Boolean)
    carrier: Mapped[str | None] = mapped_column(String(120))
    insured: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    """Settled as insured (an enrollment of the year) or explicitly uninsured (§9.1)."""
    inclusive_commercial: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="false"
    )
    """Whether the enrollment of the year included the inclusive commercial plan."""
    reported: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    """Insurance amounts reported by the core system (§5), as given; null when computed."""
    policy: Mapped[str | None] = mapped_column(String(40))
    """The benefit policy the claim was settled under (its region closes years, §9.5)."""
    # Hash of the settled content: the same claim number with other content is a conflict.
    content_hash: Mapped[str] = mapped_column(String(64))
    reversed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reversal_reason: Mapped[str | None] = mapped_column(String(500))
    # The carrier's acknowledgement that it received the claim (the insurer's only write).
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        # Partitioned by year; keyed for distribution by beneficiary id (migration 0019).
        PrimaryKeyConstraint("beneficiary_id", "year", "id"),
        CheckConstraint(_one_of("type", VISIT_TYPES), name="type"),
        CheckConstraint(
            f"hospital_level IS NULL OR {_one_of('hospital_level', LEVELS)}", name="level"
        ),
        CheckConstraint("admission_date <= discharge_date", name="stay"),
        CheckConstraint("0 <= policy_scope_cost AND policy_scope_cost <= total_cost", name="cost"),
        Index("ix_claims_id", "id"),
        Index("ix_claims_carrier_id", "carrier", "id"),
    )


class Settlement(Base):
    """One settlement event of a claim: the original, a later adjustment, or a reversal.

    History is never rewritten: the amounts of a claim are the sum of its settlements.
    """

    __tablename__ = "settlements"

    id: Mapped[int] = mapped_column(BigInteger, autoincrement=True)
    claim_id: Mapped[int] = mapped_column(BigInteger, index=True)
    beneficiary_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("beneficiaries.id"))
    year: Mapped[int] = mapped_column(SmallInteger)
    """The claim's settlement year: the partition key (migration 0019)."""
    kind: Mapped[str] = mapped_column(String(12))
    policy: Mapped[str] = mapped_column(String(40))
    category: Mapped[str | None] = mapped_column(String(40))
    out_of_pocket: Mapped[Decimal] = mapped_column(Money)
    reason: Mapped[str | None] = mapped_column(String(500))
    explanation: Mapped[dict[str, Any]] = mapped_column(JSONB)
    department: Mapped[str] = mapped_column(String(40))
    org: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        PrimaryKeyConstraint("beneficiary_id", "year", "id"),
        # What fund entries (no beneficiary id) reference; and the index of lookups by id.
        UniqueConstraint("id", "year"),
        ForeignKeyConstraint(
            ["claim_id", "year", "beneficiary_id"],
            ["claims.id", "claims.year", "claims.beneficiary_id"],
        ),
        CheckConstraint("kind IN ('ORIGINAL', 'ADJUSTMENT', 'REVERSAL', 'RECOVERY')", name="kind"),
    )


class SettlementLine(Base):
    """What one payer pays in one settlement (negative in adjustments that recover money)."""

    __tablename__ = "settlement_lines"

    settlement_id: Mapped[int] = mapped_column(BigInteger)
    payer: Mapped[str] = mapped_column(String(24))
    amount: Mapped[Decimal] = mapped_column(Money)
    beneficiary_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    """The event's (migration 0019): the line is distributed and partitioned with its event.
    Filled from the event when a line object is flushed without it (:func:`_line_of_event`)."""
    year: Mapped[int] = mapped_column(SmallInteger)
    """The event's settlement year: the partition key (migration 0019)."""

    __table_args__ = (
        PrimaryKeyConstraint("settlement_id", "payer", "year", "beneficiary_id"),
        ForeignKeyConstraint(
            ["settlement_id", "year", "beneficiary_id"],
            ["settlements.id", "settlements.year", "settlements.beneficiary_id"],
            ondelete="CASCADE",
        ),
        CheckConstraint(_one_of("payer", PAYERS), name="payer"),
    )


class ClaimNumber(Base):
    """The register of claim numbers: each claim's number, once (migration 0019). The number is
    the settlement's idempotency key (the same number with other content is a conflict, with
    the same content the same answer); partitioned ``claims`` cannot hold a unique key without
    the year, so its uniqueness lives here. Written by the database whenever a claim is
    inserted, however (the trigger ``claims_register_number``, migration 0019)."""

    __tablename__ = "claim_numbers"

    claim_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    claim_id: Mapped[int] = mapped_column(BigInteger)
    year: Mapped[int] = mapped_column(SmallInteger)
    beneficiary_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))

    __table_args__ = (
        ForeignKeyConstraint(
            ["claim_id", "year", "beneficiary_id"],
            ["claims.id", "claims.year", "claims.beneficiary_id"],
        ),
    )


@event.listens_for(SettlementLine, "before_insert")
def _line_of_event(mapper: Any, connection: Connection, line: SettlementLine) -> None:
    """A line object flushed without its event's person and year gets them from the event (one
    read; the gateway's writers give them)."""
    if line.year is None or line.beneficiary_id is None:
        events = Settlement.__table__.c
        line.beneficiary_id, line.year = connection.execute(
            select(events.beneficiary_id, events.year).where(events.id == line.settlement_id)
        ).one()


class Ledger(Base):
    """The running totals of one person in one year; its row lock serialises settlement."""

    __tablename__ = "ledgers"

    beneficiary_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("beneficiaries.id"), primary_key=True
    )
    year: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSONB)
    basic_insurance: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    critical_illness: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    inclusive_commercial: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    assistance: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    secondary_assistance: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    total_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    out_of_pocket: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    visits: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = _now()

    def paid(self) -> dict[Payer, Decimal]:
        """What each of the five payers paid this person this year (the money columns)."""
        return {payer: getattr(self, payer.field_name) for payer in Payer}

    def set_paid(self, paid: Mapping[Payer, Decimal]) -> None:
        for payer in Payer:
            setattr(self, payer.field_name, paid.get(payer, Decimal("0.00")))


class Recovery(Base):
    """追回 of assistance paid above what a re-run gives (SETTLEMENT.md §9.4): pending until
    medical insurance decides it (RECOVER: a RECOVERY event and a receivable from the person;
    WAIVE: the payment stands). At most one pending recovery per claim."""

    __tablename__ = "recoveries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    claim_id: Mapped[int] = mapped_column(BigInteger, index=True)
    beneficiary_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("beneficiaries.id"))
    year: Mapped[int] = mapped_column(SmallInteger)
    """The claim's settlement year (with the claim id, the key of the claim referenced)."""
    policy: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12), default="PENDING")
    amount: Mapped[Decimal] = mapped_column(Money)
    assistance: Mapped[Decimal] = mapped_column(Money)
    secondary_assistance: Mapped[Decimal] = mapped_column(Money)
    cause: Mapped[str] = mapped_column(String(500))
    """The late news that set the current amount."""
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    settlement_id: Mapped[int | None] = mapped_column(BigInteger)
    """The RECOVERY event, once recovered."""

    __table_args__ = (
        ForeignKeyConstraint(
            ["claim_id", "year", "beneficiary_id"],
            ["claims.id", "claims.year", "claims.beneficiary_id"],
        ),
        ForeignKeyConstraint(
            ["settlement_id", "year", "beneficiary_id"],
            ["settlements.id", "settlements.year", "settlements.beneficiary_id"],
        ),
        CheckConstraint("status IN ('PENDING', 'RECOVERED', 'WAIVED', 'WITHDRAWN')", name="status"),
        CheckConstraint("amount >= 0", name="amount"),
        Index(
            "uq_recoveries_claim_id_pending",
            "claim_id",
            unique=True,
            postgresql_where=text("status = 'PENDING'"),
        ),
        Index("ix_recoveries_status_year", "status", "year"),
    )


class SettlementYearClosing(Base):
    """A settlement year closed for a policy's region (§9.5): never re-run, nothing settled."""

    __tablename__ = "settlement_year_closings"

    region_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    year: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    policy: Mapped[str] = mapped_column(String(40))
    department: Mapped[str] = mapped_column(String(40))
    org: Mapped[str] = mapped_column(String(120))
    closed_at: Mapped[datetime] = _now()


class LateNews(Base):
    """Late news touching a closed year (§9.5): recorded with what a re-run would have changed,
    moving no money."""

    __tablename__ = "late_news"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    beneficiary_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("beneficiaries.id"))
    year: Mapped[int] = mapped_column(SmallInteger)
    region_code: Mapped[str] = mapped_column(String(6))
    operation: Mapped[str] = mapped_column(String(40))
    changes: Mapped[list[dict[str, str]]] = mapped_column(JSONB)
    """[{claimNumber, payer, amount}]: what the re-run would have changed."""
    department: Mapped[str] = mapped_column(String(40))
    org: Mapped[str] = mapped_column(String(120))
    recorded_at: Mapped[datetime] = _now()

    __table_args__ = (Index("ix_late_news_region_code_year", "region_code", "year"),)


ALERT_STATES = ["OPEN", "ACKNOWLEDGED", "RECOGNISED", "REJECTED", "CLOSED"]
"""Where an alert or an application stands (resolvers/lifecycle.py holds the transitions)."""


class _Assessed:
    """The lifecycle columns shared by high-cost alerts and applications: who took it up
    (ACKNOWLEDGED), who decided it and why (RECOGNISED, REJECTED, CLOSED), and the identity or
    flag record that recognised the person."""

    status: Mapped[str] = mapped_column(String(12), default="OPEN")
    acknowledged_by: Mapped[str | None] = mapped_column(String(120))
    """``department/org`` of the assessing department that took it up."""
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    department: Mapped[str | None] = mapped_column(String(40))
    """The assessing department: the one that acknowledged, recognised or rejected it."""
    resolved_by: Mapped[str | None] = mapped_column(String(120))
    """``department/org`` that closed it, or ``gateway`` for an automatic transition."""
    resolution: Mapped[str | None] = mapped_column(String(500))
    """Why it was closed: the rejection's reason, the recognition, the fall under threshold."""
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    identity_id: Mapped[int | None] = mapped_column(ForeignKey("identities.id"))
    flag_id: Mapped[int | None] = mapped_column(ForeignKey("monitoring_flags.id"))
    updated_at: Mapped[datetime] = _now()


class HighCostAlert(_Assessed, Base):
    """主动发现: a person whose yearly out-of-pocket passed the policy's threshold."""

    __tablename__ = "high_cost_alerts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    beneficiary_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("beneficiaries.id"))
    year: Mapped[int] = mapped_column(SmallInteger)
    policy: Mapped[str | None] = mapped_column(String(40))
    out_of_pocket: Mapped[Decimal] = mapped_column(Money)
    """The year's out-of-pocket now (the ledger's), kept current by every settlement event."""
    threshold: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        UniqueConstraint("beneficiary_id", "year"),
        CheckConstraint(_one_of("status", ALERT_STATES), name="status"),
        Index("ix_high_cost_alerts_status_id", "status", "id"),
    )


class AssistanceApplication(_Assessed, Base):
    """依申请救助 (攀枝花 第十九、二十二条; 鲁医保发 四(一)): a person's application for a category,
    received (受理) at one department's window, routed (分办转办) to the department that recognises
    the category, decided there and fed back (结果反馈)."""

    __tablename__ = "assistance_applications"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    beneficiary_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("beneficiaries.id"), index=True)
    category: Mapped[str] = mapped_column(String(40))
    statement: Mapped[str] = mapped_column(String(500))
    """What the person asks and why, as written at the window."""
    received_department: Mapped[str] = mapped_column(String(40))
    received_by: Mapped[str] = mapped_column(String(120))
    routed_to: Mapped[str] = mapped_column(String(40))
    """The department that recognises the category (its access policy's write_categories)."""
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        CheckConstraint(_one_of("status", ALERT_STATES), name="status"),
        Index("ix_assistance_applications_routed_to_status", "routed_to", "status"),
    )


class AuditRecord(Base):
    """Who saw or changed whose personal data; append-only and hash-chained.

    A trigger (see the migration) refuses UPDATE, DELETE and TRUNCATE, and the gateway's
    database role may only INSERT and SELECT it (migration 0005). Partitioned by year of ``at``
    (migration 0018, gateway/storage/audit_partitions.py).
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    """The partition key (migration 0018: one partition per year, China time), hence part of
    the primary key; ``id`` alone is unique all the same (one sequence)."""
    action: Mapped[str] = mapped_column(String(8))
    department: Mapped[str] = mapped_column(String(40))
    org: Mapped[str] = mapped_column(String(120))
    subject: Mapped[str] = mapped_column(String(120))
    purpose: Mapped[str | None] = mapped_column(String(80))
    operation: Mapped[str | None] = mapped_column(String(120))
    query_hash: Mapped[str | None] = mapped_column(String(64))
    query_text: Mapped[str | None] = mapped_column(Text)
    beneficiary_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)))
    field_paths: Mapped[list[str]] = mapped_column(ARRAY(String))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    shard: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    """The chain the record belongs to (migration 0017): ``prev_hash`` is the hash of the record
    before it, by id, in the same shard."""

    __table_args__ = (
        CheckConstraint("action IN ('READ', 'WRITE')", name="action"),
        Index("ix_audit_log_beneficiary_ids", "beneficiary_ids", postgresql_using="gin"),
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_shard_id", "shard", "id"),
    )


DASHBOARD_DIMENSIONS = ["year", "month", "category", "visit_type", "hospital_level", "payer"]
"""The dimensions of the dashboard rollup (resolvers/cube.py); the cube adds ``assisted`` (a
person paid assistance or secondary assistance) and ``band`` (the person's yearly out-of-pocket
band)."""


class _DashboardSums:
    """The additive figures of a dashboard cell: settled claims (reversals take theirs back) and
    the money of every settlement event, in yuan."""

    claims: Mapped[int] = mapped_column(default=0)
    total_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    out_of_scope: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    """Cost outside the policy scope (目录外费用): total cost minus policy-scope cost."""
    out_of_pocket: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    basic_insurance: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    critical_illness: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    inclusive_commercial: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    assistance: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    secondary_assistance: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))


class DashboardPersonCell(_DashboardSums, Base):
    """One person's figures in one value of one dimension of a year (resolvers/cube.py): what
    tells whether the person counts in the cube's cell (distinct persons do not add up across
    months or categories, but they do across regions, a person being in one region)."""

    __tablename__ = "dashboard_person_cells"

    beneficiary_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("beneficiaries.id"), primary_key=True
    )
    year: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    dim: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(40), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(6))


class DashboardCube(_DashboardSums, Base):
    """The dashboard rollup: per year, region code, dimension and value, the persons behind the
    cell and its sums, kept in the transaction of every settlement event (resolvers/cube.py)."""

    __tablename__ = "dashboard_cube"

    year: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    region_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    dim: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(40), primary_key=True)
    persons: Mapped[int] = mapped_column(default=0)


ACCOUNT_KINDS = [
    "BASIC_FUND",
    "CRITICAL_ILLNESS_INSURER",
    "INCLUSIVE_COMMERCIAL_INSURER",
    "ASSISTANCE_FUND",
    "FINANCE",
    "HOSPITAL",
    "PERSON",
]
"""policies/funds/rules.py's AccountKind (kept literal here: the storage imports no rules)."""


class FundAccount(Base):
    """One account of the fund ledgers (policies/funds/postings.yaml): a kind, the region code
    of the persons it is kept for, and a party (carrier, hospital code, person id, or '').
    Append-only (migration 0010)."""

    __tablename__ = "fund_accounts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    region_code: Mapped[str] = mapped_column(String(6))
    party: Mapped[str] = mapped_column(String(120), default="", server_default="")
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        UniqueConstraint("kind", "region_code", "party"),
        CheckConstraint(_one_of("kind", ACCOUNT_KINDS), name="kind"),
        Index(
            "ix_fund_accounts_region_code",
            "region_code",
            postgresql_ops={"region_code": "text_pattern_ops"},
        ),
    )


class FundEntry(Base):
    """One side of a double-entry posting: a positive amount debited or credited to one account,
    from one settlement event's payer line or one enrollment's subsidy part (``flow``). The
    debits and credits of each event are equal. Append-only: a trigger refuses UPDATE, DELETE
    and TRUNCATE, and the gateway's role may only SELECT and INSERT (migration 0010)."""

    __tablename__ = "fund_entries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("fund_accounts.id"))
    settlement_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    """With ``year``, the settlement event's key (migration 0019)."""
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    """ORIGINAL, ADJUSTMENT, REVERSAL, RECOVERY (the settlement event's) or SUBSIDY."""
    flow: Mapped[str] = mapped_column(String(24))
    """The payer line (basicInsurance …) or the subsidy part (assistanceFund, finance)."""
    side: Mapped[str] = mapped_column(String(6))
    amount: Mapped[Decimal] = mapped_column(Money)
    year: Mapped[int] = mapped_column(SmallInteger)
    """The settlement year (the claim's, the enrollment's): what closing a year stops."""
    booked_on: Mapped[date] = mapped_column(Date)
    """The day the money fell due, China time: the discharge for an ORIGINAL event, the event's
    day for the later ones, the enrollment day for a subsidy. Statements' periods read it."""
    created_at: Mapped[datetime] = _now()

    __table_args__ = (
        CheckConstraint("side IN ('DEBIT', 'CREDIT')", name="side"),
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint(
            "kind IN ('ORIGINAL', 'ADJUSTMENT', 'REVERSAL', 'RECOVERY', 'SUBSIDY')", name="kind"
        ),
        CheckConstraint("(settlement_id IS NULL) <> (enrollment_id IS NULL)", name="source"),
        ForeignKeyConstraint(["settlement_id", "year"], ["settlements.id", "settlements.year"]),
        # Covering (migration 0014): statements and fund balances sum by index-only scans.
        Index(
            "ix_fund_entries_account_id_booked_on",
            "account_id",
            "booked_on",
            postgresql_include=["kind", "flow", "side", "amount"],
        ),
        Index("ix_fund_entries_year_account_id", "year", "account_id"),
    )


# -- list imports (issue 11; resolvers/imports.py) --------------------------------------------


class ImportJob(Base):
    """One import of a department's list file: who, what kind and mode, the file's SHA-256,
    its state and, once done, the summary (counts only: the rows are in the target tables)."""

    __tablename__ = "imports"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(12))
    category: Mapped[str | None] = mapped_column(String(40))
    as_of: Mapped[date | None] = mapped_column(Date)
    accept_valid: Mapped[bool] = mapped_column(Boolean)
    file_name: Mapped[str] = mapped_column(String(255))
    file_sha256: Mapped[str] = mapped_column(String(64))
    department: Mapped[str] = mapped_column(String(40))
    org: Mapped[str] = mapped_column(String(120))
    subject: Mapped[str] = mapped_column(String(120))
    regions: Mapped[list[str]] = mapped_column(ARRAY(String))
    status: Mapped[str] = mapped_column(String(12))
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('RUNNING', 'STORED', 'REFUSED', 'FAILED')", name="status"),
        CheckConstraint("mode IN ('INCREMENTAL', 'SNAPSHOT')", name="mode"),
    )


class ImportProblem(Base):
    """One reported problem of an import: the file's line, its column header, the value and why."""

    __tablename__ = "import_problems"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    import_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("imports.id", ondelete="CASCADE"), index=True
    )
    line: Mapped[int] = mapped_column(BigInteger)
    column: Mapped[str] = mapped_column(String(120))
    value: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)


# -- the fund entries' monthly rollup (issue 14; resolvers/fund_months.py) --------------------


class FundEntryMonth(Base):
    """The sums of ``fund_entries`` per account, settlement year, booking month, kind, flow and
    side: written in the transaction of the entries (resolvers/fund_months.py), so that
    statements and fund balances read months instead of entries. The gateway's role may only
    SELECT, INSERT and UPDATE (an upsert; migration 0016)."""

    __tablename__ = "fund_entry_months"

    account_id: Mapped[int] = mapped_column(ForeignKey("fund_accounts.id"), primary_key=True)
    year: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    """The first day of the booking month (``booked_on``'s)."""
    kind: Mapped[str] = mapped_column(String(12), primary_key=True)
    flow: Mapped[str] = mapped_column(String(24), primary_key=True)
    side: Mapped[str] = mapped_column(String(6), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    entries: Mapped[int] = mapped_column(BigInteger)
