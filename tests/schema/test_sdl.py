"""schema/schema.graphql is the exported SDL that partners code against; it equals the code."""

from __future__ import annotations

from pathlib import Path

from schema import build_schema

SDL = Path(__file__).resolve().parents[2] / "schema" / "schema.graphql"


def test_exported_sdl_equals_the_schema_in_code() -> None:
    assert SDL.read_text(encoding="utf-8").strip() == build_schema().as_str().strip(), (
        "run: .venv/bin/medgw schema > schema/schema.graphql"
    )


def test_the_contract_names_of_the_issues_are_there() -> None:
    sdl = build_schema().as_str()
    for needle in (
        "beneficiary(id: ID = null, idNumber: String = null): Beneficiary",
        "beneficiaries(regionPrefix: String = null, category: Category = null, first: Int! = 20, "
        "after: String = null): BeneficiaryConnection!",
        "registerBeneficiary(input: RegisterBeneficiaryInput!): Beneficiary!",
        "recordIdentity(input: RecordCategoryInput!): Identity!",
        "endIdentity(input: EndCategoryInput!): Identity!",
        "recordMonitoringFlag(input: RecordCategoryInput!): MonitoringFlag!",
        "endMonitoringFlag(input: EndCategoryInput!): MonitoringFlag!",
        "recordEnrollment(input: RecordEnrollmentInput!): Enrollment!",
        "settleClaim(input: SettleClaimInput!): Settlement!",
        "simulateSettlement(input: SimulateSettlementInput!): Simulation!",
        "reverseSettlement(claimNumber: String!, reason: String!): Settlement!",
        "auditLog(",
        "accessReport(idNumber: String!): AccessReport",
    ):
        assert needle in sdl, needle
