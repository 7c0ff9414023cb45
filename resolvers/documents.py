"""The data of the 一单制 结算单 (攀枝花 第二十四、二十七条): one claim as a document a hospital
hands to the patient: person, hospital, stay, costs, each payer's amount, what the patient
pays, and the later adjustments with their dates.

The data is read with one GraphQL document run on the *caller's department schema*
(:func:`document_query`), so a download obeys exactly what ``claim(claimNumber:)`` obeys: the
row rules (another insurer's or hospital's claim is ``null``, as a missing one), the refusal
of fields the department may not use and the purpose rule, the masks (an insurer reads
``张**``), and the read audit record with the schema's field names. The document selects only
the fields the department may use; what it may not read is ``None`` here and shown as not
disclosed. :func:`document_of` turns the answer into a :class:`SettlementDocument`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any, Protocol

from policies.vocabulary import PAYERS

OPERATIONS = {"pdf": "SettlementDocumentPdf", "html": "SettlementDocumentHtml"}
"""The operation name of a download by format: the audit record's operation says which."""

PAYER_LABELS = {
    "basicInsurance": "基本医保",
    "criticalIllness": "大病保险",
    "inclusiveCommercial": "普惠型商业健康保险",
    "assistance": "医疗救助",
    "secondaryAssistance": "倾斜救助 / 再救助",
}
AMOUNTS = (*(payer.value for payer in PAYERS), "outOfPocket")
"""The money fields of a settlement and of its events, in the order printed."""

CLAIM_FIELDS = (
    "claimNumber",
    "type",
    "hospitalCode",
    "hospitalLevel",
    "admissionDate",
    "dischargeDate",
    "totalCost",
    "policyScopeCost",
    "reversed",
)
PERSON_FIELDS = ("name", "idNumber")
SETTLEMENT_FIELDS = ("policy", *AMOUNTS)
EVENT_FIELDS = ("kind", "createdAt", *AMOUNTS)


class Grants(Protocol):
    """What :func:`document_query` asks of a department policy."""

    def can_use(self, type_name: str, field: str) -> bool: ...


def _selection(policy: Grants, type_name: str, fields: Sequence[str]) -> list[str]:
    return [name for name in fields if policy.can_use(type_name, name)]


def document_query(policy: Grants, operation: str) -> str | None:
    """The GraphQL document that reads a claim's 结算单 for a department: only the fields it
    may use; ``None`` when it may not read claims at all (``Query.claim``).

    For the insurer: ``query SettlementDocumentPdf($claimNumber: String!) { claim(claimNumber:
    $claimNumber) { claimNumber … beneficiary { name idNumber } settlement { policy
    basicInsurance criticalIllness inclusiveCommercial } settlements { kind createdAt … } } }``
    (no assistance lines, no out-of-pocket: ACCESS.md, data minimisation for insurers).
    """
    if not policy.can_use("Query", "claim"):
        return None
    parts = _selection(policy, "Claim", CLAIM_FIELDS)
    for link, target, fields in (
        ("beneficiary", "Beneficiary", PERSON_FIELDS),
        ("settlement", "Settlement", SETTLEMENT_FIELDS),
        ("settlements", "SettlementEvent", EVENT_FIELDS),
    ):
        inner = _selection(policy, target, fields)
        if policy.can_use("Claim", link) and inner:
            parts.append(f"{link} {{ {' '.join(inner)} }}")
    return (
        f"query {operation}($claimNumber: String!) {{ "
        f"claim(claimNumber: $claimNumber) {{ {' '.join(parts)} }} }}"
    )


@dataclass(frozen=True)
class PayerAmount:
    """One line of the bill: a payer (or the patient) and the amount in yuan; ``None`` when
    the reader may not see it."""

    field: str
    label: str
    amount: Decimal | None


@dataclass(frozen=True)
class Adjustment:
    """A settlement event after the original one (ADJUSTMENT, REVERSAL, RECOVERY): when it was
    stored (China time) and what it changed, by payer, in yuan."""

    kind: str
    at: datetime
    amounts: tuple[PayerAmount, ...]


@dataclass(frozen=True)
class SettlementDocument:
    """The 结算单 of one claim as one reader may see it. Every field the reader may not read
    is ``None`` (printed as not disclosed); amounts are yuan, dates China time."""

    claim_number: str
    reader: str
    """The department the document was made for (its rules decided what shows)."""
    printed_at: datetime
    name: str | None
    id_number: str | None
    visit_type: str | None
    hospital_code: str | None
    hospital_level: str | None
    admission_date: date | None
    discharge_date: date | None
    total_cost: Decimal | None
    policy_scope_cost: Decimal | None
    policy: str | None
    reversed: bool | None
    payers: tuple[PayerAmount, ...]
    """The five payers, then the patient (``outOfPocket``): the claim's current totals."""
    settled: bool
    """Whether the claim has a settlement the reader may see."""
    adjustments: tuple[Adjustment, ...]


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _day(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(str(value))


def _amounts(row: Mapping[str, Any]) -> tuple[PayerAmount, ...]:
    labels = {**PAYER_LABELS, "outOfPocket": "个人自付"}
    return tuple(PayerAmount(name, labels[name], _money(row.get(name))) for name in AMOUNTS)


def document_of(
    claim: Mapping[str, Any], reader: str, printed_at: datetime, zone: tzinfo
) -> SettlementDocument:
    """The :class:`SettlementDocument` of the ``claim`` object that :func:`document_query`
    returned (GraphQL's JSON values: amounts and dates as text). Event times are shown in
    ``zone`` (China time); the ORIGINAL event is the settlement itself, every later one an
    adjustment."""
    person = claim.get("beneficiary") or {}
    settlement = claim.get("settlement")
    events = claim.get("settlements") or []
    adjustments = tuple(
        Adjustment(
            kind=str(event["kind"]),
            at=datetime.fromisoformat(str(event["createdAt"])).astimezone(zone),
            amounts=_amounts(event),
        )
        for event in events
        if event.get("kind") != "ORIGINAL"
    )
    return SettlementDocument(
        claim_number=str(claim["claimNumber"]),
        reader=reader,
        printed_at=printed_at.astimezone(zone),
        name=person.get("name"),
        id_number=person.get("idNumber"),
        visit_type=claim.get("type"),
        hospital_code=claim.get("hospitalCode"),
        hospital_level=claim.get("hospitalLevel"),
        admission_date=_day(claim.get("admissionDate")),
        discharge_date=_day(claim.get("dischargeDate")),
        total_cost=_money(claim.get("totalCost")),
        policy_scope_cost=_money(claim.get("policyScopeCost")),
        policy=(settlement or {}).get("policy"),
        reversed=claim.get("reversed"),
        payers=_amounts(settlement or {}),
        settled=settlement is not None,
        adjustments=adjustments,
    )
