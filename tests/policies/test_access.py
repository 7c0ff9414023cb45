"""Access policies: the bundled files load and agree with ACCESS.md's field matrix cell by cell;
a broken file is refused naming file, key and line; masks; the forbidden-field walk.

The schema is the gateway's real, full schema: a field added to it stays forbidden until a
policy grants it, and the matrix test then asks which row of ACCESS.md it belongs to.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import graphql
import pytest

from policies.access.policy import (
    ACCESS_DIRECTORY,
    AccessPolicies,
    Mode,
    catalog_of,
    forbidden_paths,
    load_access,
    mask_id_number,
    mask_name,
)
from policies.errors import PolicyFileError
from policies.vocabulary import Category
from schema import build_schema

# The gateway's real schema (all departments): the policies must fit what is really served.
SCHEMA = build_schema()._schema
SDL = graphql.print_schema(SCHEMA)
CATALOG = catalog_of(SCHEMA)

# --- ACCESS.md's field matrix, copied cell by cell --------------------------------------------

MATRIX_DEPARTMENTS = (
    "medical_insurance",
    "civil_affairs",
    "rural_revitalisation",
    "finance",
    "health",
    "insurer",
    "dashboard",
    "auditor",
)
# R read, M masked, W write, RW read and write, – forbidden; "R (own rows)" is R here (rows are
# the SQL's business).
MATRIX: Mapping[str, str] = {
    "register a beneficiary": "W  W  W  –  –  –  –  –",
    "beneficiary id": "R  R  R  –  –  R  –  R",
    "name": "R  R  R  –  –  M  –  –",
    "ID number": "R  R  R  –  –  M  –  –",
    "birth date": "R  R  R  –  –  –  –  –",
    "birth year": "R  R  R  –  –  R  –  –",
    "gender, region": "R  R  R  –  –  R  –  –",
    "categories (identities)": "R  RW R  –  –  –  –  –",
    "monitoring flags": "R  R  RW –  –  –  –  –",
    "preferential treatment": "R  R  R  –  –  R  –  –",
    "enrollments, subsidies": "RW R  R  –  –  –  –  –",
    "claims: dates, hospital, costs": "RW –  –  –  R  R  –  –",
    "claims: diagnosis": "R  –  –  –  R  R  –  –",
    "settlement breakdown": "RW R  –  –  –  R  –  –",
    "assistance lines": "RW R  –  –  –  –  –  –",
    "settlement explanation": "R  –  –  –  –  –  –  –",
    # The matrix gives insurers the out-of-pocket; with the claim's total cost and the lines it
    # reads, that gives the assistance lines back, which "data minimisation for insurers" forbids
    # (and the reasons of adjustments, written by other departments). The rule wins.
    "out-of-pocket, reasons": "RW R  –  –  –  –  –  –",
    "yearly summary": "R  R  R  –  –  –  –  –",
    "high-cost alerts": "R  RW RW –  –  –  –  –",
    "aggregates": "R  R  R  R  R  –  R  R",
    "audit log": "–  –  –  –  –  –  –  R",
    "benefit policies": "RW R  R  R  R  R  R  R",
}
# "Other recognising bodies … configured the way civil affairs is, each writing only its own
# categories": civil affairs' cells, writes kept only for registering and for categories.
RECOGNISING_BODIES: Mapping[str, frozenset[Category]] = {
    "trade_union": frozenset({Category.DISTRESSED_WORKER}),
    "veterans_affairs": frozenset({Category.PRIORITY_ENTITLED}),
    "disabled_persons_federation": frozenset({Category.LOW_INCOME_SEVERELY_DISABLED}),
}
RECOGNISERS_WRITE = ("register a beneficiary", "categories (identities)")
ALL_DEPARTMENTS = (*MATRIX_DEPARTMENTS, *RECOGNISING_BODIES)

Cells = Mapping[str, str]


def cells(row: str) -> Cells:
    """One matrix row for all departments: ``{"insurer": "M", ...}``."""
    by_department = dict(zip(MATRIX_DEPARTMENTS, MATRIX[row].split(), strict=True))
    for body in RECOGNISING_BODIES:
        cell = by_department["civil_affairs"]
        by_department[body] = cell if row in RECOGNISERS_WRITE else cell.replace("W", "") or "–"
    return by_department


def reads(cell: str) -> bool:
    return "R" in cell or "M" in cell


def union(*rows: str) -> Cells:
    """Read wherever any of ``rows`` reads: the path to data is open to everyone who reads it."""
    return {d: "R" if any(reads(cells(r)[d]) for r in rows) else "–" for d in ALL_DEPARTMENTS}


def both(*rows: str) -> Cells:
    """Read only where all of ``rows`` read: a field of one kind shown inside another."""
    return {d: "R" if all(reads(cells(r)[d]) for r in rows) else "–" for d in ALL_DEPARTMENTS}


def writers(row: str) -> Cells:
    return {d: "W" if "W" in cells(row)[d] else "–" for d in ALL_DEPARTMENTS}


REGISTER = "register a beneficiary"
NAME = "name"
PERSON = "gender, region"
CATEGORIES = "categories (identities)"
FLAGS = "monitoring flags"
TILT = "preferential treatment"
ENROLLMENTS = "enrollments, subsidies"
CLAIMS = "claims: dates, hospital, costs"
SETTLEMENTS = "settlement breakdown"
ALERTS = "high-cost alerts"
POLICIES = "benefit policies"


def fields(spec: str) -> list[tuple[str, str]]:
    """``"Claim: diagnosis year | Identity: *"`` → Claim.diagnosis, Claim.year and every field of
    Identity; ``"Settlement: * -category"`` → every field of Settlement but its category."""
    result: list[tuple[str, str]] = []
    for part in spec.split("|"):
        type_name, names = (text.strip() for text in part.split(":"))
        words = names.split()
        if "*" in words:
            but = {word[1:] for word in words if word.startswith("-")}
            result += [(type_name, name) for name in CATALOG[type_name] if name not in but]
        else:
            result += [(type_name, name) for name in words]
    return result


PERSONS = union(NAME, PERSON)  # the auditor sees beneficiary ids only inside audit records
CONNECTED = (PERSONS, union(CLAIMS, SETTLEMENTS), union(ALERTS), union("audit log"))
PAGING = {d: "R" if any(c[d] == "R" for c in CONNECTED) else "–" for d in ALL_DEPARTMENTS}

MEDICAL_INSURANCE_ONLY = {d: "R" if d == "medical_insurance" else "–" for d in ALL_DEPARTMENTS}
NOTIFIED = {
    d: "R" if reads(union(ALERTS)[d]) or reads(both(CLAIMS, PERSON)[d]) else "–"
    for d in ALL_DEPARTMENTS
}

# The schema's fields by matrix row, with the cell each department should have. A field may sit
# in two rows if they agree (settleClaim writes claims and settlements).
# fmt: off
ROWS: list[tuple[str, Cells]] = [
    ("Mutation: registerBeneficiary", writers(REGISTER)),
    ("Query: beneficiary beneficiaries | BeneficiaryConnection: * | BeneficiaryEdge: *", PERSONS),
    ("Beneficiary: id", cells("beneficiary id")),
    ("Beneficiary: name", cells(NAME)),
    ("Beneficiary: idNumber", cells("ID number")),
    ("Beneficiary: gender regionCode", cells(PERSON)),
    ("Beneficiary: birthDate", cells("birth date")),
    ("Beneficiary: birthYear", cells("birth year")),
    ("Beneficiary: identities | Identity: *", union(CATEGORIES)),
    ("Mutation: recordIdentity endIdentity", writers(CATEGORIES)),
    # a write's payload: its record for the writer; what the write changed in settlements for
    # the writers who also read settlements
    ("RecordIdentityPayload: identity | EndIdentityPayload: identity",
     {d: "R" if c == "W" else "–" for d, c in writers(CATEGORIES).items()}),
    ("RecordIdentityPayload: adjustments | EndIdentityPayload: adjustments",
     {d: "R" if c == "W" and reads(cells(SETTLEMENTS)[d]) else "–"
      for d, c in writers(CATEGORIES).items()}),
    ("RecordMonitoringFlagPayload: * | EndMonitoringFlagPayload: *",
     {d: "R" if c == "W" else "–" for d, c in writers(FLAGS).items()}),
    ("ReverseSettlementPayload: *", MEDICAL_INSURANCE_ONLY),
    # a category shown inside a subsidy or a settlement: for who reads both
    ("SubsidySplit: category", both(CATEGORIES, ENROLLMENTS)),
    ("Settlement: category | SettlementEvent: category", both(CATEGORIES, SETTLEMENTS)),
    ("Settlement: explanation", cells("settlement explanation")),
    ("Beneficiary: monitoringFlags | MonitoringFlag: *", union(FLAGS)),
    ("Mutation: recordMonitoringFlag endMonitoringFlag", writers(FLAGS)),
    # an insurer learns the tilt per claim, never by probing dates (ACCESS.md, minimisation)
    ("Beneficiary: preferentialTreatment", {**cells(TILT), "insurer": "–"}),
    ("Settlement: preferentialTreatment", both(TILT, SETTLEMENTS)),
    ("Claim: preferentialTreatment", both(TILT, CLAIMS)),
    ("Beneficiary: enrollments | Enrollment: * | SubsidySplit: * -category", union(ENROLLMENTS)),
    ("Mutation: recordEnrollment", writers(ENROLLMENTS)),
    ("Query: claim claims | Claim: type hospitalLevel hospitalCode admissionDate dischargeDate"
     " totalCost policyScopeCost referralCompliant inProvince specialTreatmentHospital carrier"
     " acknowledged", union(CLAIMS)),
    ("Mutation: settleClaim reverseSettlement", writers(CLAIMS)),
    ("Claim: diagnosis", cells("claims: diagnosis")),
    # what leads to claims or settlements: for everyone who reads either
    ("Beneficiary: claims | ClaimConnection: * | ClaimEdge: * | Claim: claimNumber year reversed",
     union(CLAIMS, SETTLEMENTS)),
    # "health sees claims without names or ID numbers": a claim's person is for who reads both
    ("Claim: beneficiary", both(CLAIMS, PERSON)),
    ("Claim: settlement settlements | Settlement: * -category -explanation -preferentialTreatment"
     " -assistance -secondaryAssistance -outOfPocket"
     " | SettlementEvent: * -category -assistance -secondaryAssistance -outOfPocket -reason",
     union(SETTLEMENTS)),
    ("Settlement: assistance secondaryAssistance | SettlementEvent: assistance"
     " secondaryAssistance", cells("assistance lines")),
    ("Settlement: outOfPocket | SettlementEvent: outOfPocket reason",
     cells("out-of-pocket, reasons")),
    ("Mutation: settleClaim reverseSettlement", writers(SETTLEMENTS)),
    ("Beneficiary: yearlySummary | YearlySummary: *", union("yearly summary")),
    ("Query: highCostAlerts | Beneficiary: highCostAlerts | HighCostAlert: *"
     " | HighCostAlertConnection: * | HighCostAlertEdge: *", union(ALERTS)),
    ("Mutation: resolveAlert acknowledgeAlert recogniseAlert rejectAlert", writers(ALERTS)),
    # Applications (依申请救助, 攀枝花 第二十二条; not in the matrix): received at the window of
    # every department that registers persons, decided by the recognising ones.
    ("Query: applications | Application: * | ApplicationConnection: * | ApplicationEdge: *",
     {d: "R" if "W" in cells(REGISTER)[d] else "–" for d in ALL_DEPARTMENTS}),
    ("Mutation: submitApplication", writers(REGISTER)),
    ("Mutation: acknowledgeApplication recogniseApplication rejectApplication",
     {d: "W" if "W" in cells(CATEGORIES)[d] + cells(FLAGS)[d] else "–" for d in ALL_DEPARTMENTS}),
    ("Query: statistics | Statistics: * | CategoryCount: *", union("aggregates")),
    ("Query: dashboard | Dashboard: * -fundBalances | DashboardCell: * | PayerShare: *"
     " | OutOfPocketBand: * | DashboardCount: * | SubsidyTotal: *", union("aggregates")),
    ("Query: auditLog accessReport auditCheckpoints | AuditRecord: * | AccessReport: *"
     " | AuditRecordConnection: * | AuditRecordEdge: * | AuditCheckpoint: *", union("audit log")),
    ("Query: benefitPolicies | BenefitPolicy: *", union(POLICIES)),
    # simulateSettlement computes on given inputs and stores nothing: part of "benefit
    # policies", a mutation for every reader of them, the explanation types readable through it
    ("Mutation: simulateSettlement", {d: c.replace("R", "W") for d, c in union(POLICIES).items()}),
    ("Simulation: * | SimulatedVisit: * | Explanation: * | CategoryChoice: * | PayerLine: *"
     " | CategoryCandidate: * | AssistanceCandidate: * | Segment: * | ParameterReference: *",
     union(POLICIES)),
    # "insurer … writes acknowledgement of its claims" (ACCESS.md, departments)
    ("Mutation: acknowledgeClaim", {d: "W" if d == "insurer" else "–" for d in ALL_DEPARTMENTS}),
    ("PageInfo: *", PAGING),
    # SETTLEMENT.md §9.4-§9.5: recoveries, closed years and their late news are medical
    # insurance's to read and decide (part of "settlement breakdown", write side).
    ("Query: recoveries lateNews settlementYearClosings | Recovery: * | RecoveryConnection: *"
     " | RecoveryEdge: * | LateNews: * | LateNewsChange: * | LateNewsConnection: *"
     " | LateNewsEdge: * | SettlementYearClosing: *", MEDICAL_INSURANCE_ONLY),
    ("Mutation: decideRecovery closeSettlementYear",
     {d: "W" if d == "medical_insurance" else "–" for d in ALL_DEPARTMENTS}),
    # ACCESS.md's hospital paragraph: the admission check is the hospital's alone.
    ("Query: depositWaiver | DepositWaiver: *", {d: "–" for d in ALL_DEPARTMENTS}),
    # Change notifications (issue 12; not in the matrix): the feed and webhooks for every
    # department that reads alerts, or claims with their persons; each kind of change for who
    # reads its subject.
    ("Query: changes webhooks webhookDeliveries | ChangeFeed: * | Change: cursor type at"
     " | Webhook: * | WebhookDelivery: *", NOTIFIED),
    ("Mutation: registerWebhook deleteWebhook redeliverWebhook",
     {d: c.replace("R", "W") for d, c in NOTIFIED.items()}),
    ("Change: claim | Subscription: claimChanged", both(CLAIMS, PERSON)),
    ("Change: alert | Subscription: alertChanged", union(ALERTS)),
    ("Change: beneficiary | Subscription: identityChanged", union(CATEGORIES)),
    ("Change: application",
     {d: "R" if "W" in cells(REGISTER)[d] else "–" for d in ALL_DEPARTMENTS}),
    # Issue 13: fund statements for finance and medical insurance, and for an insurer its own
    # carrier's (the row rule is the resolver's); the reconciliation for the first two only.
    ("Query: fundStatement | FundStatement: * | FundStatementLine: *",
     {d: "R" if d in ("medical_insurance", "finance", "insurer") else "–"
      for d in ALL_DEPARTMENTS}),
    ("Query: fundReconciliation | FundReconciliation: * | FundReconciliationLine: *",
     {d: "R" if d in ("medical_insurance", "finance") else "–" for d in ALL_DEPARTMENTS}),
    # Issue 14: fund balances on the dashboard for who reads the dashboard and every fund's
    # statement (an insurer's statements are its own carrier's: not every fund's sum).
    ("Dashboard: fundBalances | FundBalance: *",
     {d: "R" if d in ("medical_insurance", "finance") else "–" for d in ALL_DEPARTMENTS}),
]
# ACCESS.md gives the hospital a paragraph instead of a matrix column: "whether a person is
# entitled to 先诊疗后付费 … (yes/no, no category), the claims of its own hospital code with their
# settlement lines, … name and ID number of those claims' persons as printed on the 结算单";
# it submits claims of its own hospital code. Not the category, tilt, explanation or reasons.
HOSPITAL_GRANTS = (
    "Query: depositWaiver claim claims | DepositWaiver: * | ClaimConnection: * | ClaimEdge: *"
    " | PageInfo: * | Claim: * -preferentialTreatment -acknowledged | Beneficiary: name idNumber"
    " | Settlement: * -category -explanation -preferentialTreatment"
    " | SettlementEvent: * -category -reason"
    " | Query: fundStatement | FundStatement: * | FundStatementLine: *"  # its own (issue 13)
)
# fmt: on


def test_the_hospital_file_grants_exactly_the_hospital_paragraph_of_access_md(
    policies: AccessPolicies,
) -> None:
    hospital = policies.departments["hospital"]
    reads = {cell: Mode.READ for cell in fields(HOSPITAL_GRANTS)}
    assert dict(hospital.grants) == {**reads, ("Mutation", "settleClaim"): Mode.WRITE}
    assert hospital.purposes_for_personal == {"treatment"}


def expected_mode(type_name: str, cell: str) -> Mode | None:
    if type_name == "Mutation":
        return Mode.WRITE if "W" in cell else None
    if "M" in cell:
        return Mode.MASKED
    return Mode.READ if "R" in cell else None


@pytest.fixture(scope="module")
def policies() -> AccessPolicies:
    return load_access(CATALOG)


# --- the bundled files ------------------------------------------------------------------------


def test_bundled_files_load_with_every_department_and_recognising_body(
    policies: AccessPolicies,
) -> None:
    assert set(policies.departments) == {*ALL_DEPARTMENTS, "hospital"}
    for name, policy in policies.departments.items():
        assert policy.department == name
        assert policy.title


def test_policy_files_agree_with_the_access_matrix_cell_by_cell(
    policies: AccessPolicies,
) -> None:
    disagreements = [
        f"{department} {type_name}.{name}: file says {found}, matrix says {wanted}"
        for spec, expected in ROWS
        for department, cell in expected.items()
        for type_name, name in fields(spec)
        for found in [policies.departments[department].mode(type_name, name)]
        for wanted in [expected_mode(type_name, cell)]
        if found != wanted
    ]
    assert disagreements == []


def test_matrix_rows_cover_every_field_of_the_schema() -> None:
    covered = {field for spec, _ in ROWS for field in fields(spec)}
    assert covered <= {(t, name) for t, names in CATALOG.items() for name in names}
    assert [
        (t, name) for t, names in CATALOG.items() for name in names if (t, name) not in covered
    ] == []


def test_write_categories_are_each_bodys_own(policies: AccessPolicies) -> None:
    written = {name: p.write_categories for name, p in policies.departments.items()}
    assert written["civil_affairs"] == {
        Category.EXTREME_POVERTY,
        Category.ORPHAN,
        Category.MINIMUM_LIVING,
        Category.MARGINAL_LOW_INCOME,
        Category.ILLNESS_IMPOVERISHED,
        Category.LOW_INCOME,
        Category.TEMPORARY_ASSISTANCE_SERIOUS_ILLNESS,
        Category.DOWNSIZED_1960S_WORKER,
    }
    assert written["rural_revitalisation"] == {
        Category.MONITORED,
        Category.REGISTERED_POOR,
        Category.POVERTY_EXIT_SECURED,
    }
    for body, own in RECOGNISING_BODIES.items():
        assert written[body] == own
    for department in ("medical_insurance", "finance", "health", "insurer", "dashboard"):
        assert written[department] == frozenset()
    assert policies.departments["trade_union"].may_write_category(Category.DISTRESSED_WORKER)
    assert not policies.departments["trade_union"].may_write_category(Category.ORPHAN)


def test_every_department_is_limited_by_region_and_the_insurer_by_carrier_too(
    policies: AccessPolicies,
) -> None:
    for name, policy in policies.departments.items():
        expected = {
            "insurer": {"region", "carrier", "carried_persons"},
            "hospital": {"region", "hospital"},
        }.get(name, {"region"})
        assert policy.rows == expected, name


def test_only_medical_insurance_may_introspect_in_production(policies: AccessPolicies) -> None:
    allowed = {name for name, policy in policies.departments.items() if policy.introspection}
    assert allowed == {"medical_insurance"}


def test_insurer_needs_the_claim_handling_purpose_for_personal_fields(
    policies: AccessPolicies,
) -> None:
    insurer = policies.departments["insurer"]
    assert insurer.needs_purpose(None)
    assert insurer.needs_purpose("marketing")
    assert not insurer.needs_purpose("claim_handling")
    assert not policies.departments["civil_affairs"].needs_purpose(None)


def test_personal_fields_are_person_level_data_and_not_aggregates_or_keys(
    policies: AccessPolicies,
) -> None:
    assert policies.is_personal("Beneficiary", "name")
    assert policies.is_personal("Beneficiary", "identities")
    assert policies.is_personal("Claim", "diagnosis")
    assert policies.is_personal("Settlement", "assistance")
    assert not policies.is_personal("Beneficiary", "id")
    assert not policies.is_personal("Claim", "claimNumber")
    assert not policies.is_personal("Statistics", "persons")
    assert not policies.is_personal("SimulatedVisit", "category")
    assert not policies.is_personal("AuditRecord", "beneficiaryIds")


def test_no_field_of_the_schema_is_unreadable_by_every_department(
    policies: AccessPolicies,
) -> None:
    assert policies.unreadable(CATALOG) == []


def test_a_field_no_department_may_use_is_reported_as_dead_schema(
    policies: AccessPolicies,
) -> None:
    grown = graphql.build_schema(SDL + "extend type Beneficiary { shoeSize: Int }")
    assert policies.unreadable(catalog_of(grown)) == ["Beneficiary.shoeSize"]


def test_catalog_lists_object_types_with_the_object_type_each_field_returns() -> None:
    assert CATALOG["Beneficiary"]["identities"] == "Identity"
    assert CATALOG["Beneficiary"]["claims"] == "ClaimConnection"
    assert CATALOG["Beneficiary"]["name"] is None
    assert CATALOG["Query"]["benefitPolicies"] == "BenefitPolicy"
    assert not any(name.startswith("__") for name in CATALOG)
    assert "Decimal" not in CATALOG


# --- masks ------------------------------------------------------------------------------------


def test_masks_keep_the_family_name_and_the_ends_of_an_id_number(
    policies: AccessPolicies,
) -> None:
    assert mask_name("张三丰") == "张**"
    assert mask_id_number("510402197001011234") == "5104**********1234"
    assert policies.mask("Beneficiary", "name", "张三丰") == "张**"
    assert policies.mask("Beneficiary", "idNumber", "510402197001011234") == "5104**********1234"


@pytest.mark.parametrize("value", ["", "张", "12", "5104021970"])
def test_masks_of_short_or_empty_values_hide_what_they_can_without_crashing(value: str) -> None:
    assert len(mask_name(value)) == len(value)
    assert mask_name(value)[1:] == "*" * (len(value) - 1)
    assert mask_id_number(value) == "*" * len(value)


def test_masking_a_field_without_a_mask_kind_raises_instead_of_leaking(
    policies: AccessPolicies,
) -> None:
    with pytest.raises(KeyError, match=r"Beneficiary\.gender"):
        policies.mask("Beneficiary", "gender", "F")


# --- a broken file is refused -----------------------------------------------------------------


def copy_bundled(directory: Path) -> Path:
    for path in ACCESS_DIRECTORY.glob("*.yaml"):
        shutil.copy(path, directory / path.name)
    return directory


def break_file(directory: Path, name: str, old: str, new: str) -> int:
    """Replace the first ``old`` after the header comment with ``new``; the 1-based line where
    the replacement starts."""
    path = directory / name
    text = path.read_text(encoding="utf-8")
    body = text.index("\npersonal:") if name == "_fields.yaml" else text.index("\ndepartment:")
    at = text.index(old, body)
    path.write_text(text[:at] + new + text[at + len(old) :], encoding="utf-8")
    return text[:at].count("\n") + 1


def line_with(directory: Path, name: str, snippet: str) -> int:
    """The 1-based line of the first line of ``name`` holding ``snippet`` (header excluded)."""
    lines = (directory / name).read_text(encoding="utf-8").splitlines()
    return next(n for n, t in enumerate(lines, 1) if snippet in t and not t.startswith("#"))


# (what breaks, file, old, new, the key without its line, words of the reason, where the key's
# line is: an offset from the first line of `new`, or a text on that line, or None for "some line")
# fmt: off
BROKEN = [
    ("unknown top-level key", "finance.yaml", "introspection: false",
     "colour: blue\nintrospection: false", "colour", "unknown key", 0),
    ("department is not the file name", "finance.yaml", "department: finance",
     "department: financ", "department", "file name", 0),
    ("unknown type", "finance.yaml", "  Statistics:", "  Statistic:",
     "grants.Statistic", "did you mean 'Statistics'", 0),
    ("typo in a field", "insurer.yaml", "    name: masked", "    nmae: masked",
     "grants.Beneficiary.nmae", "did you mean 'name'", 0),
    ("unknown mode", "finance.yaml", "persons: read", "persons: raed",
     "grants.Statistics.persons", "unknown mode", 0),
    ("write on a query field", "finance.yaml", "year: read", "year: write",
     "grants.Statistics.year", "only for Mutation", 0),
    ("read on a mutation", "finance.yaml", "simulateSettlement: write", "simulateSettlement: read",
     "grants.Mutation.simulateSettlement", "only be `write`", 0),
    ("masked without a mask kind", "insurer.yaml", "    gender: read", "    gender: masked",
     "grants.Beneficiary.gender", "mask kind", 0),
    ("unknown category", "civil_affairs.yaml", "  - ORPHAN\n", "  - ORPHANS\n",
     "write_categories[1]", "unknown category", 0),
    ("category without its mutation", "trade_union.yaml", "    resolveAlert: forbidden",
     "    resolveAlert: forbidden\n    recordIdentity: forbidden", "write_categories[0]",
     "needs Mutation.recordIdentity", "write_categories:"),
    ("monitoring flag written by civil affairs", "civil_affairs.yaml", "  - ORPHAN\n",
     "  - MONITORED\n", "write_categories[1]", "needs Mutation.recordMonitoringFlag", 0),
    # recordIdentity is granted by civil_affairs, which trade_union extends: the error points
    # at the extends line.
    ("mutation without a category", "trade_union.yaml", "write_categories: [DISTRESSED_WORKER]",
     "write_categories: []", "grants.Mutation.recordIdentity", "no identity category",
     "extends:"),
    ("revoking what the extended file does not grant", "trade_union.yaml",
     "    resolveAlert: forbidden", "    resolveAlert: forbidden\n    acknowledgeClaim: forbidden",
     "grants.Mutation.acknowledgeClaim", "civil_affairs does not grant it", 1),
    ("extending an unknown department", "trade_union.yaml", "extends: civil_affairs",
     "extends: civil_affair", "extends", "no department 'civil_affair'", 0),
    ("extending itself", "trade_union.yaml", "extends: civil_affairs", "extends: trade_union",
     "extends", "extends itself", 0),

    ("unknown row rule", "finance.yaml", "rows: [region]", "rows: [region, postcode]",
     "rows[1]", "unknown row rule", 0),
    ("region missing from rows", "insurer.yaml", "rows: [region, carrier, carried_persons]",
     "rows: [carrier, carried_persons]", "rows", "`region`", 0),
    ("carried persons without carrier", "insurer.yaml",
     "rows: [region, carrier, carried_persons]", "rows: [region, carried_persons]",
     "rows", "needs `carrier`", 0),
    ("dead end on a query field", "finance.yaml", "    statistics: read",
     "    statistics: read\n    beneficiaries: read", "grants.Query.beneficiaries", "dead end", 1),
    ("dead end on a mutation", "dashboard.yaml", "    simulateSettlement: write",
     "    simulateSettlement: write\n    registerBeneficiary: write",
     "grants.Mutation.registerBeneficiary", "dead end", 1),
    ("introspection not a boolean", "health.yaml", "introspection: false",
     "introspection: maybe", "introspection", "true or false", 0),
    ("duplicate field", "health.yaml", "    diagnosis: read",
     "    diagnosis: read\n    diagnosis: read", "grants.Claim.diagnosis", "duplicate", 1),
    ("purpose that is not a word", "insurer.yaml", "[claim_handling]", "[Claim Handling]",
     "purpose.required_for_personal[0]", "purpose word", 0),
    ("unknown type in _fields", "_fields.yaml", "  Claim: {", "  Claims: {",
     "personal.Claims", "unknown type", 0),
    ("unknown field in _fields", "_fields.yaml", "[claimNumber]", "[claimNumbr]",
     "personal.Claim.all_except[0]", "unknown field", 0),
    ("unknown mask kind", "_fields.yaml", "    name: name", "    name: initials",
     "masks.Beneficiary.name", "unknown mask kind", 0),
    ("mask on a non-personal field", "_fields.yaml", "    name: name", "    id: name",
     "masks.Beneficiary.id", "only a personal field", 0),
    ("personal spec of a wrong shape", "_fields.yaml", "  Identity: all", "  Identity: most",
     "personal.Identity", "`all`", 0),
    ("invalid YAML", "health.yaml", "rows: [region]", "rows: [region", "<file>",
     "not valid YAML", None),
]
# fmt: on


@pytest.mark.parametrize(
    ("name", "old", "new", "key", "reason", "where"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_a_broken_file_is_refused_naming_the_file_the_key_and_the_line(
    tmp_path: Path, name: str, old: str, new: str, key: str, reason: str, where: int | str | None
) -> None:
    line = break_file(copy_bundled(tmp_path), name, old, new)
    with pytest.raises(PolicyFileError) as caught:
        load_access(CATALOG, tmp_path)
    error = caught.value
    assert error.file == name
    assert error.key.startswith(f"{key} (line "), error.key
    if isinstance(where, int):
        assert error.key == f"{key} (line {line + where})"
    elif isinstance(where, str):
        assert error.key == f"{key} (line {line_with(tmp_path, name, where)})"
    assert reason in error.reason
    assert str(error).startswith(f"{name}: {key} (line ")


def test_departments_extending_each_other_in_a_circle_are_refused(tmp_path: Path) -> None:
    break_file(copy_bundled(tmp_path), "civil_affairs.yaml", "rows: [region]",
               "extends: veterans_affairs\nrows: [region]")  # fmt: skip
    with pytest.raises(PolicyFileError) as caught:
        load_access(CATALOG, tmp_path)
    assert caught.value.key.startswith("extends (line ")
    assert "civil_affairs -> veterans_affairs -> civil_affairs" in caught.value.reason


def test_a_recognising_body_is_civil_affairs_but_for_its_category_and_alerts(
    policies: AccessPolicies,
) -> None:
    civil = policies.departments["civil_affairs"]
    for body, own in RECOGNISING_BODIES.items():
        policy = policies.departments[body]
        assert policy.write_categories == own
        alert_mutations = ("resolveAlert", "acknowledgeAlert", "recogniseAlert", "rejectAlert")
        assert set(civil.grants) - set(policy.grants) == {("Mutation", m) for m in alert_mutations}
        assert set(policy.grants) <= set(civil.grants)
        assert (policy.rows, policy.introspection) == (civil.rows, civil.introspection)


@pytest.mark.parametrize(
    ("extra", "file"),
    [("_roles.yaml", "_roles.yaml"), ("health.yml", "health.yml")],
    ids=["an unknown shared file", "a .yml file"],
)
def test_a_stray_file_in_the_policy_folder_is_refused(
    tmp_path: Path, extra: str, file: str
) -> None:
    copy_bundled(tmp_path)
    (tmp_path / extra).write_text("department: health\n", encoding="utf-8")
    with pytest.raises(PolicyFileError) as caught:
        load_access(CATALOG, tmp_path)
    assert caught.value.file == file


def test_a_missing_fields_file_is_refused(tmp_path: Path) -> None:
    copy_bundled(tmp_path)
    (tmp_path / "_fields.yaml").unlink()
    with pytest.raises(PolicyFileError) as caught:
        load_access(CATALOG, tmp_path)
    assert caught.value.file == "_fields.yaml"


def test_a_missing_required_key_is_refused_at_the_line_of_its_mapping(tmp_path: Path) -> None:
    copy_bundled(tmp_path)
    path = tmp_path / "health.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(t for t in lines if not t.startswith("title:")), encoding="utf-8")
    with pytest.raises(PolicyFileError) as caught:
        load_access(CATALOG, tmp_path)
    assert caught.value.key == f"title (line {line_with(tmp_path, 'health.yaml', 'department:')})"
    assert caught.value.reason == "missing required key"


def test_a_policy_file_against_a_schema_without_its_field_is_refused(tmp_path: Path) -> None:
    copy_bundled(tmp_path)
    # Claim.diagnosis with its description (a description alone is not a definition).
    field = '  """ICD-10 code."""\n  diagnosis: String\n'
    assert SDL.count(field) == 1
    shrunk = graphql.build_schema(SDL.replace(field, ""))
    with pytest.raises(PolicyFileError) as caught:
        load_access(catalog_of(shrunk), tmp_path)
    assert caught.value.key.startswith("grants.Claim.diagnosis (line ")


# --- the forbidden-field walk -----------------------------------------------------------------


def forbidden(
    policies: AccessPolicies, department: str, query: str, operation_name: str | None = None
) -> list[str]:
    policy = policies.departments[department]
    return forbidden_paths(graphql.parse(query), SCHEMA, policy, operation_name)


def test_insurer_may_not_see_categories(policies: AccessPolicies) -> None:
    query = '{ beneficiary(id: "1") { name identities { category } } }'
    assert forbidden(policies, "insurer", query) == ["beneficiary.identities"]


def test_an_insurer_may_not_filter_persons_by_what_it_may_not_read(
    policies: AccessPolicies,
) -> None:
    query = "{ beneficiaries(category: MINIMUM_LIVING, first: 5) { edges { cursor } } }"
    assert forbidden(policies, "insurer", query) == ["beneficiaries(category)"]
    assert forbidden(policies, "civil_affairs", query) == []
    by_number = '{ beneficiary(idNumber: "510402197001010013") { gender } }'
    assert forbidden(policies, "insurer", by_number) == []


def test_filters_name_existing_arguments_and_fields(tmp_path: Path) -> None:
    from policies.access.policy import arguments_of

    copy_bundled(tmp_path)
    line = break_file(
        tmp_path,
        "_fields.yaml",
        "regionPrefix: [Beneficiary.regionCode]",
        "regionPrefx: [Beneficiary.regionCode]",
    )
    with pytest.raises(PolicyFileError) as caught:
        load_access(CATALOG, tmp_path, arguments=arguments_of(SCHEMA))
    assert caught.value.key == f"filters.Query.beneficiaries.regionPrefx (line {line})"
    copy_bundled(tmp_path)
    break_file(
        tmp_path,
        "_fields.yaml",
        "category: [Beneficiary.identities,",
        "category: [Beneficiary.identitees,",
    )
    with pytest.raises(PolicyFileError, match=r"unknown field 'Beneficiary\.identitees'"):
        load_access(CATALOG, tmp_path)


def test_health_sees_claims_without_the_person(policies: AccessPolicies) -> None:
    query = "{ claims { edges { node { diagnosis beneficiary { name } } } } }"
    assert forbidden(policies, "health", query) == ["claims.edges.node.beneficiary"]


def test_finance_may_not_list_beneficiaries_and_nothing_below_is_listed(
    policies: AccessPolicies,
) -> None:
    query = """{ beneficiaries { edges { node { name idNumber } } }
                 statistics(regionPrefix: "51", year: 2024) { persons } }"""
    assert forbidden(policies, "finance", query) == ["beneficiaries"]


def test_forbidden_fields_deep_in_nested_lists_are_each_listed(policies: AccessPolicies) -> None:
    query = """{ beneficiaries { edges { node {
        name identities { category }
        claims { edges { node { claimNumber diagnosis totalCost settlement { assistance } } } }
    } } } }"""
    assert forbidden(policies, "civil_affairs", query) == [
        "beneficiaries.edges.node.claims.edges.node.diagnosis",
        "beneficiaries.edges.node.claims.edges.node.totalCost",
    ]


def test_paths_use_field_names_not_aliases_and_list_each_path_once(
    policies: AccessPolicies,
) -> None:
    query = """{ a: beneficiary(id: "1") {
        who: name c1: identities { category } c2: identities { org } } }"""
    assert forbidden(policies, "insurer", query) == ["beneficiary.identities"]


def test_inline_fragments_are_walked(policies: AccessPolicies) -> None:
    query = """{ beneficiary(id: "1") {
        ... on Beneficiary { monitoringFlags { category } } ... { gender } } }"""
    assert forbidden(policies, "insurer", query) == ["beneficiary.monitoringFlags"]


def test_named_fragments_are_walked_wherever_they_are_spread(policies: AccessPolicies) -> None:
    query = """
    query { claims { edges { node { ...C } } } beneficiary(id: "1") { ...P } }
    fragment C on Claim { diagnosis settlement { category basicInsurance } beneficiary { ...P } }
    fragment P on Beneficiary { name identities { category } }
    """
    assert forbidden(policies, "insurer", query) == [
        "beneficiary.identities",
        "claims.edges.node.beneficiary.identities",
        "claims.edges.node.settlement.category",
    ]


def test_a_fragment_cycle_ends_the_walk(policies: AccessPolicies) -> None:
    query = """
    query { beneficiary(id: "1") { ...A } }
    fragment A on Beneficiary { name ...B }
    fragment B on Beneficiary { enrollments { year } ...A }
    """
    assert forbidden(policies, "insurer", query) == ["beneficiary.enrollments"]


def test_only_the_chosen_operation_is_walked_unless_it_cannot_be_told(
    policies: AccessPolicies,
) -> None:
    query = """
    query Stats { statistics(regionPrefix: "51", year: 2024) { persons } }
    query Audit { auditLog { edges { node { id } } } }
    """
    assert forbidden(policies, "finance", query, "Stats") == []
    assert forbidden(policies, "finance", query, "Audit") == ["auditLog"]
    assert forbidden(policies, "finance", query) == ["auditLog"]
    assert forbidden(policies, "finance", query, "Nope") == ["auditLog"]


def test_mutations_need_a_write_grant(policies: AccessPolicies) -> None:
    query = """mutation {
        settleClaim(claimNumber: "C1") { assistance }
        acknowledgeClaim(claimNumber: "C1") { claimNumber acknowledged }
        recordIdentity(beneficiaryId: "1", category: "ORPHAN") { category }
    }"""
    assert forbidden(policies, "insurer", query) == ["recordIdentity", "settleClaim"]
    assert forbidden(policies, "civil_affairs", query) == ["acknowledgeClaim", "settleClaim"]


def test_everyone_reads_an_explanation_through_a_simulation_but_not_through_a_settlement(
    policies: AccessPolicies,
) -> None:
    simulation = """mutation { simulateSettlement(regionCode: "510402") { visits {
        category explanation { category { category } payers { references { clause } } } } } }"""
    settlement = (
        '{ claim(claimNumber: "C1") { settlement { preferentialTreatment explanation { text } } } }'
    )
    for department in ALL_DEPARTMENTS:
        assert forbidden(policies, department, simulation) == [], department
    assert forbidden(policies, "insurer", settlement) == ["claim.settlement.explanation"]
    assert forbidden(policies, "medical_insurance", settlement) == []


def test_typename_introspection_and_unknown_fields_are_not_the_walks_business(
    policies: AccessPolicies,
) -> None:
    query = """{ __typename __schema { types { name } }
        statistics(regionPrefix: "51", year: 2024) { __typename bogus persons } }"""
    assert forbidden(policies, "finance", query) == []


class Granted:
    def __init__(self, fields: Iterable[tuple[str, str]]) -> None:
        self.fields = set(fields)

    def can_use(self, type_name: str, field: str) -> bool:
        return (type_name, field) in self.fields

    def can_use_argument(self, type_name: str, field: str, argument: str) -> bool:
        return True


def test_a_field_on_an_interface_needs_the_grant_on_every_implementing_type() -> None:
    schema = graphql.build_schema(
        "interface Node { id: ID } type A implements Node { id: ID } "
        "type B implements Node { id: ID } type Query { node: Node }"
    )
    query = graphql.parse("{ node { id ... on A { id } } }")
    partly = Granted({("Query", "node"), ("A", "id")})
    fully = Granted({("Query", "node"), ("A", "id"), ("B", "id")})
    assert forbidden_paths(query, schema, partly) == ["node.id"]
    assert forbidden_paths(query, schema, fully) == []


def test_a_fragment_spread_many_times_is_walked_quickly() -> None:
    # 30 fragments each spreading the next twice: 2**30 expansions if walked naively.
    names = [f"F{i}" for i in range(30)]
    fragments = " ".join(
        f'fragment {a} on Query {{ statistics(regionPrefix: "51", year: 1) {{ persons }} '
        f"...{b} ...{b} }}"
        for a, b in itertools.pairwise(names)
    )
    last = "fragment F29 on Query { auditLog { pageInfo { endCursor } } }"
    text = f"{{ ...F0 }} {fragments} {last}"
    grants = Granted({("Query", "statistics"), ("Statistics", "persons")})
    assert forbidden_paths(graphql.parse(text), SCHEMA, grants) == ["auditLog"]
