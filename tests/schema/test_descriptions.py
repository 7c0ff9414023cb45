"""Every type, field, argument, input field and enum value of the full schema is described."""

from __future__ import annotations

import graphql

from schema import build_schema


def undescribed(schema: graphql.GraphQLSchema) -> list[str]:
    """Coordinates (Type.field(argument), Enum.VALUE) of every schema element without a
    description; built-in scalars and introspection types aside."""
    missing: list[str] = []
    for name, named in sorted(schema.type_map.items()):
        if name.startswith("__") or name in graphql.specified_scalar_types:
            continue
        if not named.description:
            missing.append(name)
        if isinstance(named, graphql.GraphQLEnumType):
            missing += [f"{name}.{v}" for v, value in named.values.items() if not value.description]
        if isinstance(
            named,
            graphql.GraphQLObjectType
            | graphql.GraphQLInterfaceType
            | graphql.GraphQLInputObjectType,
        ):
            for field_name, field in named.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in getattr(field, "args", {}).items():
                    if not arg.description:
                        missing.append(f"{name}.{field_name}({arg_name})")
    return missing


def described(sdl_schema: graphql.GraphQLSchema, coordinate: str) -> str | None:
    type_name, _, member = coordinate.partition(".")
    named = sdl_schema.type_map[type_name]
    if isinstance(named, graphql.GraphQLEnumType):
        return named.values[member].description
    assert isinstance(named, graphql.GraphQLObjectType | graphql.GraphQLInputObjectType)
    field_name, _, argument = member.partition("(")
    field = named.fields[field_name]
    if argument:
        assert isinstance(field, graphql.GraphQLField)
        return field.args[argument.rstrip(")")].description
    return field.description


def test_every_element_of_the_schema_is_described() -> None:
    # Read back from the SDL, as a partner's tool or GraphiQL's Docs sees it.
    schema = graphql.build_schema(build_schema().as_str())
    assert undescribed(schema) == []


def test_the_check_finds_a_missing_description() -> None:
    schema = graphql.build_schema('"""Q"""\ntype Query {\n  """f"""\n  f(a: Int): Int\n  g: Int\n}')
    assert undescribed(schema) == ["Query.f(a)", "Query.g"]


def test_descriptions_carry_the_chinese_term_unit_and_clause() -> None:
    schema = graphql.build_schema(build_schema().as_str())
    assert described(schema, "Category.DOWNSIZED_1960S_WORKER") == (
        "20世纪60年代精减退职职工: workers downsized in the 1960s who receive the civil-affairs "
        "regular living allowance (civil affairs; 苏政办发 二(一), end-of-month grace 二(三))."
    )
    assert described(schema, "Category.MINIMUM_LIVING") == (
        "低保对象 / 最低生活保障家庭成员: members of minimum-living-guarantee households "
        "(civil affairs)."
    )
    assert described(schema, "Category.EXTREME_POVERTY") == (
        "特困人员 / 特困供养人员: persons in extreme poverty (civil affairs, 民政)."
    )
    assert described(schema, "SettleClaimInput.policyScopeCost") == (
        "政策范围内费用, yuan (at most totalCost; the rest no payer pays)."
    )
    assert described(schema, "Claim.admissionDate") == "入院日期 (China time)."
    assert described(schema, "Settlement.secondaryAssistance") == "倾斜救助 / 再救助."
    assert described(schema, "Settlement.criticalIllness") == "大病保险."
    assert described(schema, "VisitType.OUTPATIENT_CHRONIC") == (
        "门诊慢特病: outpatient treatment of a chronic or special disease (shares the basic "
        "yearly cap with stays)."
    )
    description = described(schema, "Query.claims(orderBy)")
    assert description == "The order of the rows; null (the default): ID."
