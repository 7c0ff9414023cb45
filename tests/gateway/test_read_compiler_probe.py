# ruff: noqa: F811 (the fixtures imported from test_read_compiler are parameters here)
"""Probing the read compiler as an outsider would (issue 15.1): odd variables, forged cursors,
region prefixes, ID numbers, persons outside the caller's rows, aliases, ``__typename``,
page sizes at the bounds, operation names and batches. Each request goes to an app with the
compiler and one without (tests/gateway/test_read_compiler.py): the same status, bytes and audit
records; and, absolutely, no person outside the caller's rows, masks applied, and the audit
record naming exactly the persons returned."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from policies.access.masks import mask_id_number, mask_name
from policies.benefits import PolicySet
from tests.conftest import in_process
from tests.gateway.test_read_compiler import (  # noqa: F401 (fixtures)
    INSURER,
    Both,
    Seeded,
    audit_count,
    audit_since,
    both,
    compare,
    no_compiled_failure,
    resolver_app,
    seeded,
    spy,
    token_of,
)

PROBED = ["insurer", "hospital", "civil_affairs", "finance", "medical_insurance"]
NARROW = ("510402",)


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


async def visible(db: Database, department: str, regions: tuple[str, ...], org: str) -> set[str]:
    """The persons the caller may see at all (resolvers/rows.py, computed here in Python)."""
    async with db.transaction() as session:
        people = (await session.scalars(select(models.Beneficiary))).all()
        claims = (await session.scalars(select(models.Claim))).all()
    ids = {str(p.id) for p in people if p.region_code.startswith(regions)}
    if department == "insurer":
        ids &= {str(c.beneficiary_id) for c in claims if c.carrier == org}
    if department == "hospital":
        ids &= {str(c.beneficiary_id) for c in claims if c.hospital_code == org}
    return ids


def persons_in(value: Any, found: set[str]) -> set[str]:
    """Every ``id`` of a Beneficiary object (one that has an ``id`` key) in the response."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("id", "pid") and isinstance(item, str) and len(item) == 36:
                found.add(item)
            persons_in(item, found)
    elif isinstance(value, list):
        for item in value:
            persons_in(item, found)
    return found


async def probe(
    both: Both,
    department: str,
    query: str,
    variables: dict[str, Any] | None = None,
    regions: tuple[str, ...] = ("5104", "3201"),
    org: str | None = None,
) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    org = org or {"insurer": INSURER, "hospital": "H1"}.get(department, "o-1")
    body, records = await compare(
        both, department, query, variables, token_of(department, regions, org)
    )
    answer = json.loads(body)
    returned = persons_in(answer.get("data"), set())
    allowed = await visible(both.db, department, regions, org)
    assert returned <= allowed, (query, returned - allowed)
    for record in records:
        assert {str(i) for i in record[3]} <= allowed
    if returned and any(path.endswith(("name", "idNumber")) for r in records for path in r[4]):
        named = {str(i) for r in records for i in r[3]}
        assert returned <= named, (query, returned - named)
        if "claim" not in query.replace("claims", ""):  # persons only by their own roots
            assert named == returned, (query, named - returned)
    return answer, records


# -- variables: null, omitted, wrong types --------------------------------------------------------

VARIABLES = [
    ("query Q($f: Int) { beneficiaries(first: $f) { totalCount edges { node { id name } } } }",
     {}),
    ("query Q($f: Int) { beneficiaries(first: $f) { totalCount edges { node { id name } } } }",
     {"f": None}),
    ("query Q($f: Int) { beneficiaries(first: $f) { edges { node { id } } } }", {"f": "3"}),
    ("query Q($f: Int) { beneficiaries(first: $f) { edges { node { id } } } }", {"f": 2.0}),
    ("query Q($f: Int) { beneficiaries(first: $f) { edges { node { id } } } }", {"f": 2.5}),
    ("query Q($f: Int) { beneficiaries(first: $f) { edges { node { id } } } }", {"f": True}),
    ("query Q($f: Int!) { beneficiaries(first: $f) { edges { node { id } } } }", {}),
    ("query Q($a: String) { beneficiaries(first: 2, after: $a) { edges { node { id } } } }",
     {"a": None}),
    ("query Q($a: String) { beneficiaries(first: 2, after: $a) { edges { node { id } } } }",
     {"a": 5}),
    ("query Q($n: String) { beneficiary(idNumber: $n) { id name } }", {"n": None}),
    ("query Q($n: String) { beneficiary(idNumber: $n) { id name } }", {}),
    ("query Q($n: String) { beneficiary(idNumber: $n) { id name } }", {"n": ["x"]}),
    ("query Q($n: String) { beneficiary(idNumber: $n) { id name } }", {"n": {"a": 1}}),
    ("query Q($p: String) { beneficiaries(regionPrefix: $p) { totalCount } }", {"p": None}),
    ("query Q($y: Int) { beneficiaries(first: 3) { edges { node { id claims(year: $y) { "
     "totalCount edges { node { claimNumber } } } } } } }", {"y": None}),
    ("query Q($y: Int) { beneficiaries(first: 3) { edges { node { id claims(year: $y) { "
     "totalCount } } } } }", {"y": "2023"}),
    ("query Q($c: Int) { beneficiaries(first: 3) { edges { node { id claims(first: $c) { "
     "totalCount } } } } }", {"c": None}),
    ("query Q($u: Int) { beneficiaries(first: 1) { totalCount } }", {"u": 1, "extra": "x"}),
]  # fmt: skip


@pytest.mark.parametrize("department", PROBED)
@pytest.mark.parametrize(("query", "variables"), VARIABLES)
async def test_variables_null_omitted_or_of_wrong_types(
    both: Both,
    seeded: Seeded,
    monkeypatch: pytest.MonkeyPatch,
    department: str,
    query: str,
    variables: dict[str, Any],
) -> None:
    spy(monkeypatch)
    await probe(both, department, query, variables)


# -- cursors --------------------------------------------------------------------------------------


def forged(seeded: Seeded) -> list[str]:
    ordered = sorted(seeded.ids)
    return [
        b64(f"beneficiary:{ordered[0]}"),
        b64(f"beneficiary:{ordered[-1]}"),
        b64(f"beneficiary:{uuid.UUID(int=0)}"),
        b64(f"beneficiary:{str(ordered[3]).upper()}"),
        b64(f"claim:{seeded.claim_ids[3]}"),
        b64("claim:99999999999999999999999999"),
        b64("claim:9223372036854775808"),
        b64("claim:-1"),
        b64("claim:0"),
        b64("claim by ADMISSION_DATE_ASC:2023-01-01,3"),
        b64("claim by ADMISSION_DATE_ASC:2023-02-30,3"),
        b64("claim by ADMISSION_DATE_DESC:9999-12-31,99999999999999999999"),
        "////",
        "not base64!",
        "YQ",
        b64("beneficiary:") + "==",
        b64(f"beneficiary:{ordered[0]}\n"),
        b64(f"beneficiary: {ordered[0]}"),
        "\u00e9\u00e9",
        "",
        " ",
    ]


@pytest.mark.parametrize("department", PROBED)
async def test_forged_after_cursors(
    both: Both, seeded: Seeded, monkeypatch: pytest.MonkeyPatch, department: str
) -> None:
    """Every forged cursor of :func:`forged` on every paged field (one seeding for all)."""
    spy(monkeypatch)
    queries = [
        "query P($a: String) { beneficiaries(first: 3, after: $a) { totalCount "
        "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } "
        "edges { cursor node { id name idNumber } } } }",
        "query P($a: String) { beneficiaries(first: 20) { edges { node { id "
        "claims(first: 2, after: $a) { totalCount pageInfo { hasPreviousPage hasNextPage "
        "endCursor } edges { cursor node { claimNumber carrier hospitalCode } } } } } } }",
        "query P($a: String) { claims(first: 3, after: $a) { totalCount edges { cursor "
        "node { claimNumber carrier hospitalCode } } } }",
        "query P($a: String) { claims(first: 3, after: $a, orderBy: ADMISSION_DATE_ASC) { "
        "edges { cursor node { claimNumber } } } }",
        "query P($a: String) { claims(first: 3, after: $a, orderBy: ADMISSION_DATE_DESC) { "
        "edges { cursor node { claimNumber } } } }",
    ]
    for after in forged(seeded):
        for query in queries:
            try:
                await probe(both, department, query, {"a": after})
            except AssertionError as exc:
                exc.add_note(f"after = {after!r}")
                raise


# -- region prefixes, ID numbers, persons outside the rows ----------------------------------------

PREFIXES = ["5104", "51", "3201", "37", "3702", "", " ", " 5104", "5104 ", "51 04", "５１", "x",
            "510402", "5104021", "%", "_", "5104%", "1234567890123"]  # fmt: skip


@pytest.mark.parametrize("department", PROBED)
@pytest.mark.parametrize("regions", [("5104", "3201"), NARROW, ("32",)])
async def test_region_prefixes(
    both: Both,
    seeded: Seeded,
    monkeypatch: pytest.MonkeyPatch,
    department: str,
    regions: tuple[str, ...],
) -> None:
    spy(monkeypatch)
    query = (
        "query R($p: String) { beneficiaries(first: 50, regionPrefix: $p) { totalCount "
        "edges { node { id regionCode name } } } }"
    )
    for prefix in PREFIXES:
        await probe(both, department, query, {"p": prefix}, regions)


@pytest.mark.parametrize("department", PROBED)
@pytest.mark.parametrize("regions", [("5104", "3201"), NARROW])
async def test_point_lookups_by_odd_id_numbers_and_ids_outside_the_rows(
    both: Both,
    seeded: Seeded,
    monkeypatch: pytest.MonkeyPatch,
    department: str,
    regions: tuple[str, ...],
) -> None:
    spy(monkeypatch)
    by_number = (
        "query N($n: String) { beneficiary(idNumber: $n) { id name idNumber regionCode "
        "claims { totalCount edges { node { carrier hospitalCode settlement { policy "
        "outOfPocket assistance } } } } } }"
    )
    by_id = "query I($i: ID) { beneficiary(id: $i) { id name idNumber __typename } }"
    for number in seeded.id_numbers:
        for variant in (
            number,
            number.lower(),
            f"  {number}  ",
            f"\t{number.lower()}\n",
            number[:6] + number[8:17],  # 15 digits
            number[:-1] + "x",
            number[:-1] + "X",
            f"{number[:6]} {number[6:]}",
        ):
            await probe(both, department, by_number, {"n": variant}, regions)
    for person in [*seeded.ids, uuid.UUID(int=0)]:
        for variant in (str(person), str(person).upper(), f" {person} ", person.hex):
            await probe(both, department, by_id, {"i": variant}, regions)


async def test_the_insurer_point_read_of_a_person_without_its_claims_is_null(
    both: Both, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Persons 4..6 have claims of another carrier only; persons 9 and 10 none of the
    insurer's: null, and no audit record naming them."""
    answered = spy(monkeypatch)
    query = "query N($n: String) { beneficiary(idNumber: $n) { id name idNumber } }"
    for n in (4, 5, 6, 9, 10):
        answer, records = await probe(both, "insurer", query, {"n": seeded.id_numbers[n]})
        assert answer["data"]["beneficiary"] is None
        assert not [r for r in records if seeded.ids[n] in r[3]]
    assert answered
    assert all(answered)
    answer, records = await probe(both, "insurer", query, {"n": seeded.id_numbers[1]})
    node = answer["data"]["beneficiary"]
    assert node["idNumber"] == mask_id_number(seeded.id_numbers[1])
    assert node["name"] == mask_name(node["name"].replace("*", "x")) or "*" in node["name"]
    assert [r[3] for r in records] == [[seeded.ids[1]]]


# -- settlements missing or reversed --------------------------------------------------------------


@pytest.mark.parametrize("department", PROBED)
@pytest.mark.parametrize("regions", [("5104", "3201"), NARROW, ("3201",)])
async def test_claims_unsettled_adjusted_and_reversed(
    both: Both,
    seeded: Seeded,
    monkeypatch: pytest.MonkeyPatch,
    department: str,
    regions: tuple[str, ...],
) -> None:
    spy(monkeypatch)
    query = (
        "{ claims(first: 100) { totalCount edges { node { claimNumber reversed carrier "
        "settlement { claimNumber policy category basicInsurance criticalIllness "
        "inclusiveCommercial assistance secondaryAssistance outOfPocket __typename } } } } }"
    )
    await probe(both, department, query, regions=regions)
    for number in seeded.claim_numbers:
        await probe(
            both,
            department,
            "query C($c: String!) { claim(claimNumber: $c) { claimNumber settlement { policy "
            "outOfPocket } } }",
            {"c": number},
            regions,
        )
        await probe(
            both,
            department,
            "query C($c: String!) { claim(claimNumber: $c) { claimNumber } }",
            {"c": f" {number.lower()} "},
            regions,
        )


# -- aliases, __typename, the same field twice, page sizes ----------------------------------------

ALIASES = [
    "{ select: beneficiaries(first: 2) { from: edges { where: node { union: id "
    "json_build_object: name null: idNumber } } } }",
    "{ beneficiaries(first: 2) { edges { node { __typename: id t: __typename "
    "__typename } } __typename } }",
    "{ beneficiaries(first: 2) { edges { node { id: name name: id } } } }",
    "{ beneficiaries(first: 2) { edges { node { id idNumber: name } } } }",
    "{ beneficiaries(first: 2) { edges { node { id name: idNumber } } } }",
    "{ a: beneficiaries(first: 2) { edges { node { id x: name y: name } } } "
    "b: beneficiaries(first: 3) { totalCount } }",
    "{ beneficiaries(first: 2) { edges { node { id name Name: name _: name __: name } } } }",
    "{ " + "a" * 200 + ": beneficiaries(first: 1) { edges { node { id } } } }",
    "{ beneficiaries(first: 1) { edges { node { id " + "n" * 5000 + ": name } } } }",
    "{ beneficiaries(first: 1) { edges { node { id O_o: name _1: idNumber } } } }",
    "{ beneficiaries(first: 1) { edges { node { id claims { edges { node { "
    "__typename settlement { __typename } } __typename cursor } pageInfo { __typename "
    "endCursor } __typename } identities { __typename category } enrollments { __typename "
    "subsidy { __typename } } } __typename } pageInfo { __typename } __typename } }",
    "{ beneficiaries(first: 2) { edges { node { id name } } edges { node { idNumber } } } }",
    "{ beneficiaries(first: 2) { edges { node { id } } e: edges { node { name } } } }",
    "{ beneficiaries(first: 2) { edges { node { id } } } beneficiaries(first: 2) { edges "
    "{ node { name } } } }",
    "{ beneficiaries(first: 2) { edges { n: node { id } node: cursor } } }",
    "{ beneficiaries(first: 2) { edges { node { id 'x': name } } } }",
    "{ beneficiaries(first: 2) { edges { node { id name } } } } { beneficiaries { totalCount } }",
]


@pytest.mark.parametrize("department", PROBED)
@pytest.mark.parametrize("query", ALIASES)
async def test_aliases_typenames_and_the_same_field_twice(
    both: Both, seeded: Seeded, monkeypatch: pytest.MonkeyPatch, department: str, query: str
) -> None:
    spy(monkeypatch)
    await probe(both, department, query)


@pytest.mark.parametrize("department", PROBED)
async def test_page_sizes_at_the_bounds(
    both: Both, seeded: Seeded, monkeypatch: pytest.MonkeyPatch, department: str
) -> None:
    spy(monkeypatch)
    for first in [1, 99, 100, 101, 0, -1, 2**31, -(2**31) - 1]:
        try:
            await probe(
                both,
                department,
                "query F($f: Int) { beneficiaries(first: $f) { totalCount pageInfo { "
                "hasNextPage } edges { node { id claims(first: $f) { totalCount pageInfo { "
                "hasNextPage } edges { node { claimNumber } } } } } } claims(first: $f) { "
                "totalCount edges { node { claimNumber } } } }",
                {"f": first},
            )
        except AssertionError as exc:
            exc.add_note(f"first = {first}")
            raise


# -- operation names, batches, many aliases -------------------------------------------------------

SEVERAL = (
    "query A { beneficiaries(first: 2) { edges { node { id name } } } } "
    "query B { highCostAlerts(first: 1) { totalCount } } "
    "query C($n: String!) { beneficiary(idNumber: $n) { id idNumber } } "
    'mutation D { acknowledgeClaim(claimNumber: "x") { claimNumber } }'
)


@pytest.mark.parametrize("department", PROBED)
async def test_operation_name_chooses_among_several(
    both: Both, seeded: Seeded, monkeypatch: pytest.MonkeyPatch, department: str
) -> None:
    spy(monkeypatch)
    headers = token_of(department)
    for name in ["A", "B", "C", "D", None, "", "E", "a"]:
        payload = {
            "query": SEVERAL,
            "variables": {"n": seeded.id_numbers[1]},
            "operationName": name,
        }
        bodies, audits = [], []
        for client in (both.compiled, both.resolved):
            before = await audit_count(both.db)
            response = await client.post("/graphql", json=payload, headers=headers)
            bodies.append((response.status_code, _strip(response.json())))
            audits.append(await audit_since(both.db, before))
        assert bodies[0] == bodies[1], name
        assert audits[0] == audits[1], name


def _strip(body: Any) -> Any:
    if isinstance(body, list):
        return [_strip(item) for item in body]
    if isinstance(body, dict):
        for error in body.get("errors") or []:
            (error.get("extensions") or {}).pop("requestId", None)
    return body


@pytest.mark.parametrize("department", PROBED)
async def test_batches_mixing_compiled_and_uncovered_operations(
    settings: Settings,
    db: Database,
    policies: PolicySet,
    seeded: Seeded,
    monkeypatch: pytest.MonkeyPatch,
    department: str,
) -> None:
    spy(monkeypatch)
    batching = settings.model_copy(update={"max_batch": 6})
    operations = [
        {"query": "{ beneficiaries(first: 3) { edges { node { id name idNumber } } } }"},
        {"query": "{ beneficiaries(first: 2) { edges { node { ...P } } } } "
         "fragment P on Beneficiary { id name }"},
        {"query": "query N($n: String) { beneficiary(idNumber: $n) { id name } }",
         "variables": {"n": seeded.id_numbers[2]}},
        {"query": "{ beneficiaries(first: 0) { totalCount } }"},
        {"query": "{ claims(first: 2) { edges { node { claimNumber carrier } } } }"},
        {"query": "{ nope }"},
    ]  # fmt: skip
    headers = token_of(department)
    bodies, audits = [], []
    for compiled in (True, False):
        before = await audit_count(db)
        with_compiler = batching.model_copy(update={"read_compiler": compiled})
        async with in_process(with_compiler, db, policies) as client:
            response = await client.post("/graphql", json=operations, headers=headers)
        bodies.append((response.status_code, _strip(response.json())))
        audits.append(sorted(await audit_since(db, before)))
    assert bodies[0] == bodies[1]
    assert audits[0] == audits[1]


@pytest.mark.parametrize("department", PROBED)
async def test_many_aliases_of_compiled_roots(
    both: Both, seeded: Seeded, monkeypatch: pytest.MonkeyPatch, department: str
) -> None:
    spy(monkeypatch)
    fields = [
        f'p{n}: beneficiary(idNumber: "{seeded.id_numbers[n % len(seeded.id_numbers)]}") '
        "{ id name idNumber }"
        for n in range(11)
    ]
    fields += [
        f"q{n}: beneficiaries(first: {n + 1}) {{ edges {{ node {{ id }} }} }}" for n in range(3)
    ]
    await probe(both, department, "query Many { " + " ".join(fields) + " }")


# -- labels, defaults, GET, cursor walks; and that the probes reach the compiler ------------------

MORE = [
    ("query " + "L" * 200 + " { beneficiaries(first: 2) { edges { node { id name } } } }", {}),
    ("query Q($f: Int = 3) { beneficiaries(first: $f) { edges { node { id name } } } }", {}),
    ("query Q($f: Int = 3) { beneficiaries(first: $f) { edges { node { id name } } } }",
     {"f": None}),
    ("query Q($f: Int = null) { beneficiaries(first: $f) { edges { node { id } } } }", {}),
    ("query Q($n: String = \"x\") { beneficiary(idNumber: $n) { id name } }", {}),
    ("{ beneficiaries(first: $x) { totalCount } }", {"x": 1}),
    ("query Q($x: Int) { beneficiaries(first: 2) { totalCount } }", {"x": "nope"}),
    ("{ __schema { queryType { name } } beneficiaries(first: 1) { totalCount } }", {}),
    ("{ __type(name: \"Beneficiary\") { name } }", {}),
    ("{ beneficiaries(first: 2) { edges { node { id name } } } "
     "claims(first: 2) { edges { node { claimNumber } } } "
     "beneficiary(idNumber: \"1\") { id } claim(claimNumber: \"1\") { claimNumber } }", {}),
    ("{ beneficiaries(first: 3, category: MINIMUM_LIVING) { totalCount edges { node { id "
     "name } } } }", {}),
    ("{ beneficiaries(first: 3) { edges { node { id name claims(year: 2023, first: 1) { "
     "totalCount pageInfo { hasNextPage endCursor startCursor hasPreviousPage } } } } } }",
     {}),
]  # fmt: skip


@pytest.mark.parametrize("department", PROBED)
@pytest.mark.parametrize(("query", "variables"), MORE)
async def test_labels_defaults_validation_and_introspection(
    both: Both,
    seeded: Seeded,
    monkeypatch: pytest.MonkeyPatch,
    department: str,
    query: str,
    variables: dict[str, Any],
) -> None:
    spy(monkeypatch)
    await probe(both, department, query, variables)


@pytest.mark.parametrize("department", PROBED)
async def test_a_get_query_answers_alike(
    both: Both, seeded: Seeded, monkeypatch: pytest.MonkeyPatch, department: str
) -> None:
    spy(monkeypatch)
    params = {"query": "{ beneficiaries(first: 3) { edges { node { id name idNumber } } } }"}
    headers = token_of(department)
    seen = []
    for client in (both.compiled, both.resolved):
        before = await audit_count(both.db)
        response = await client.get("/graphql", params=params, headers=headers)
        seen.append(
            (response.status_code, _strip(response.json()), await audit_since(both.db, before))
        )
    assert seen[0] == seen[1]


@pytest.mark.parametrize("department", PROBED)
@pytest.mark.parametrize("order", ["", ", orderBy: ID", ", orderBy: ADMISSION_DATE_ASC",
                                   ", orderBy: ADMISSION_DATE_DESC"])  # fmt: skip
async def test_walking_pages_with_real_cursors_and_each_others(
    both: Both, seeded: Seeded, monkeypatch: pytest.MonkeyPatch, department: str, order: str
) -> None:
    """Every page of claims (and persons), one or two at a time, by the endCursor given; and
    each cursor also tried on the other orders and on the persons' page."""
    spy(monkeypatch)
    claims = (
        "query W($a: String, $f: Int) { claims(first: $f, after: $a" + order + ") { totalCount "
        "pageInfo { hasNextPage endCursor } edges { cursor node { claimNumber } } } }"
    )
    others = [
        "query W($a: String) { claims(first: 2, after: $a, orderBy: ADMISSION_DATE_DESC) { "
        "edges { node { claimNumber } } } }",
        "query W($a: String) { beneficiaries(first: 2, after: $a) { edges { node { id } } } }",
        "query W($a: String) { beneficiaries(first: 9) { edges { node { id claims(first: 1, "
        "after: $a) { edges { cursor } } } } } }",
    ]
    for size in (1, 2):
        after = None
        for _ in range(40):
            answer, _records = await probe(both, department, claims, {"a": after, "f": size})
            page = (answer.get("data") or {}).get("claims")
            if not page or not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
            for other in others:
                await probe(both, department, other, {"a": after})


@pytest.mark.parametrize(
    "department", ["insurer", "hospital", "civil_affairs", "medical_insurance"]
)
async def test_the_probes_reach_the_compiler(
    both: Both, seeded: Seeded, monkeypatch: pytest.MonkeyPatch, department: str
) -> None:
    """Not all fall back: the plain page, point and claim reads of these departments are
    answered compiled, and the insurer's masked and carried absolutely."""
    answered = spy(monkeypatch)
    if department != "hospital":  # no person roots: claims only
        answer, records = await probe(
            both,
            department,
            "query N($n: String) { beneficiary(idNumber: $n) { id name idNumber } }",
            {"n": f" {seeded.id_numbers[1].lower()} "},
            NARROW,
        )
        assert answered == [True, True]
        node = answer["data"]["beneficiary"]
        if department == "insurer":
            assert node["idNumber"] == mask_id_number(seeded.id_numbers[1])
            assert node["name"] == mask_name("测试1")
        if node is not None:
            assert [r[3] for r in records] == [[seeded.ids[1]]]
    if department == "civil_affairs":  # no claims root
        return
    answer, records = await probe(
        both,
        department,
        "{ claims(first: 50) { edges { node { claimNumber carrier hospitalCode } } } }",
        regions=NARROW,
    )
    assert answered[-1] is True
    edges = answer["data"]["claims"]["edges"]
    if department == "insurer":
        assert {e["node"]["carrier"] for e in edges} <= {INSURER}
    if department == "hospital":
        assert {e["node"]["hospitalCode"] for e in edges} <= {"H1"}


@pytest.mark.parametrize("department", ["medical_insurance", "insurer", "hospital"])
async def test_settlements_of_odd_shapes(
    both: Both, seeded: Seeded, db: Database, monkeypatch: pytest.MonkeyPatch, department: str
) -> None:
    """Events the seed does not have: a reversal alone, an event without lines, a line of a
    payer the others lack, an empty category, amounts of three decimals' worth of sums."""
    from decimal import Decimal

    async with db.transaction() as session:
        claims = (
            await session.scalars(select(models.Claim).order_by(models.Claim.id).limit(12))
        ).all()
        unsettled = [
            c
            for c in claims
            if not (
                await session.scalars(
                    select(models.Settlement.id).where(models.Settlement.claim_id == c.id)
                )
            ).first()
        ]
        Event = tuple[str, Decimal, str, list[tuple[str, Decimal]]]
        shapes: list[list[Event]] = [
            [("REVERSAL", Decimal("-5.00"), "", [("assistance", Decimal("-1.10"))])],
            [("ORIGINAL", Decimal("0.00"), "", [])],
            [
                (
                    "ORIGINAL",
                    Decimal("10.05"),
                    "MINIMUM_LIVING",
                    [("criticalIllness", Decimal("0.05"))],
                ),
                ("ADJUSTMENT", Decimal("-10.05"), "", [("criticalIllness", Decimal("-0.05"))]),
            ],
        ]
        for claim, events in zip(unsettled, shapes, strict=False):
            for kind, oop, category, lines in events:
                event = models.Settlement(
                    claim_id=claim.id,
                    beneficiary_id=claim.beneficiary_id,
                    year=claim.year,
                    kind=kind,
                    policy="510400-2023",
                    category=category or None,
                    out_of_pocket=oop,
                    explanation={},
                    department="medical_insurance",
                    org="o",
                )
                session.add(event)
                await session.flush()
                session.add_all(
                    models.SettlementLine(settlement_id=event.id, payer=payer, amount=amount)
                    for payer, amount in lines
                )
    answered = spy(monkeypatch)
    query = (
        "{ claims(first: 100) { edges { node { claimNumber settlement { claimNumber policy "
        "category basicInsurance criticalIllness inclusiveCommercial assistance "
        "secondaryAssistance outOfPocket } } } } }"
    )
    await probe(both, department, query)
    assert answered == [True, True] or department != "medical_insurance"  # others: a field refused


ODD_BODIES: list[Any] = [
    {"query": "{ beneficiaries(first: 2) { edges { node { id name } } } }", "variables": [1]},
    {"query": "{ beneficiaries(first: 2) { edges { node { id name } } } }", "variables": "x"},
    {"query": "{ beneficiaries(first: 2) { edges { node { id name } } } }", "operationName": 3},
    {"query": "query A { beneficiaries(first: 2) { edges { node { id name } } } }",
     "operationName": "A", "extensions": {"persistedQuery": {"version": 1}}},
    {"query": ["{ beneficiaries { totalCount } }"]},
    [],
    [{"query": "{ beneficiaries(first: 1) { edges { node { id name } } } }"}],
]  # fmt: skip


@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json"])
@pytest.mark.parametrize("body", range(len(ODD_BODIES)))
async def test_odd_bodies_and_media_types(
    both: Both, seeded: Seeded, monkeypatch: pytest.MonkeyPatch, body: int, accept: str
) -> None:
    spy(monkeypatch)
    headers = {**token_of("medical_insurance"), "Accept": accept}
    seen = []
    for client in (both.compiled, both.resolved):
        before = await audit_count(both.db)
        response = await client.post("/graphql", json=ODD_BODIES[body], headers=headers)
        seen.append(
            (
                response.status_code,
                response.headers.get("content-type"),
                _strip(response.json()),
                await audit_since(both.db, before),
            )
        )
    assert seen[0] == seen[1]


@pytest.mark.parametrize("department", ["insurer", "civil_affairs", "finance"])
@pytest.mark.parametrize(
    "update",
    [{"max_response_bytes": 400}, {"max_page_size": 2}, {"max_aliases": 2}, {"max_batch": 2}],
)
async def test_limits_of_other_settings_answer_alike(
    settings: Settings,
    db: Database,
    policies: PolicySet,
    seeded: Seeded,
    monkeypatch: pytest.MonkeyPatch,
    department: str,
    update: dict[str, int],
) -> None:
    """A response over the byte limit, a page size over a smaller maximum, aliases over the
    limit: refused (or answered) alike, with the same audit records."""
    spy(monkeypatch)
    query = (
        "{ a: beneficiaries(first: 2) { edges { node { id name regionCode claims(first: 2) { "
        "totalCount } } } } b: beneficiaries(first: 3) { totalCount edges { node { id } } } }"
    )
    headers = token_of(department, ("510402",))
    for body in ({"query": query}, [{"query": query}, {"query": query}]):
        seen = []
        for compiled in (True, False):
            before = await audit_count(db)
            configured = settings.model_copy(update={**update, "read_compiler": compiled})
            async with in_process(configured, db, policies) as client:
                response = await client.post("/graphql", json=body, headers=headers)
            seen.append(
                (
                    response.status_code,
                    _strip(response.json()),
                    sorted(await audit_since(db, before)),
                )
            )
        assert seen[0] == seen[1]


ODD_NAMES = ["", "𠀋𠀌", "e\u0301lise", 'a"b\\c\n\t', "ＡＢＣ", "张" * 64, "😀x", "\u200b张"]
ODD_NUMBERS = ["", "1", "51040219", "510402190", "123456789012", "1234567890123",
               "51040219700101123x", "51040219700101123X"]  # fmt: skip


@pytest.mark.parametrize("department", ["insurer", "medical_insurance", "civil_affairs"])
async def test_masks_of_odd_names_and_id_numbers_in_sql_as_in_python(
    both: Both, seeded: Seeded, db: Database, monkeypatch: pytest.MonkeyPatch, department: str
) -> None:
    """The SQL masks against policies/access/masks.py on values the seed does not have."""
    async with db.transaction() as session:
        people = [
            await session.get(models.Beneficiary, seeded.ids[n]) for n in range(len(ODD_NAMES))
        ]
        for person, name, number in zip(people, ODD_NAMES, ODD_NUMBERS, strict=True):
            assert person is not None
            person.name = name
            person.id_number = number
    answered = spy(monkeypatch)
    answer, _records = await probe(
        both, department, "{ beneficiaries(first: 50) { edges { node { id name idNumber } } } }"
    )
    assert answered == [True, True]
    if department == "insurer":
        by_id = {e["node"]["id"]: e["node"] for e in answer["data"]["beneficiaries"]["edges"]}
        checked = 0
        for n, (name, number) in enumerate(zip(ODD_NAMES, ODD_NUMBERS, strict=True)):
            node = by_id.get(str(seeded.ids[n]))
            if node is not None:
                assert node["name"] == mask_name(name)
                assert node["idNumber"] == mask_id_number(number)
                checked += 1
        assert checked
    for number in ODD_NUMBERS:
        if number:
            await probe(
                both,
                department,
                "query N($n: String) { beneficiary(idNumber: $n) { id name idNumber } }",
                {"n": number.lower()},
            )
