"""schema/schema.graphql is the exported SDL that partners code against; it equals the code."""

from __future__ import annotations

from pathlib import Path

import graphql

from schema import build_schema

SDL = Path(__file__).resolve().parents[2] / "schema" / "schema.graphql"


def test_exported_sdl_equals_the_schema_in_code() -> None:
    assert SDL.read_text(encoding="utf-8").strip() == build_schema().as_str().strip(), (
        "run: .venv/bin/medgw schema > schema/schema.graphql"
    )


def without_descriptions(sdl: str) -> str:
    """The SDL with every description removed: what a client codes against (arguments then
    print on one line, as they do when none has a description)."""
    schema = graphql.build_schema(sdl)
    for named in schema.type_map.values():
        named.description = None
        if isinstance(named, graphql.GraphQLEnumType):
            for value in named.values.values():
                value.description = None
        if isinstance(
            named,
            graphql.GraphQLObjectType
            | graphql.GraphQLInterfaceType
            | graphql.GraphQLInputObjectType,
        ):
            for field in named.fields.values():
                field.description = None
                for argument in getattr(field, "args", {}).values():
                    argument.description = None
    return graphql.print_schema(schema)


def test_the_contract_names_of_the_issues_are_there() -> None:
    sdl = without_descriptions(build_schema().as_str())
    for needle in (
        "beneficiary(id: ID = null, idNumber: String = null): Beneficiary",
        "beneficiaries(regionPrefix: String = null, category: Category = null, first: Int! = 20, "
        "after: String = null): BeneficiaryConnection!",
        # Mutation fields are nullable: each field of a document reports its own outcome.
        "registerBeneficiary(input: RegisterBeneficiaryInput!): Beneficiary\n",
        "recordIdentity(input: RecordCategoryInput!): RecordIdentityPayload\n",
        "endIdentity(input: EndCategoryInput!): EndIdentityPayload\n",
        "recordMonitoringFlag(input: RecordCategoryInput!): RecordMonitoringFlagPayload\n",
        "endMonitoringFlag(input: EndCategoryInput!): EndMonitoringFlagPayload\n",
        "recordEnrollment(input: RecordEnrollmentInput!): Enrollment\n",
        "settleClaim(input: SettleClaimInput!): Settlement\n",
        "simulateSettlement(input: SimulateSettlementInput!): Simulation\n",
        "reverseSettlement(claimNumber: String!, reason: String!): ReverseSettlementPayload\n",
        "auditLog(",
        "accessReport(idNumber: String!): AccessReport",
    ):
        assert needle in sdl, needle
