"""The five payers of SETTLEMENT.md §5, each producing one explained :class:`PayerLine`.

Each function gets the visit's context and the base left by the payers before it, and returns the
line plus the ledger stage it feeds (the engine adds (base, paid) to that stage).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar

from policies.benefits.model import (
    Param,
    Policy,
    ScheduleRule,
    Segment,
    Tilt,
    UninsuredLedger,
    Unit,
    Value,
    describe_segments,
)
from policies.money import ZERO, exact, money, percent, round_money
from policies.settlement.categories import Held
from policies.settlement.explanation import Band, Candidate, ParameterUse, Part, PayerLine
from policies.settlement.ledger import BASIC_SHARED_CAP_STAGES, Ledger, Stage
from policies.settlement.schedule import Schedule
from policies.vocabulary import Category, Payer, VisitType

if TYPE_CHECKING:
    from policies.settlement.visit import Person, Visit

T = TypeVar("T")

INSURANCE_VISIT_TYPES = frozenset({VisitType.INPATIENT, VisitType.OUTPATIENT_CHRONIC})
"""Critical illness and inclusive commercial insurance cover these visit types (§5)."""


@dataclass(frozen=True)
class Context:
    """Everything a payer needs to know about the visit being settled."""

    policy: Policy
    person: Person
    visit: Visit
    ledger: Ledger
    held: Held

    @property
    def on(self) -> date:
        return self.visit.admission_date

    @property
    def year(self) -> int:
        return self.visit.settlement_year


@dataclass(frozen=True)
class Outcome:
    line: PayerLine
    stage: Stage | None = None
    base: Decimal = ZERO
    category: Category | None = None
    """The category whose schedule paid (assistance only)."""
    candidates: tuple[Candidate, ...] = ()


# -- helpers -----------------------------------------------------------------------------------


def _show(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, tuple):
        if value and all(isinstance(v, Segment) for v in value):
            return describe_segments(value)
        return ", ".join(str(v) for v in value)
    return str(value)


def _use(value: Value[T], shown: str | None = None) -> ParameterUse:
    text = shown if shown is not None else _show(value.value)
    key = (value.key, text, value.reference, value.note)
    use = _USES.get(key)
    if use is None:
        if len(_USES) >= _MEMO_SIZE:
            _USES.clear()
        use = _USES[key] = ParameterUse(
            name=value.key, value=text, reference=value.reference, note=value.note
        )
    return use


def _bands(segments: Sequence[Segment]) -> tuple[Band, ...]:
    """The explanation's bands of a schedule's segments (a schedule's bands are shared)."""
    key = tuple((str(s.up_to), str(s.ratio)) for s in segments)
    bands = _BANDS.get(key)
    if bands is None:
        if len(_BANDS) >= _MEMO_SIZE:
            _BANDS.clear()
        bands = _BANDS[key] = tuple(map(Band.model_validate, segments))
    return bands


_MEMO_SIZE = 4096
_USES: dict[tuple[str, str, str, str | None], ParameterUse] = {}
_BANDS: dict[tuple[tuple[str, str], ...], tuple[Band, ...]] = {}
"""Explanation parts already built, by what they show (frozen models, so shared safely): the
engine stays a pure function, it only skips validating the same few policy parameters and
schedules thousands of times (a late re-run settles a whole year again)."""


def _points(bonus: Decimal) -> str:
    """A ratio bonus in percentage points.

    >>> _points(Decimal("0.05"))
    '5'
    """
    return format((bonus * 100).normalize(), "f")


def _skip(payer: Payer, reason: str) -> Outcome:
    return Outcome(PayerLine(payer=payer, applied=False, reason=reason, paid=ZERO))


def _resolve(
    ctx: Context, rule: ScheduleRule, shared_cap: Param[Decimal | None] | None = None
) -> tuple[Schedule, list[ParameterUse]]:
    """The rule's schedule for this visit (PCDI shares turned into yuan) and the parameters used."""
    uses: list[ParameterUse] = []
    deductible = ZERO
    if rule.deductible is not None:
        value = rule.deductible.at(ctx.on)
        if value.unit is Unit.SHARE_OF_PCDI:
            pcdi = ctx.policy.pcdi_for(ctx.year - 1)
            deductible = round_money(value.value * pcdi.value)
            shown = f"{percent(value.value)} of PCDI {ctx.year - 1} = {money(deductible)}"
            uses += [_use(value, shown), _use(pcdi)]
        elif value.unit is Unit.SHARE_OF_MONITORING_STANDARD:
            standard = ctx.policy.monitoring_standard_for(ctx.year)
            deductible = round_money(value.value * standard.value)
            shown = (
                f"{percent(value.value)} of the monitoring income standard {ctx.year} = "
                f"{money(deductible)}"
            )
            uses += [_use(value, shown), _use(standard)]
        else:
            deductible = value.value
            uses.append(_use(value))
    segments = rule.segments.at(ctx.on)
    uses.append(_use(segments))
    cap_param = rule.yearly_cap if rule.yearly_cap is not None else shared_cap
    cap: Decimal | None = None
    if cap_param is not None:
        cap_value = cap_param.at(ctx.on)
        cap = cap_value.value
        uses.append(_use(cap_value, "no cap" if cap is None else money(cap)))
    return Schedule(deductible, segments.value, cap), uses


def _run(
    ctx: Context,
    payer: Payer,
    stage: Stage,
    schedule: Schedule,
    base: Decimal,
    reason: str,
    parameters: Sequence[ParameterUse],
    *,
    per_stay: bool = False,
    cap_stages: tuple[Stage, ...] | None = None,
    notes: Sequence[str] = (),
) -> Outcome:
    """Apply ``schedule`` to ``base``: per stay (B0 = 0) or as an annual stage on ``stage``'s
    running totals; the cap room is counted over ``cap_stages`` (default: the stage itself)."""
    cap_over = cap_stages if cap_stages is not None else (stage,)
    before = ZERO if per_stay else ctx.ledger.totals(stage).base
    result = schedule.stage(before, base, ctx.ledger.paid(*cap_over))
    line = PayerLine(
        payer=payer,
        applied=True,
        reason=reason,
        paid=result.paid,
        stage=stage.value,
        method="perStay" if per_stay else "annual",
        base=base,
        year_to_date_base_before=None if per_stay else before,
        deductible=schedule.deductible,
        segments=_bands(schedule.segments),
        portions=tuple(map(Part.model_validate, result.portions)),
        cap=schedule.cap,
        cap_shared_with=tuple(s.value for s in cap_over if s is not stage),
        cap_room_before=result.cap_room,
        amount_before_cap=result.increment,
        amount_before_rounding=result.unrounded,
        parameters=tuple(parameters),
        notes=tuple(notes),
    )
    return Outcome(line, stage, base)


def tilted_categories(ctx: Context, tilt: Tilt | None) -> tuple[Category, ...]:
    """The categories held for the insurance stages that the tilt lists (§4.5: any one
    qualifies)."""
    if tilt is None:
        return ()
    listed = tilt.categories.at(ctx.on).value
    return tuple(c for c in ctx.held.insurance if c in listed)


def _tilt_for(
    ctx: Context, tilt: Tilt | None
) -> tuple[Value[Decimal] | None, Value[Decimal] | None, list[ParameterUse]]:
    """(deductible factor, ratio bonus, parameters) when a category held is tilted."""
    if tilt is None or not tilted_categories(ctx, tilt):
        return None, None, []
    listed = tilt.categories.at(ctx.on)
    factor = None if tilt.deductible_factor is None else tilt.deductible_factor.at(ctx.on)
    bonus = None if tilt.ratio_bonus is None else tilt.ratio_bonus.at(ctx.on)
    uses = [_use(listed)]
    if factor is not None:
        uses.append(_use(factor, f"× {format(factor.value, 'f')}"))
    if bonus is not None:
        uses.append(_use(bonus, f"+ {_points(bonus.value)} percentage points"))
    return factor, bonus, uses


# -- basic insurance ---------------------------------------------------------------------------


def diagnosis_key(code: str) -> str:
    """Diagnosis codes compare upper-case and without dots (§5), by prefix.

    >>> diagnosis_key(" n18.5 "), diagnosis_key("N185")
    ('N185', 'N185')
    """
    return code.strip().upper().replace(".", "")


def _special_disease(ctx: Context) -> tuple[bool, list[ParameterUse], str | None]:
    """Hunan 大病专项救治: (deductible waived?, parameters, note)."""
    special = ctx.policy.basic.special_diseases
    diagnosis = ctx.visit.diagnosis
    if special is None or not diagnosis:
        return False, [], None
    categories = special.categories.at(ctx.on)
    if not any(c in categories.value for c in ctx.held.insurance):
        return False, [], None
    key = diagnosis_key(diagnosis)
    code = diagnosis.strip().upper()
    listed = special.diagnoses.at(ctx.on)
    child = None if special.child_diagnoses is None else special.child_diagnoses.at(ctx.on)
    match = next((p for p in listed.value if key.startswith(diagnosis_key(p))), None)
    uses = [_use(categories), _use(listed)]
    reference, child_text = listed.reference, ""
    if match is None and child is not None and special.child_max_age is not None:
        match = next((p for p in child.value if key.startswith(diagnosis_key(p))), None)
        if match is not None:
            max_age = special.child_max_age.at(ctx.on)
            age = ctx.person.age_on(ctx.visit.admission_date)
            uses += [_use(child), _use(max_age)]
            if age > max_age.value:
                note = (
                    f"{code} is a special disease for children aged ≤ {max_age.value}, the patient "
                    f"is {age} on admission: the deductible applies ({child.reference})"
                )
                return False, [], note
            reference = child.reference
            child_text = f" for a child aged {age} on admission (≤ {max_age.value})"
    if match is None:
        return False, [], None
    if not ctx.visit.special_treatment_hospital:
        note = (
            f"{code} is a special disease, but not at a designated hospital: the deductible applies"
        )
        return False, [], note
    note = (
        f"special disease {code} (listed as {match}) at a designated hospital{child_text}: "
        f"no inpatient deductible (大病专项救治, {reference})"
    )
    return True, uses, note


def _reported(
    ctx: Context,
    payer: Payer,
    stage: Stage,
    base: Decimal,
    amount: Decimal,
    *,
    cap: Decimal | None,
    cap_stages: tuple[Stage, ...] | None = None,
    per_stay: bool = False,
) -> Outcome:
    """A payment reported by the core insurance system or the insurer (§5, 来自核心系统的结算结果):
    taken as given; the stage's ledger accrues the visit's base and the reported payment."""
    cap_over = cap_stages if cap_stages is not None else (stage,)
    room = None if cap is None else max(cap - ctx.ledger.paid(*cap_over), ZERO)
    notes = []
    if room is not None and amount > room:
        notes.append(
            f"reported {money(amount)} is above the {money(room)} the policy's yearly cap "
            f"{money(cap or ZERO)} leaves: accepted, the core system is authoritative"
        )
    line = PayerLine(
        payer=payer,
        applied=True,
        reason="reported by the core insurance system or the insurer: taken as given, not computed",
        paid=amount,
        stage=stage.value,
        method="reported",
        base=base,
        year_to_date_base_before=None if per_stay else ctx.ledger.totals(stage).base,
        cap=cap,
        cap_shared_with=tuple(s.value for s in cap_over if s is not stage),
        cap_room_before=room,
        amount_before_rounding=amount,
        notes=tuple(notes),
    )
    return Outcome(line, stage, base)


def _basic_stage(visit: Visit) -> Stage:
    if visit.type is VisitType.INPATIENT:
        return Stage.BASIC_INPATIENT
    if visit.type is VisitType.OUTPATIENT_CHRONIC:
        return Stage.BASIC_CHRONIC
    return Stage.BASIC_GENERAL


def basic_insurance(ctx: Context) -> Outcome:
    payer = Payer.BASIC_INSURANCE
    if not ctx.person.insured:
        return _skip(payer, "not insured (insured: false): no insurance payment")
    rules = ctx.policy.basic
    visit = ctx.visit
    scope = visit.policy_scope_cost
    reported = visit.reported_amount(payer)
    if reported is not None:
        stage = _basic_stage(visit)
        if stage is Stage.BASIC_GENERAL:
            general_cap = rules.general_outpatient.yearly_cap
            room = None if general_cap is None else general_cap.at(ctx.on).value
            return _reported(ctx, payer, stage, scope, reported, cap=room)
        return _reported(
            ctx, payer, stage, scope, reported,
            cap=rules.yearly_cap.at(ctx.on).value, cap_stages=BASIC_SHARED_CAP_STAGES,
            per_stay=stage is Stage.BASIC_INPATIENT,
        )  # fmt: skip
    if visit.type is VisitType.INPATIENT:
        assert visit.hospital_level is not None  # validate_visit guarantees it
        level = visit.hospital_level
        deductible = rules.inpatient_deductible[level].at(ctx.on)
        ratio = rules.inpatient_ratio[level].at(ctx.on)
        cap = rules.yearly_cap.at(ctx.on)
        uses = [
            _use(deductible),
            _use(ratio, percent(ratio.value)),
            _use(cap, "no cap" if cap.value is None else money(cap.value)),
        ]
        notes: list[str] = []
        used_ratio = ratio.value
        waived, special_uses, note = _special_disease(ctx)
        uses += special_uses
        if note is not None:
            notes.append(note)
        tilt = rules.inpatient_tilt
        _, bonus, tilt_uses = _tilt_for(ctx, tilt)
        fee_only = (
            None
            if tilt is None or tilt.fee_for_service_only is None
            else (tilt.fee_for_service_only.at(ctx.on))
        )
        qualifying = ", ".join(tilted_categories(ctx, tilt))
        if bonus is not None and waived and fee_only is not None and fee_only.value:
            uses.append(_use(fee_only))
            notes.append(
                f"no tilt bonus for {qualifying}: the + {_points(bonus.value)} points are for "
                f"fee-for-service stays only, and this stay is settled as a special disease "
                f"({fee_only.reference})"
            )
        elif bonus is not None:
            used_ratio = min(Decimal(1), ratio.value + bonus.value)
            uses += tilt_uses
            notes.append(
                f"tilt for {qualifying}: inpatient ratio {percent(ratio.value)} + "
                f"{_points(bonus.value)} points = {percent(used_ratio)} ({bonus.reference})"
            )
        schedule = Schedule(
            ZERO if waived else deductible.value, (Segment(None, used_ratio),), cap.value
        )
        reason = (
            f"per stay: {percent(used_ratio)} of the policy-scope cost above the {level.value} "
            "deductible, within the yearly cap shared with chronic outpatient visits"
        )
        return _run(
            ctx, payer, Stage.BASIC_INPATIENT, schedule, scope, reason, uses,
            per_stay=True, cap_stages=BASIC_SHARED_CAP_STAGES, notes=notes,
        )  # fmt: skip
    if visit.type is VisitType.OUTPATIENT_CHRONIC:
        schedule, uses = _resolve(ctx, rules.chronic, shared_cap=rules.yearly_cap)
        reason = (
            "annual stage on the year's chronic outpatient cost, chronic deductible, within the "
            "yearly cap shared with inpatient stays"
        )
        return _run(
            ctx, payer, Stage.BASIC_CHRONIC, schedule, scope, reason, uses,
            cap_stages=(Stage.BASIC_CHRONIC, Stage.BASIC_INPATIENT),
        )  # fmt: skip
    schedule, uses = _resolve(ctx, rules.general_outpatient)
    reason = "general outpatient: ratio of the policy-scope cost within its own yearly cap"
    return _run(ctx, payer, Stage.BASIC_GENERAL, schedule, scope, reason, uses)


# -- critical illness and inclusive commercial -------------------------------------------------


def critical_illness(ctx: Context, base: Decimal) -> Outcome:
    payer = Payer.CRITICAL_ILLNESS
    if not ctx.person.insured:
        return _skip(payer, "not insured (insured: false): no insurance payment")
    if ctx.visit.type not in INSURANCE_VISIT_TYPES:
        return _skip(payer, "covers inpatient and chronic outpatient visits only")
    rules = ctx.policy.critical_illness
    reported = ctx.visit.reported_amount(payer)
    if reported is not None:
        cap = rules.schedule.yearly_cap
        return _reported(
            ctx, payer, Stage.CRITICAL_ILLNESS, base, reported,
            cap=None if cap is None else cap.at(ctx.on).value,
        )  # fmt: skip
    schedule, uses = _resolve(ctx, rules.schedule)
    notes: list[str] = []
    factor, bonus, tilt_uses = _tilt_for(ctx, rules.tilt)
    if tilt_uses:
        untilted = schedule
        schedule = schedule.tilted(
            None if factor is None else factor.value, None if bonus is None else bonus.value
        )
        uses += tilt_uses
        changes = []
        if factor is not None:
            changes.append(
                f"deductible {exact(untilted.deductible)} × {format(factor.value, 'f')} = "
                f"{exact(schedule.deductible)}"
            )
        if bonus is not None:
            changes.append(
                f"ratios + {_points(bonus.value)} points: {describe_segments(schedule.segments)}"
            )
        reference = (factor or bonus or tilt_uses[0]).reference
        qualifying = ", ".join(tilted_categories(ctx, rules.tilt))
        notes.append(f"tilt for {qualifying} (倾斜支付, {reference}): {'; '.join(changes)}")
    reason = (
        "annual stage on the cost left after basic insurance, cumulated over the year "
        "(民发〔2017〕12号 (六))"
    )
    return _run(ctx, payer, Stage.CRITICAL_ILLNESS, schedule, base, reason, uses, notes=notes)


def inclusive_commercial(ctx: Context, base: Decimal) -> Outcome:
    payer = Payer.INCLUSIVE_COMMERCIAL
    if not ctx.person.insured:
        return _skip(payer, "not insured (insured: false): no insurance payment")
    plan = ctx.policy.inclusive_commercial
    if plan is None:
        return _skip(payer, f"policy {ctx.policy.id} has no inclusive commercial plan")
    if not ctx.person.inclusive_commercial:
        return _skip(payer, "not enrolled in the inclusive commercial plan")
    if ctx.visit.type not in INSURANCE_VISIT_TYPES:
        return _skip(payer, "covers inpatient and chronic outpatient visits only")
    reported = ctx.visit.reported_amount(payer)
    if reported is not None:
        cap = plan.yearly_cap
        return _reported(
            ctx, payer, Stage.INCLUSIVE_COMMERCIAL, base, reported,
            cap=None if cap is None else cap.at(ctx.on).value,
        )  # fmt: skip
    schedule, uses = _resolve(ctx, plan)
    reason = "annual stage on the cost left after basic and critical-illness insurance"
    return _run(ctx, payer, Stage.INCLUSIVE_COMMERCIAL, schedule, base, reason, uses)


# -- assistance --------------------------------------------------------------------------------


def _best(ctx: Context, options: Sequence[tuple[Category, Outcome]]) -> Outcome:
    """待遇就高 item by item (§4.5): every candidate schedule is computed on the same ledger; the
    largest rounded payment wins, ties to the category listed first in the priority order."""
    order = {c: i for i, c in enumerate(ctx.held.priority)}
    ranked = sorted(options, key=lambda o: (-o[1].line.paid, order[o[0]]))
    category, winner = ranked[0]
    candidates = tuple(
        Candidate(category=c, paid=o.line.paid, chosen=c is category) for c, o in options
    )
    line = winner.line
    if len(options) > 1:
        shown = ", ".join(f"{c} {money(o.line.paid)}" for c, o in options)
        note = (
            f"candidates on this ledger: {shown}; {category} pays most (待遇就高, "
            f"{ctx.held.priority_reference})"
        )
        line = line.model_copy(update={"notes": (*line.notes, note)})
    return dataclasses.replace(winner, line=line, category=category, candidates=candidates)


def medical_assistance(ctx: Context, main_base: Decimal, general_base: Decimal) -> Outcome:
    payer = Payer.ASSISTANCE
    rules = ctx.policy.assistance
    if rules is None:
        return _skip(payer, f"policy {ctx.policy.id} defines no medical assistance")
    held = ctx.held.assistance
    if not held:
        return _skip(payer, "no assistance category on this visit")
    referral = rules.requires_compliant_referral.at(ctx.on)
    refused = referral.value and not ctx.visit.referral_compliant
    if not ctx.person.insured:
        return _uninsured_assistance(ctx, ctx.visit.policy_scope_cost, referral, refused)
    if ctx.visit.type is VisitType.OUTPATIENT_GENERAL:
        table, stage, base = rules.general_outpatient, Stage.ASSISTANCE_GENERAL, general_base
        listed = "listed for general outpatient assistance"
        ledger = "its own ledger, base = policy-scope cost − basic insurance"
        uses: list[ParameterUse] = [_use(referral)]
    else:
        visit_types = rules.visit_types.at(ctx.on)
        if ctx.visit.type not in visit_types.value:
            reason = (
                f"visit type {ctx.visit.type} not covered by assistance ({visit_types.reference})"
            )
            return _skip(payer, reason)
        table, stage, base = rules.schedules, Stage.ASSISTANCE, main_base
        listed = f"given an assistance schedule in {ctx.policy.id}"
        ledger = (
            "the cost left after insurance; one ledger for the year's inpatient and chronic "
            "visits, shared by all categories"
        )
        uses = [_use(visit_types), _use(referral)]
    candidates = [(c, table[c]) for c in held if c in table]
    if not candidates:
        return _skip(payer, f"categories held ({', '.join(held)}) not {listed}")
    if refused:
        return _skip(payer, f"referral not compliant (未按规定转诊, {referral.reference})")
    options = []
    for category, rule in candidates:
        schedule, parameters = _resolve(ctx, rule)
        reason = f"{category} schedule, annual stage on {ledger}"
        options.append(
            (category, _run(ctx, payer, stage, schedule, base, reason, [*uses, *parameters]))
        )
    return _best(ctx, options)


def _uninsured_assistance(
    ctx: Context, base: Decimal, referral: Value[bool], refused: bool
) -> Outcome:
    """Assistance for a person not enrolled in basic insurance: only where the policy defines it
    (苏政办发 二(三) leaves the standard to local government), on the whole policy-scope cost."""
    payer = Payer.ASSISTANCE
    rules = ctx.policy.uninsured
    if rules is None:
        return _skip(
            payer,
            f"not insured, and policy {ctx.policy.id} defines no assistance for uninsured "
            "persons: nothing is paid",
        )
    listed = rules.categories.at(ctx.on)
    held = [c for c in ctx.held.assistance if c in listed.value]
    if not held:
        shown = ", ".join(ctx.held.assistance)
        return _skip(
            payer,
            f"not insured: no category held ({shown}) is assisted uninsured ({listed.reference})",
        )
    visit_types = rules.visit_types.at(ctx.on)
    if ctx.visit.type not in visit_types.value:
        return _skip(
            payer,
            f"not insured: visit type {ctx.visit.type} not assisted ({visit_types.reference})",
        )
    if refused:
        return _skip(payer, f"referral not compliant (未按规定转诊, {referral.reference})")
    ledger = rules.ledger.at(ctx.on)
    stage = Stage.ASSISTANCE if ledger.value is UninsuredLedger.MAIN else Stage.ASSISTANCE_UNINSURED
    schedule, uses = _resolve(ctx, rules.schedule)
    reason = (
        f"not insured, {held[0]} assisted as the policy's uninsured section says: annual stage on "
        f"the whole policy-scope cost, ledger {stage.value}"
    )
    outcome = _run(
        ctx, payer, stage, schedule, base, reason,
        [_use(listed), _use(visit_types), _use(ledger), _use(referral), *uses],
    )  # fmt: skip
    return dataclasses.replace(outcome, category=held[0])


def secondary_assistance(ctx: Context, base: Decimal) -> Outcome:
    payer = Payer.SECONDARY_ASSISTANCE
    rules = ctx.policy.secondary_assistance
    if rules is None:
        return _skip(payer, f"policy {ctx.policy.id} defines no secondary assistance")
    if not ctx.held.assistance:
        return _skip(payer, "no assistance category on this visit")
    if not ctx.person.insured and ctx.policy.uninsured is None:
        return _skip(
            payer,
            f"not insured, and policy {ctx.policy.id} defines no assistance for uninsured persons",
        )
    visit_types = rules.visit_types.at(ctx.on)
    if ctx.visit.type not in visit_types.value:
        reason = f"visit type {ctx.visit.type} not covered ({visit_types.reference})"
        return _skip(payer, reason)
    referral = rules.requires_compliant_referral.at(ctx.on)
    if referral.value and not ctx.visit.referral_compliant:
        return _skip(payer, f"referral not compliant ({referral.reference})")
    province = rules.requires_in_province.at(ctx.on)
    if province.value and not ctx.visit.in_province:
        return _skip(payer, f"treated outside the province ({province.reference})")
    schedule, uses = _resolve(ctx, rules.schedule)
    reason = (
        "annual stage on what every other payer left, above the yearly threshold "
        "(the threshold is the deductible)"
    )
    return _run(
        ctx, payer, Stage.SECONDARY_ASSISTANCE, schedule, base, reason,
        [_use(visit_types), _use(referral), _use(province), *uses],
    )  # fmt: skip
