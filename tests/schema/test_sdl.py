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
        # The argument has a description, so the SDL prints one argument a line.
        "  beneficiaries(\n",
        "    regionPrefix: String = null\n    category: Category = null\n    first: Int! = 20\n"
        "    after: String = null\n  ): BeneficiaryConnection!",
        # Mutation fields are nullable: each field of a document reports its own outcome.
        "registerBeneficiary(input: RegisterBeneficiaryInput!): Beneficiary\n",
        "recordIdentity(input: RecordCategoryInput!): Identity\n",
        "endIdentity(input: EndCategoryInput!): Identity\n",
        "recordMonitoringFlag(input: RecordCategoryInput!): MonitoringFlag\n",
        "endMonitoringFlag(input: EndCategoryInput!): MonitoringFlag\n",
        "recordEnrollment(input: RecordEnrollmentInput!): Enrollment\n",
        "settleClaim(input: SettleClaimInput!): Settlement\n",
        "simulateSettlement(input: SimulateSettlementInput!): Simulation\n",
        "reverseSettlement(claimNumber: String!, reason: String!): Settlement\n",
        "auditLog(",
        "accessReport(idNumber: String!): AccessReport",
    ):
        assert needle in sdl, needle
