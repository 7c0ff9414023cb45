"""Reading department list files (issue 11): CSV in UTF-8, UTF-8 with BOM or GB18030 (the
encoding detected with charset-normalizer) and XLSX (openpyxl in read-only mode), streamed row
by row in constant memory; headers in Chinese or English (policies/imports/columns.yaml); each
row parsed with pydantic and checked with the mutations' own checks
(:mod:`resolvers.ingestion`, :mod:`gateway.resident_id`).

A row becomes either a record for the staging table (a tuple, ``line`` first) or problems
``(line, column, value, reason)``, the column named as the file's header names it.

>>> rows = RowParser("persons", ["身份证号", "姓名", "区划代码"], checks=None)
>>> rows.parse(2, ["510402197001010013", "张三", "510402"])
(2, '510402197001010013', '张三', '510402', 'MALE', datetime.date(1970, 1, 1))
>>> rows.parse(3, ["510402197001010014", "李四", "510402"])[0].reason
'check character should be 3'
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import re
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO

from charset_normalizer import from_bytes
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway import resident_id
from policies.errors import InvalidInput
from policies.imports import Columns, load_columns
from policies.vocabulary import Category
from resolvers import ingestion

SAMPLE_BYTES = 256 * 1024
"""How much of a CSV file the encoding is detected from."""
ENCODINGS = ["utf_8", "gb18030"]
"""The encodings a CSV file may be in (a BOM is recognised first)."""
Record = tuple[Any, ...]


@dataclass(frozen=True)
class Problem:
    """One problem of a file: its line (1 is the header), column header, value and reason."""

    line: int
    column: str
    value: str
    reason: str


# -- files ------------------------------------------------------------------------------------


def detect_encoding(sample: bytes) -> str:
    """The encoding of a CSV file from its first bytes: ``utf_8_sig`` with a BOM, else what
    charset-normalizer finds among :data:`ENCODINGS`.

    >>> detect_encoding("身份证号,姓名\\n".encode("gb18030")), detect_encoding(b"\\xef\\xbb\\xbfa")
    ('gb18030', 'utf_8_sig')
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf_8_sig"
    # Cut at the last line end so that a character split by the sample does not mislead.
    cut = sample.rfind(b"\n")
    best = from_bytes(sample[: cut + 1] if cut > 0 else sample, cp_isolation=ENCODINGS).best()
    if best is None:
        return "gb18030"
    return "utf_8" if best.encoding in ("utf_8", "ascii") else best.encoding


class Sheet:
    """The rows of a file, each as ``(line, cells)``, after its header row; ``done()`` is the
    fraction of the file read so far (for progress bars)."""

    def __init__(
        self, header: list[str], rows: Iterator[tuple[int, Sequence[Any]]], done: Callable[[], int]
    ) -> None:
        self.header = header
        self.rows = rows
        self.done = done
        self.source: object = None


def is_xlsx(path: Path) -> bool:
    return zipfile.is_zipfile(path)


@contextmanager
def open_sheet(path: Path) -> Iterator[Sheet]:
    """The file's first sheet (XLSX) or its CSV rows, streamed."""
    if is_xlsx(path):
        with _xlsx(path) as sheet:
            yield sheet
        return
    with path.open("rb") as raw:
        encoding = detect_encoding(raw.read(SAMPLE_BYTES))
        raw.seek(0)
        yield _csv(raw, encoding)


def _csv(raw: BinaryIO, encoding: str) -> Sheet:
    text = io.TextIOWrapper(raw, encoding=encoding, newline="")
    reader = csv.reader(text)
    header = next(reader, [])

    def rows() -> Iterator[tuple[int, Sequence[Any]]]:
        for cells in reader:
            if any(cells):
                yield reader.line_num, cells

    sheet = Sheet(header, rows(), raw.tell)
    # Holding the wrapper keeps it from closing ``raw`` when the rows are all read.
    sheet.source = text
    return sheet


@contextmanager
def _xlsx(path: Path) -> Iterator[Sheet]:
    from openpyxl import load_workbook  # type: ignore[import-untyped]

    book = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        values = sheet.iter_rows(values_only=True)
        first = next(values, ())
        header = ["" if c is None else str(c) for c in first]
        state = {"line": 1}
        width = max(1, (sheet.max_row or 1))
        size = path.stat().st_size

        def rows() -> Iterator[tuple[int, Sequence[Any]]]:
            for cells in values:
                state["line"] += 1
                if any(c is not None and c != "" for c in cells):
                    yield state["line"], cells

        yield Sheet(header, rows(), lambda: size * state["line"] // width)
    finally:
        book.close()


# -- cells --------------------------------------------------------------------------------------

_DAY = re.compile(r"\A(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?\Z|\A(\d{4})(\d{2})(\d{2})\Z")


def _day(value: Any) -> Any:
    """A date from a cell: an XLSX date, ``2026-11-30``, ``2026/11/30``, ``2026年11月30日`` or
    ``20261130``."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date) or value is None:
        return value
    return _parse_day(str(value).strip())


@functools.lru_cache(maxsize=4096)
def _parse_day(text: str) -> date:
    """Cached: a list repeats the same few dates (bounded, so memory stays flat)."""
    match = _DAY.match(text)
    if match is None:
        raise ValueError("expected a date such as 2026-11-30")
    y, m, d = (int(g) for g in (match.groups()[:3] if match.group(1) else match.groups()[3:]))
    try:
        return date(y, m, d)
    except ValueError:
        raise ValueError("no such date") from None


def _text(value: Any) -> Any:
    if type(value) is str:
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if value is None else str(value).strip()


def _number(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return value if value is None else Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError("expected an amount in yuan such as 380.00") from None


_ISO_DAY = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


@functools.lru_cache(maxsize=65536)
def _born_since_1900(digits: str) -> bool:
    """Whether the eight digits of an ID number's birth date are a date from 1900 on, as
    :func:`gateway.resident_id.parse` checks them."""
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8])).year >= 1900
    except ValueError:
        return False


class _Row(BaseModel):
    """A row's fields, parsed by pydantic (in Rust: ISO dates, whole numbers, decimals, text
    stripped); a cell in another form is normalised by :data:`_LENIENT` and tried again."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class PersonRow(_Row):
    idNumber: str
    name: str
    regionCode: str
    gender: str | None = None
    birthDate: date | None = None


class CategoryRow(_Row):
    idNumber: str
    category: str | None = None
    """Required unless the list is a snapshot of one category."""
    validFrom: date
    validTo: date | None = None
    decidedOn: date | None = None
    reference: str


class EnrollmentRow(_Row):
    idNumber: str
    year: int
    contribution: Decimal
    enrolledOn: date
    inclusiveCommercial: str | None = None
    scheme: str | None = None


_LENIENT: dict[str, Callable[[Any], Any]] = {
    "birthDate": _day,
    "validFrom": _day,
    "validTo": _day,
    "decidedOn": _day,
    "enrolledOn": _day,
    "contribution": _number,
}
"""The fields whose cells may come in other forms (``2026/11/30``, ``1,380.00``): normalised
only when pydantic refuses the cell as it is (most cells pass first time)."""


_MODELS: dict[str, type[_Row]] = {
    "persons": PersonRow,
    "identities": CategoryRow,
    "flags": CategoryRow,
    "enrollments": EnrollmentRow,
}
GENDERS = {
    "男": "MALE",
    "女": "FEMALE",
    "MALE": "MALE",
    "FEMALE": "FEMALE",
    "M": "MALE",
    "F": "FEMALE",
}


@dataclass(frozen=True)
class RowChecks:
    """What a row is checked against beyond its shape: today (China time), the categories the
    caller may write (its department's ``write_categories``) and, for a snapshot, the one
    category the list is of (its rows may leave the category column out)."""

    today: date
    write_categories: frozenset[Category]
    department: str
    category: Category | None = None
    regions: tuple[str, ...] = ("",)
    """The token's region prefixes: a person is registered in one of them (as
    ``registerBeneficiary``, :func:`resolvers.inputs.check_in_token`)."""


class RowParser:
    """Parses the rows of one kind of list under a file's header row."""

    def __init__(
        self,
        kind: str,
        header: Sequence[str],
        checks: RowChecks | None,
        columns: Columns | None = None,
        *,
        fast: bool = True,
    ) -> None:
        """``fast``: identity and flag rows in the usual forms skip pydantic
        (:meth:`_fast_category_row`; ``False`` parses every row in full, for tests)."""
        self.kind = kind
        self.columns = columns or load_columns()
        self.checks = checks or RowChecks(date.max, frozenset(Category), "")
        self.model = _MODELS[kind]
        self._categories: dict[str, Category] = {}
        wanted = self.columns.kinds[kind]  # type: ignore[index]
        self.header_problems: list[Problem] = []
        self.index: dict[str, int] = {}
        self.label: dict[str, str] = {}
        self.ignored: list[str] = []
        for position, header_cell in enumerate(header):
            field = self.columns.field_of(str(header_cell))
            if field is None or field not in wanted.fields:
                if str(header_cell).strip():
                    self.ignored.append(str(header_cell).strip())
                continue
            if field in self.index:
                self.header_problems.append(
                    Problem(1, str(header_cell), str(header_cell), f"a second column for {field}")
                )
                continue
            self.index[field] = position
            self.label[field] = str(header_cell).strip().lstrip("\ufeff")
        optional_category = kind in ("identities", "flags") and self.checks.category is not None
        for field in wanted.required:
            if field not in self.index and not (field == "category" and optional_category):
                names = "/".join(self.columns.fields[field][:2])
                self.header_problems.append(Problem(1, names, "", f"missing column {field}"))

        self._fast: tuple[int, int, int, int, int, int] | None = None
        if fast and kind in ("identities", "flags"):
            absent = sys.maxsize  # a position no row's cells reach
            self._fast = tuple(  # type: ignore[assignment]
                self.index.get(f, absent)
                for f in ("idNumber", "category", "validFrom", "validTo", "decidedOn", "reference")
            )
        self._fast_words: dict[str, Category | None] = {}
        self._fast_days: dict[str, date | None] = {}

    def column(self, field: str) -> str:
        return self.label.get(field, field)

    def parse(self, line: int, cells: Sequence[Any]) -> Record | list[Problem]:
        """The staging record of a row, or its problems."""
        if self._fast is not None:
            record = self._fast_category_row(line, cells)
            if record is not None:
                return record
        return self._parse_in_full(line, cells)

    @property
    def fast_rows(self) -> Callable[[int, Sequence[Any]], Record | None] | None:
        """:meth:`_fast_category_row` when this kind of list has a fast parse, else ``None``."""
        return None if self._fast is None else self._fast_category_row

    def _parse_in_full(self, line: int, cells: Sequence[Any]) -> Record | list[Problem]:
        values: dict[str, Any] = {}
        for field, position in self.index.items():
            cell = cells[position] if position < len(cells) else None
            if cell is not None and cell != "":
                if type(cell) is not str and not isinstance(cell, date):
                    cell = _text(cell)  # an XLSX number: 2026.0 → "2026"
                values[field] = cell
        try:
            row = self.model.model_validate(values)
        except ValidationError as exc:
            retried = self._lenient(line, exc, values)
            if isinstance(retried, list):
                return retried
            row = retried
        try:
            return self._checked(line, row)
        except InvalidInput as exc:
            return [Problem(line, self.column(exc.field), _shown(exc.value), exc.reason)]

    def _fast_category_row(self, line: int, cells: Sequence[Any]) -> Record | None:
        """The record of an identity or flag row whose cells are all plain text in the usual
        forms (ID number of 17 digits and a check digit, a known category word, ISO dates, a
        reference without surrounding blanks), checked without pydantic or intermediate
        objects; ``None`` for any other row, which :meth:`parse` then parses and checks in
        full. Where it returns a record, it is the record the full parse returns (same
        checks, same order of fields; tests/resolvers/test_import_fast_rows.py)."""
        assert self._fast is not None
        p_id, p_category, p_from, p_to, p_decided, p_reference = self._fast
        width = len(cells)
        if p_id >= width or p_from >= width or p_reference >= width:
            return None
        number, valid_from_text, reference = cells[p_id], cells[p_from], cells[p_reference]
        if (
            type(number) is not str
            or len(number) != 18
            or not number.isascii()
            or not number[:17].isdigit()
            or type(reference) is not str
        ):
            return None
        last = number[17]
        if not (last.isdigit() or last == "X") or not _born_since_1900(number[6:14]):
            return None
        if resident_id.check_character(number[:17]) != last:
            return None
        word = cells[p_category] if p_category < width else None
        if word is None or word == "":
            category = self.checks.category
        elif type(word) is str:
            try:
                category = self._fast_words[word]
            except KeyError:
                category = self._fast_word(word)
        else:
            return None
        valid_from = self._fast_day(valid_from_text)
        if category is None or valid_from is None:
            return None
        valid_to = decided_on = None
        if p_to < width and cells[p_to] is not None and cells[p_to] != "":
            valid_to = self._fast_day(cells[p_to])
            if valid_to is None:
                return None
        if p_decided < width and cells[p_decided] is not None and cells[p_decided] != "":
            decided_on = self._fast_day(cells[p_decided])
            if decided_on is None:
                return None
        today = self.checks.today
        if valid_from > today or (valid_to is not None and valid_to < valid_from):
            return None
        if decided_on is None:
            decided_on = today
        elif decided_on > today:
            return None
        text = reference.strip()
        if not text or len(text) > 120:
            return None
        return (line, number, category.value, valid_from, valid_to, decided_on, text)

    def _fast_word(self, word: str) -> Category | None:
        """A category cell's category when the full parse accepts the word as it is (no
        blanks to strip); ``None`` when the full parse must say what is wrong. Cached."""
        category: Category | None = None
        if word.strip() == word:
            try:
                category = self._category(word)
            except InvalidInput:
                category = None
        if len(self._fast_words) < 256:
            self._fast_words[word] = category
        return category

    def _fast_day(self, cell: Any) -> date | None:
        """The date of an ISO ``YYYY-MM-DD`` text cell (as pydantic reads it), else ``None``.
        Cached (a list repeats the same few dates; bounded, so memory stays flat)."""
        if type(cell) is not str:
            return None
        try:
            return self._fast_days[cell]
        except KeyError:
            pass
        day = None
        if _ISO_DAY.match(cell):
            try:
                day = date.fromisoformat(cell)
            except ValueError:
                day = None
        if len(self._fast_days) < 4096:
            self._fast_days[cell] = day
        return day

    def _lenient(
        self, line: int, exc: ValidationError, values: dict[str, Any]
    ) -> _Row | list[Problem]:
        """The row again once the refused cells that may come in other forms are normalised;
        the problems when that does not help."""
        problems: list[Problem] = []
        fixed = dict(values)
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            normalise = _LENIENT.get(field)
            if normalise is None or field not in values:
                problems.append(self._problem(line, error, values))
                continue
            try:
                fixed[field] = normalise(values[field])
            except ValueError as bad:
                problems.append(Problem(line, self.column(field), _shown(values[field]), str(bad)))
        if problems:
            return problems
        try:
            return self.model.model_validate(fixed)
        except ValidationError as again:
            return [self._problem(line, error, values) for error in again.errors()]

    def _problem(self, line: int, error: Any, values: dict[str, Any]) -> Problem:
        field = str(error["loc"][0]) if error["loc"] else ""
        reason = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            reason = "is required"
        elif error["type"] in ("int_parsing", "int_from_float"):
            reason = "expected a whole number"
        elif error["type"].startswith("decimal"):
            reason = "expected an amount in yuan such as 380.00"
        return Problem(line, self.column(field), _shown(values.get(field, "")), reason)

    def _checked(self, line: int, row: _Row) -> Record:
        if isinstance(row, PersonRow):
            gender = None if row.gender is None else GENDERS.get(row.gender.upper(), row.gender)
            person = ingestion.check_person(
                ingestion.PersonInput(row.idNumber, row.name, row.regionCode, gender, row.birthDate)
            )
            if not any(person.region_code.startswith(p) for p in self.checks.regions):
                raise InvalidInput(
                    "regionCode",
                    person.region_code,
                    f"outside the regions of this token ({', '.join(self.checks.regions)})",
                )
            return (
                line,
                person.id_number,
                person.name,
                person.region_code,
                person.gender,
                person.birth_date,
            )
        assert isinstance(row, CategoryRow | EnrollmentRow)
        number = resident_id.parse(row.idNumber).number
        if isinstance(row, CategoryRow):
            category = self._category(row.category)
            checked = ingestion.check_category(
                ingestion.CategoryInput(
                    number, category, row.validFrom, row.validTo, row.reference, row.decidedOn
                ),
                self.checks.today,
            )
            return (
                line,
                number,
                category.value,
                checked.valid_from,
                checked.valid_to,
                checked.decided_on,
                checked.reference,
            )
        assert isinstance(row, EnrollmentRow)
        inclusive = False
        if row.inclusiveCommercial is not None:
            flag = self.columns.boolean(row.inclusiveCommercial)
            if flag is None:
                raise InvalidInput(
                    "inclusiveCommercial", row.inclusiveCommercial, "expected 是 or 否"
                )
            inclusive = flag
        enrollment = ingestion.check_enrollment(
            ingestion.EnrollmentInput(
                number,
                row.year,
                row.contribution,
                inclusive,
                row.enrolledOn,
                self.columns.scheme(row.scheme or ""),
            )
        )
        return (
            line,
            number,
            enrollment.year,
            enrollment.contribution,
            enrollment.inclusive_commercial,
            enrollment.enrolled_on,
            enrollment.scheme,
        )

    def _category(self, word: str | None) -> Category:
        checks = self.checks
        if word is None or word == "":
            if checks.category is None:
                raise InvalidInput("category", "", "is required")
            return checks.category
        category = self._categories.get(word)
        if category is None:
            code = self.columns.category(word)
            if code is None:
                raise InvalidInput("category", word, "unknown category")
            category = Category(code)
            if len(self._categories) < 256:
                self._categories[word] = category
        flags = self.kind == "flags"
        if category.is_monitoring_flag != flags:
            kind = "a monitoring flag" if category.is_monitoring_flag else "an identity"
            other = "flags" if category.is_monitoring_flag else "identities"
            raise InvalidInput("category", word, f"is {kind}; import it as {other}")
        if category not in checks.write_categories:
            raise InvalidInput("category", word, f"{checks.department} does not recognise it")
        if checks.category is not None and category != checks.category:
            raise InvalidInput(
                "category", word, f"this snapshot is the list of {checks.category.value}"
            )
        return category


Batch = tuple[list[Record], list[Problem], int]
"""The staging records of a batch of rows, their problems, and how many rows it held."""


def parse_batch(parser: RowParser, rows: Sequence[tuple[int, Sequence[Any]]]) -> Batch:
    records: list[Record] = []
    problems: list[Problem] = []
    fast = parser.fast_rows
    for line, cells in rows:
        if fast is not None:
            record = fast(line, cells)
            if record is not None:
                records.append(record)
                continue
            parsed = parser._parse_in_full(line, cells)
        else:
            parsed = parser.parse(line, cells)
        if isinstance(parsed, tuple):
            records.append(parsed)
        else:
            problems.extend(parsed)
    return records, problems, len(rows)


def copy_csv(records: Sequence[Record]) -> bytes | list[Record]:
    """Staging records as CSV for ``COPY … (FORMAT csv)`` (an unquoted empty field is NULL),
    UTF-8: a batch crosses from a worker process as one ``bytes`` (cheap to pickle). A batch
    with an empty text, which that CSV could not tell from NULL, stays a list of records.

    >>> copy_csv([(2, "a,b", None, date(2026, 1, 1), Decimal("380.00"), True)])
    b'2,"a,b",,2026-01-01,380.00,True\\r\\n'
    >>> copy_csv([(2, "", None)])
    [(2, '', None)]
    """
    if any("" in record for record in records):
        return list(records)
    out = io.StringIO()
    csv.writer(out).writerows(records)
    return out.getvalue().encode()


CopyBatch = tuple[bytes | list[Record], list[Problem], int]
"""A :data:`Batch` with its records as :func:`copy_csv`."""

_worker_parser: RowParser | None = None


def start_worker(parser: RowParser) -> None:
    """A parsing worker process's initializer: the parser its batches are parsed with."""
    global _worker_parser
    _worker_parser = parser


def parse_copy_batch(
    rows: Sequence[tuple[int, Sequence[Any]]], parser: RowParser | None = None
) -> CopyBatch:
    """:func:`parse_batch` with the records as :func:`copy_csv`; with the worker's parser (set by
    :func:`start_worker`) unless one is given."""
    chosen = parser or _worker_parser
    assert chosen is not None, "start_worker was not called"
    records, problems, count = parse_batch(chosen, rows)
    return copy_csv(records), problems, count


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()[:10]
    return str(value)
