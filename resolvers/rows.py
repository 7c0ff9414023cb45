"""Row rules as SQL: which persons, claims and alerts a caller may see at all.

The department's policy names its rules (``rows:`` in policies/access/<department>.yaml); this
module turns each name into WHERE conditions that every query of the resolvers carries, so a
forbidden row is never loaded, and is indistinguishable from a missing one.

- ``region``: persons whose region code starts with one of the token's prefixes (and everything
  hanging off them: claims, alerts, ledgers, aggregates);
- ``carrier``: only claims whose carrier is the token's organisation;
- ``carried_persons``: only persons with at least one such claim;
- ``hospital``: only claims whose hospital code is the token's organisation (a hospital,
  定点医疗机构), and only persons with at least one such claim; a patient the hospital admits
  for the first time is named by ID number in its admission check and its claim
  (:meth:`RowRules.admissible`).

Audit records follow their persons: a record is visible when one of its beneficiaries is in the
caller's rows (ACCESS.md, rows: "the auditor included").
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, exists, false, func, or_

from gateway.auth import Principal
from gateway.storage import models

KNOWN = frozenset({"region", "carrier", "carried_persons", "hospital"})


@dataclass(frozen=True)
class RowRules:
    principal: Principal
    rules: frozenset[str]

    @classmethod
    def of(cls, principal: Principal, rules: Collection[str]) -> RowRules:
        unknown = set(rules) - KNOWN
        if unknown:
            raise ValueError(f"unknown row rules {sorted(unknown)}")
        return cls(principal, frozenset(rules))

    def region(self, column: Any) -> ColumnElement[bool]:
        """``column LIKE 'p1%' OR …`` for the token's prefixes (digits only, checked when the
        token was read: nothing to escape)."""
        return or_(*(column.like(f"{prefix}%") for prefix in self.principal.regions))

    def persons(self) -> list[ColumnElement[bool]]:
        """Conditions on ``beneficiaries``."""
        conditions = [self.region(models.Beneficiary.region_code)]
        if "carried_persons" in self.rules:
            conditions.append(
                exists().where(
                    models.Claim.beneficiary_id == models.Beneficiary.id,
                    models.Claim.carrier == self.principal.org,
                )
            )
        if "hospital" in self.rules:
            conditions.append(
                exists().where(
                    models.Claim.beneficiary_id == models.Beneficiary.id,
                    models.Claim.hospital_code == self.principal.org,
                )
            )
        return conditions

    def admissible(self) -> list[ColumnElement[bool]]:
        """Conditions on ``beneficiaries`` for a person named by ID number in a write or an
        admission check: :meth:`persons`, except that a hospital may name any person of its
        regions (a patient admitted for the first time has no claim of it yet). What it may
        *read* about persons stays :meth:`persons`."""
        if "hospital" in self.rules:
            return [self.region(models.Beneficiary.region_code)]
        return self.persons()

    def person_of(self, beneficiary_id: Any) -> ColumnElement[bool]:
        """Rows about one person (alerts, recoveries, late news) that the caller may see: the
        person of ``beneficiary_id`` is in the caller's rows."""
        return exists().where(models.Beneficiary.id == beneficiary_id, *self.persons())

    def claims(self) -> list[ColumnElement[bool]]:
        """Conditions on ``claims`` (the person's own rules apply through :meth:`persons`)."""
        conditions: list[ColumnElement[bool]] = []
        if "carrier" in self.rules:
            conditions.append(models.Claim.carrier == self.principal.org)
        if "hospital" in self.rules:
            conditions.append(models.Claim.hospital_code == self.principal.org)
        return conditions

    def own_hospital(self, hospital_code: str | None) -> bool:
        """May the caller submit a claim of ``hospital_code``? A hospital only its own code;
        every other department that may settle claims, any code."""
        return "hospital" not in self.rules or hospital_code == self.principal.org

    def claims_with_persons(self) -> list[ColumnElement[bool]]:
        """Conditions on ``claims`` including their persons' rules (needs no join)."""
        return [self.person_of(models.Claim.beneficiary_id), *self.claims()]

    def audit_records(self) -> ColumnElement[bool]:
        """Conditions on ``audit_log``: one of the record's beneficiaries is in the caller's
        rows; a record about nobody (a policy read, an aggregate) is nobody's row."""
        return exists().where(
            models.Beneficiary.id == func.any(models.AuditRecord.beneficiary_ids),
            *self.persons(),
        )

    def nothing(self) -> ColumnElement[bool]:
        return false()
