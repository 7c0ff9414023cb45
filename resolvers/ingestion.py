"""Writes from the departments: persons, identities, monitoring flags, enrollments.

Every write validates first, runs in one transaction together with its audit record, and stores
nothing when anything fails. Re-sending the same write returns what is stored (idempotent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import resident_id
from gateway.errors import Conflict, Forbidden, NotFound
from gateway.storage import audit, models
from policies.errors import InvalidInput
from policies.settlement.categories import CategoryRecord
from policies.settlement.subsidy import enrollment_subsidy
from policies.vocabulary import Category
from resolvers import alerts, applications, funds, outbox, settlement
from resolvers.beneficiaries import lock_person
from resolvers.context import Context
from resolvers.inputs import check_in_token, check_money, check_region, check_text

CategoryModel = type[models.Identity] | type[models.MonitoringFlag]
SCHEMES = ("RESIDENT", "EMPLOYEE")
"""城乡居民医保 (the policy files' schedule) and 职工医保 (basic payments reported, §9.1)."""


@dataclass(frozen=True)
class PersonInput:
    id_number: str
    name: str
    region_code: str
    gender: str | None = None
    birth_date: date | None = None


@dataclass(frozen=True)
class CategoryInput:
    id_number: str
    category: Category
    valid_from: date
    valid_to: date | None
    reference: str
    decided_on: date | None = None
    """When the recognition (or, for a closed record, its end) was decided; default today."""


@dataclass(frozen=True)
class EndCategoryInput:
    id_number: str
    category: Category
    valid_to: date
    decided_on: date | None = None
    """When the loss was decided (SETTLEMENT.md §4.2); default today (China time)."""


@dataclass(frozen=True)
class EnrollmentInput:
    id_number: str
    year: int
    contribution: Decimal
    inclusive_commercial: bool
    enrolled_on: date
    scheme: str = "RESIDENT"


def check_decided_on(decided_on: date | None, today: date) -> date:
    """``decidedOn`` defaults to today (the day the change is recorded) and is never in the
    future (§9.2)."""
    if decided_on is None:
        return today
    if decided_on > today:
        raise InvalidInput(
            "decidedOn",
            decided_on.isoformat(),
            f"is after today ({today.isoformat()}, China time): nothing is decided ahead of time",
        )
    return decided_on


def check_person(data: PersonInput) -> PersonInput:
    parsed = resident_id.parse(data.id_number)
    name = check_text(data.name, "name", 64, required=True) or ""
    check_region(data.region_code)
    if data.birth_date is not None and data.birth_date != parsed.birth_date:
        raise InvalidInput(
            "birthDate",
            data.birth_date.isoformat(),
            f"does not agree with the ID number's {parsed.birth_date.isoformat()}",
        )
    if data.gender is not None and data.gender != parsed.gender:
        raise InvalidInput("gender", data.gender, f"the ID number says {parsed.gender}")
    return PersonInput(parsed.number, name, data.region_code, parsed.gender, parsed.birth_date)


def check_category(data: CategoryInput, today: date) -> CategoryInput:
    """The record's dates and reference checked (a record starts at most today, ends on or
    after it starts; ``decidedOn`` by :func:`check_decided_on`), with ``decidedOn`` filled in
    and the reference stripped. Shared by ``recordIdentity``/``recordMonitoringFlag`` and the
    list import (resolvers/import_files.py).
    """
    if data.valid_from > today:
        raise InvalidInput(
            "validFrom",
            data.valid_from.isoformat(),
            f"is after today ({today.isoformat()}, China time): a record starts at most today",
        )
    if data.valid_to is not None and data.valid_to < data.valid_from:
        raise InvalidInput(
            "validTo", data.valid_to.isoformat(), f"before validFrom {data.valid_from.isoformat()}"
        )
    decided_on = check_decided_on(data.decided_on, today)
    reference = check_text(data.reference, "reference", 120, required=True) or ""
    return CategoryInput(
        data.id_number, data.category, data.valid_from, data.valid_to, reference, decided_on
    )


def check_enrollment(data: EnrollmentInput) -> EnrollmentInput:
    """Year, scheme and contribution checked (the contribution to the fen), as stored.
    Shared by ``recordEnrollment`` and the list import."""
    if not 1990 <= data.year <= 2100:
        raise InvalidInput("year", data.year, "expected a year between 1990 and 2100")
    if data.scheme not in SCHEMES:
        raise InvalidInput("scheme", data.scheme, f"one of {', '.join(SCHEMES)}")
    contribution = check_money("contribution", data.contribution)
    return EnrollmentInput(
        data.id_number,
        data.year,
        contribution,
        data.inclusive_commercial,
        data.enrolled_on,
        data.scheme,
    )


async def register(ctx: Context, data: PersonInput) -> models.Beneficiary:
    person = check_person(data)
    check_in_token(ctx.principal, "regionCode", person.region_code)
    async with ctx.db.transaction() as session:
        existing = (
            await session.scalars(
                select(models.Beneficiary).where(models.Beneficiary.id_number == person.id_number)
            )
        ).one_or_none()
        if existing is None:
            row = models.Beneficiary(
                id_number=person.id_number,
                name=person.name,
                region_code=person.region_code,
                gender=person.gender,
                birth_date=person.birth_date,
                created_by=ctx.principal.department,
            )
            session.add(row)
            await session.flush()
            await _audit(session, ctx, "registerBeneficiary", row, {"regionCode": row.region_code})
            return row
        if ctx.principal.serves_region(existing.region_code):
            return _same_person(existing, person)
    await _disclosed(ctx, "registerBeneficiary", existing)
    raise Forbidden(
        f"idNumber = {person.id_number}: may not be registered with this token; "
        "its region's department can change the person's region code",
        field="idNumber",
    )


async def _disclosed(ctx: Context, operation: str, person: models.Beneficiary) -> None:
    """Audit, as a read (ACCESS.md: lookups are personal reads), what a refused write disclosed:
    that a person outside the caller's regions holds the ID number it gave. ID numbers are
    unique nationwide, so the refusal cannot hide it; the record lets that region's auditor see
    who learnt it."""
    async with ctx.db.transaction() as session:
        await audit.append(
            session,
            ctx.principal,
            action="READ",
            operation=f"mutation {operation}",
            beneficiary_ids=[person.id],
            field_paths=[f"{operation}(idNumber)"],
        )


def _same_person(existing: models.Beneficiary, person: PersonInput) -> models.Beneficiary:
    """The stored person when the write names them alike; no stored value is quoted (error
    messages carry no one's personal data, ACCESS.md)."""
    for field, stored, given in (
        ("name", existing.name, person.name),
        ("regionCode", existing.region_code, person.region_code),
    ):
        if stored != given:
            raise Conflict(
                f"{field} = {given}: this idNumber is registered with another {field}",
                field=field,
                value=given,
            )
    return existing


def _category_model(ctx: Context, category: Category, flags: bool) -> CategoryModel:
    """The table for the category, once the caller is known to own it (its recogniser)."""
    if category.is_monitoring_flag != flags:
        wanted = "recordMonitoringFlag" if category.is_monitoring_flag else "recordIdentity"
        kind = "a monitoring flag" if category.is_monitoring_flag else "an identity"
        raise InvalidInput("category", category.value, f"is {kind}; use {wanted}")
    if not ctx.policy.may_write_category(category):
        raise Forbidden(
            f"category = {category.value}: {ctx.principal.department} does not recognise it",
            field="category",
        )
    return models.MonitoringFlag if flags else models.Identity


async def record_category(
    ctx: Context, data: CategoryInput, *, flags: bool
) -> tuple[models.Identity | models.MonitoringFlag, settlement.Consequences]:
    """Record an identity (``flags=False``) or a monitoring flag (``flags=True``); the record
    and what re-running the person's open years stored (nothing when it was already stored)."""
    model = _category_model(ctx, data.category, flags)
    checked = check_category(data, ctx.settings.today())
    decided_on, reference = checked.decided_on, checked.reference
    async with ctx.db.transaction() as session:
        person = await lock_person(session, ctx.rows, data.id_number)
        records = await _records(session, model, person, data.category)
        for record in records:
            if (record.valid_from, record.valid_to, record.reference) == (
                data.valid_from,
                data.valid_to,
                reference,
            ):
                return record, settlement.Consequences()
            if _overlaps(record.valid_from, record.valid_to, data.valid_from, data.valid_to):
                raise Conflict(
                    f"validFrom = {data.valid_from.isoformat()}: overlaps a stored "
                    f"{data.category.value} record of this person; end that record first",
                    field="validFrom",
                )
        row = model(
            beneficiary_id=person.id,
            category=data.category.value,
            valid_from=data.valid_from,
            valid_to=data.valid_to,
            reference=reference,
            decided_on=decided_on,
            department=ctx.principal.department,
            org=ctx.principal.org,
        )
        session.add(row)
        await session.flush()
        operation = "recordMonitoringFlag" if flags else "recordIdentity"
        consequences = await _after_change(
            session, ctx, operation, person, _category_detail(row), None, settlement.record_of(row)
        )
        await applications.recognised_by(session, ctx.principal, row, operation)
        return row, consequences


async def end_category(
    ctx: Context, data: EndCategoryInput, *, flags: bool
) -> tuple[models.Identity | models.MonitoringFlag, settlement.Consequences]:
    """Close the open record of a category on ``validTo`` (idempotent); the record and what
    re-running the person's open years stored (nothing when it had already ended so)."""
    model = _category_model(ctx, data.category, flags)
    decided_on = check_decided_on(data.decided_on, ctx.settings.today())
    async with ctx.db.transaction() as session:
        person = await lock_person(session, ctx.rows, data.id_number)
        records = await _records(session, model, person, data.category)
        for record in records:
            if record.valid_to == data.valid_to:
                return record, settlement.Consequences()
        open_records = [r for r in records if r.valid_to is None]
        if not open_records:
            raise NotFound(
                f"category = {data.category.value}: no open record for this person",
                field="category",
            )
        record = open_records[-1]
        if data.valid_to < record.valid_from:
            raise InvalidInput(
                "validTo",
                data.valid_to.isoformat(),
                "before the validFrom of the open record",
            )
        before = settlement.record_of(record)
        record.valid_to = data.valid_to
        record.decided_on = decided_on
        await session.flush()
        operation = "endMonitoringFlag" if flags else "endIdentity"
        consequences = await _after_change(
            session, ctx, operation, person, _category_detail(record), before,
            settlement.record_of(record),
        )  # fmt: skip
        return record, consequences


async def _records(
    session: AsyncSession, model: CategoryModel, person: models.Beneficiary, category: Category
) -> list[models.Identity | models.MonitoringFlag]:
    rows = await session.scalars(
        select(model)
        .where(model.beneficiary_id == person.id, model.category == category.value)
        .order_by(model.valid_from, model.id)
    )
    return cast(list[models.Identity | models.MonitoringFlag], list(rows.all()))


def _overlaps(a_from: date, a_to: date | None, b_from: date, b_to: date | None) -> bool:
    return (a_to is None or b_from <= a_to) and (b_to is None or a_from <= b_to)


def _category_detail(row: models.Identity | models.MonitoringFlag) -> dict[str, Any]:
    return {
        "category": row.category,
        "validFrom": row.valid_from.isoformat(),
        "validTo": row.valid_to.isoformat() if row.valid_to else None,
        "decidedOn": row.decided_on.isoformat() if row.decided_on else None,
        "reference": row.reference,
    }


async def _after_change(
    session: AsyncSession,
    ctx: Context,
    operation: str,
    person: models.Beneficiary,
    detail: dict[str, Any],
    before: CategoryRecord | None,
    after: CategoryRecord | None,
) -> settlement.Consequences:
    """Late news about a person (§9.4): re-run assistance in the open years the change reaches,
    record what it would change in closed ones, then audit; what the re-runs stored."""
    writer = settlement.Writer(session, ctx.principal, ctx.policies)
    claims = await settlement.claims_of(session, person)
    years = settlement.touched_years(ctx.policies, person, claims, before, after)
    outcome = await settlement.late_news(
        writer, person, years, operation, f"re-run after {operation}", claims
    )
    await alerts.review_person(
        session, ctx.principal, ctx.policies, person, operation, writer.records, writer.reviewed
    )
    await _audit(session, ctx, operation, person, {**detail, **outcome})
    await outbox.identity_changed(session, person, operation)
    return writer.consequences()


async def record_enrollment(ctx: Context, data: EnrollmentInput) -> models.Enrollment:
    """Enroll a person for a year and split the contribution by the subsidy rules (§7)."""
    contribution = check_enrollment(data).contribution
    async with ctx.db.transaction() as session:
        person = await lock_person(session, ctx.rows, data.id_number)
        existing = (
            await session.scalars(
                select(models.Enrollment).where(
                    models.Enrollment.beneficiary_id == person.id,
                    models.Enrollment.year == data.year,
                )
            )
        ).one_or_none()
        if existing is not None:
            stored = (
                existing.contribution,
                existing.inclusive_commercial,
                existing.enrolled_on,
                existing.scheme,
            )
            if stored == (contribution, data.inclusive_commercial, data.enrolled_on, data.scheme):
                return existing
            raise Conflict(
                f"year = {data.year}: the person is already enrolled for {data.year} "
                "with other terms",
                field="year",
            )
        uninsured = await session.scalar(
            select(models.Claim.claim_number).where(
                models.Claim.beneficiary_id == person.id,
                models.Claim.year == data.year,
                models.Claim.insured.is_(False),
                models.Claim.reversed_at.is_(None),
            )
        )
        if uninsured is not None:
            raise Conflict(
                f"year = {data.year}: claim {uninsured} of {data.year} was settled with "
                "insured: false; correct it by reversal and resubmission first",
                field="year",
            )
        records = tuple(await settlement.category_records(session, person))
        split = enrollment_subsidy(
            ctx.policies,
            person.region_code,
            data.year,
            data.enrolled_on,
            records,
            contribution,
        )
        row = models.Enrollment(
            beneficiary_id=person.id,
            year=data.year,
            scheme=data.scheme,
            contribution=contribution,
            inclusive_commercial=data.inclusive_commercial,
            enrolled_on=data.enrolled_on,
            subsidy_policy=split.policy_id,
            subsidy_category=split.category.value if split.category else None,
            subsidy_assistance_fund=split.assistance_fund,
            subsidy_finance=split.finance,
            subsidy_individual=split.individual,
            department=ctx.principal.department,
            org=ctx.principal.org,
        )
        session.add(row)
        await session.flush()
        await funds.post_enrollments(session, [row.id])
        detail = {
            "year": data.year,
            "scheme": data.scheme,
            "contribution": str(contribution),
            "inclusiveCommercial": data.inclusive_commercial,
        }
        # No re-run: an insured claim needs the enrollment first (§9.1), and an uninsured one
        # is refused above.
        await _audit(session, ctx, "recordEnrollment", person, detail)
        return row


async def _audit(
    session: AsyncSession,
    ctx: Context,
    operation: str,
    person: models.Beneficiary,
    detail: dict[str, Any],
) -> None:
    await audit.append(
        session,
        ctx.principal,
        action="WRITE",
        operation=operation,
        beneficiary_ids=[person.id],
        detail=detail,
    )
