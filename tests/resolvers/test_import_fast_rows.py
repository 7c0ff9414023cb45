"""The fast parse of identity and flag rows (resolvers/import_files.RowParser._fast_category_row)
gives, for every row, exactly what the full parse (pydantic and the mutations' checks) gives:
the same staging record or the same problems. No database."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from datetime import date
from typing import Any

import pytest

from gateway.resident_id import check_character
from policies.vocabulary import Category
from resolvers.import_files import Problem, Record, RowChecks, RowParser, parse_batch

TODAY = date(2026, 12, 1)
HEADER = ["身份证号", "类别", "认定日期", "终止日期", "决定日期", "文号"]


def number(first17: str) -> str:
    return first17 + check_character(first17)


GOOD = number("51040219700101001")
NUMBERS = [
    GOOD,
    number("11010519491231002"),  # check character X
    GOOD.lower() if GOOD.endswith("X") else number("11010519491231002").lower(),  # x
    GOOD[:17] + ("1" if GOOD[17] != "1" else "2"),  # wrong check character
    number("51040218991231001"),  # born before 1900
    "51040219000229001" + "0",  # no such birth date
    number("51040219700101001")[:17],  # 17 characters
    " " + GOOD,
    GOOD + "\u3000",
    "５１０４０２１９７００１０１００１３",  # full-width digits
    "٥١٠٤٠٢١٩٧٠٠١٠١٠٠١٣",  # Arabic-Indic digits
    "",
]
WORDS = [
    "低保",
    "MINIMUM_LIVING",
    " 低保",
    "低保\u3000",
    "特困人员",
    "监测对象",  # a flag
    "MONITORED",
    "ORPHAN",  # not this department's
    "no such",
    "",
]
DAYS = [
    "2026-01-01",
    "2026-12-01",
    "2026-12-02",  # after today
    "2026/01/01",
    "20260101",
    "2026年1月1日",
    "2026-1-1",
    "2026-02-30",
    "0000-01-01",
    " 2026-01-01",
    "２０２６-01-01",
    "",
]
OPTIONAL_DAYS = ["", "2025-12-31", "2026-06-30", "2027-01-01", "2026/06/30", "2026-13-01"]
REFERENCES = [
    "东民发〔2026〕3号",
    " 东民发〔2026〕3号\u3000",
    "\x1cx\x1c",
    "\u200bx",
    "   ",
    "",
    "x" * 120,
    "x" * 121,
    " " + "x" * 120 + " ",
]


def parsers(
    kind: str = "identities", category: Category | None = None, header: Sequence[str] = HEADER
) -> tuple[RowParser, RowParser]:
    writes = frozenset(Category) - {Category.ORPHAN}
    checks = RowChecks(TODAY, writes, "civil_affairs", category, ("5104",))
    return (
        RowParser(kind, header, checks),
        RowParser(kind, header, checks, fast=False),
    )


def same(
    fast: RowParser, full: RowParser, line: int, cells: Sequence[Any]
) -> Record | list[Problem]:
    got = fast.parse(line, cells)
    assert got == full.parse(line, cells), cells
    return got


def test_usual_rows_are_parsed_fast_to_the_full_record() -> None:
    fast, full = parsers()
    cells = [GOOD, "低保", "2026-01-01", "2026-06-30", "2026-07-01", " 东民发〔2026〕3号 "]
    assert fast._fast_category_row(2, cells) is not None  # the fast path took it
    assert same(fast, full, 2, cells) == (
        2, GOOD, "MINIMUM_LIVING", date(2026, 1, 1), date(2026, 6, 30), date(2026, 7, 1),
        "东民发〔2026〕3号",
    )  # fmt: skip
    assert same(fast, full, 3, [GOOD, "低保", "2026-01-01", "", "", "r"]) == (
        3, GOOD, "MINIMUM_LIVING", date(2026, 1, 1), None, TODAY, "r",
    )  # fmt: skip


@pytest.mark.parametrize("field", range(6))
def test_each_cell_in_every_form_parses_as_in_full(field: int) -> None:
    fast, full = parsers()
    base = [GOOD, "低保", "2026-01-01", "", "", "东民发〔2026〕3号"]
    forms = [NUMBERS, WORDS, DAYS, OPTIONAL_DAYS, OPTIONAL_DAYS, REFERENCES][field]
    for line, form in enumerate(forms, start=2):
        cells = list(base)
        cells[field] = form
        same(fast, full, line, cells)
        same(fast, full, line, cells[: field + 1] if field < 5 else cells[:5])  # a short row


def test_combinations_and_row_shapes_parse_as_in_full() -> None:
    rng = random.Random(11)
    for kind, category in (
        ("identities", None),
        ("identities", Category.MINIMUM_LIVING),
        ("flags", None),
        ("flags", Category.MONITORED),
    ):
        fast, full = parsers(kind, category)
        batch: list[tuple[int, Sequence[Any]]] = []
        for line in range(2, 3000):
            cells: list[Any] = [
                rng.choice(NUMBERS),
                rng.choice(WORDS),
                rng.choice(DAYS),
                rng.choice(OPTIONAL_DAYS),
                rng.choice(OPTIONAL_DAYS),
                rng.choice(REFERENCES),
            ]
            shape = rng.randrange(4)
            if shape == 1:
                cells = cells[: rng.randrange(6)]  # a short row
            elif shape == 2:
                cells.append(rng.choice(["", "x", "2026-01-01"]))  # an extra cell
            elif shape == 3:
                cells[rng.randrange(6)] = rng.choice([None, 2026, 2026.0, date(2026, 1, 1)])
            same(fast, full, line, cells)
            batch.append((line, cells))
        # A batch as staging parses it: the same records and problems, in the same order.
        records, problems, count = parse_batch(fast, batch)
        assert (records, problems, count) == parse_batch(full, batch)
        assert records
        assert problems
        assert count == len(batch)


def test_other_headers_parse_as_in_full() -> None:
    # English headers, columns in another order, optional columns left out, unknown columns.
    header = ["reference", "note", "validFrom", "idNumber", "category"]
    fast, full = parsers(header=header)
    for line, (ref, day, word) in enumerate(
        itertools.product(REFERENCES[:3], DAYS[:4], WORDS[:4]), start=2
    ):
        same(fast, full, line, [ref, "备注", day, GOOD, word])
    # A snapshot of one category without the category column.
    fast, full = parsers(category=Category.MINIMUM_LIVING, header=["身份证号", "认定日期", "文号"])
    assert same(fast, full, 2, [GOOD, "2026-01-01", "r"])[2] == "MINIMUM_LIVING"
