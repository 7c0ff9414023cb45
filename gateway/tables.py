"""Tables out: rows (an async iterator) streamed to CSV or XLSX in constant memory, whatever
their number.

One writer for every table the gateway hands out (exports today; fund statements and payment
files can reuse it): the caller describes its :class:`Column` s and yields rows of Python values
in that order, :func:`stream_table` turns them into bytes chunk by chunk.

- **CSV** is UTF-8 *with a byte-order mark* (``EF BB BF``), so that Excel opens Chinese headers
  and names correctly (without the mark it guesses the local ANSI code page), ``\\r\\n`` line
  ends (RFC 4180). Amounts are plain decimals (``1234.50``), dates ISO 8601 (``2026-03-01``),
  booleans ``true``/``false``, empty cells for ``None``.
- **XLSX** is written by openpyxl in write-only mode (rows go to a temporary file as they come,
  never a worksheet in memory): amounts are numbers formatted ``0.00`` (the ``Decimal``
  rounded half up to the fen), dates real dates formatted ``yyyy-mm-dd``, text as text (an
  ID number stays ``510402197001011234``, not ``5.1E+17``). A sheet holds at most
  :data:`XLSX_MAX_ROWS` rows; further rows continue on a next sheet with the header repeated.
  The workbook can only be zipped at its end, so its bytes come after the last row.

>>> import asyncio
>>> from decimal import Decimal
>>> columns = [Column("name", "姓名"), Column("finance", "财政", Kind.MONEY)]
>>> async def rows():
...     yield ["张三", Decimal("90.5")]
>>> async def csv_bytes():
...     return b"".join([chunk async for chunk in stream_table(columns, rows(), Format.CSV)])
>>> asyncio.run(csv_bytes()).decode("utf-8-sig")
'姓名 name,财政 finance\\r\\n张三,90.50\\r\\n'
"""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import IO, Any

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]
from openpyxl.worksheet._write_only import WriteOnlyWorksheet  # type: ignore[import-untyped]

from policies.money import money, round_money

BOM = "\ufeff"
XLSX_MAX_ROWS = 1_048_576
"""Rows of one Excel sheet, header included (Excel's limit)."""
CHUNK_BYTES = 64 * 1024
"""About how many bytes :func:`stream_table` gathers before it yields them."""
BATCH_ROWS = 500
"""Rows written to an XLSX workbook per step (in a worker thread, off the event loop)."""


class Format(StrEnum):
    """The file formats a table is written in (the value is the file extension)."""

    CSV = "csv"
    XLSX = "xlsx"

    @property
    def media_type(self) -> str:
        """The HTTP ``Content-Type`` of the format."""
        if self is Format.CSV:
            return "text/csv; charset=utf-8"
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Kind(StrEnum):
    """What a column holds, which decides how a cell is written."""

    TEXT = "text"
    """``str`` (anything else is written as ``str(value)``)."""
    MONEY = "money"
    """``Decimal`` yuan, written with two decimals (rounded half up to the fen)."""
    INTEGER = "integer"
    DATE = "date"
    """``datetime.date``: ISO 8601."""
    DATETIME = "datetime"
    """``datetime.datetime``: ISO 8601 text with its offset (Excel has no time zones)."""
    BOOLEAN = "boolean"


class Headers(StrEnum):
    """Which names head the columns."""

    BOTH = "both"
    """``姓名 name``: readable by people and by programs."""
    CHINESE = "zh"
    ENGLISH = "en"


@dataclass(frozen=True)
class Column:
    """One column: its English ``name`` (a program's key, e.g. the GraphQL field name
    ``idNumber``), its Chinese ``title`` (``身份证号``) and what it holds."""

    name: str
    title: str
    kind: Kind = Kind.TEXT

    def header(self, headers: Headers = Headers.BOTH) -> str:
        """``Column("idNumber", "身份证号").header()`` → ``"身份证号 idNumber"``."""
        if headers is Headers.CHINESE:
            return self.title
        if headers is Headers.ENGLISH:
            return self.name
        return f"{self.title} {self.name}"


Row = Sequence[Any]


def _text(kind: Kind, value: Any) -> str:
    """A CSV cell."""
    if value is None:
        return ""
    if kind is Kind.MONEY:
        return money(Decimal(value))
    if kind is Kind.BOOLEAN:
        return "true" if value else "false"
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


async def _csv(
    columns: Sequence[Column], rows: AsyncIterable[Row], headers: Headers, chunk_bytes: int
) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow([column.header(headers) for column in columns])
    kinds = [column.kind for column in columns]
    async for row in rows:
        writer.writerow([_text(kind, value) for kind, value in zip(kinds, row, strict=True)])
        if buffer.tell() >= chunk_bytes:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


_FORMATS = {Kind.MONEY: "0.00", Kind.DATE: "yyyy-mm-dd", Kind.INTEGER: "0"}


class _Workbook:
    """An openpyxl write-only workbook that starts a new sheet when one is full."""

    def __init__(self, columns: Sequence[Column], headers: Headers, max_rows: int) -> None:
        self.book = Workbook(write_only=True)
        self.columns = columns
        self.header = [column.header(headers) for column in columns]
        self.max_rows = max_rows
        self.sheets = 0
        self.sheet: WriteOnlyWorksheet = self._next_sheet()
        self.rows_in_sheet = 1
        self.cells: list[Callable[[Any], Any]] = [self._cell(column.kind) for column in columns]

    def _next_sheet(self) -> WriteOnlyWorksheet:
        self.sheets += 1
        sheet: WriteOnlyWorksheet = self.book.create_sheet(f"Sheet{self.sheets}")
        sheet.append(self.header)
        self.rows_in_sheet = 1
        return sheet

    def _cell(self, kind: Kind) -> Callable[[Any], Any]:
        number_format = _FORMATS.get(kind)
        if kind is Kind.DATETIME:
            return lambda value: None if value is None else value.isoformat()
        if number_format is None:
            return lambda value: value

        def cell(value: Any) -> Any:
            if value is None:
                return None
            if kind is Kind.MONEY:
                value = round_money(Decimal(value))
            made = WriteOnlyCell(self.sheet, value=value)
            made.number_format = number_format
            return made

        return cell

    def append(self, rows: Sequence[Row]) -> None:
        for row in rows:
            if self.rows_in_sheet >= self.max_rows:
                self.sheet = self._next_sheet()
            self.sheet.append([cell(value) for cell, value in zip(self.cells, row, strict=True)])
            self.rows_in_sheet += 1

    def save(self, file: IO[bytes]) -> None:
        self.book.save(file)


async def _xlsx(
    columns: Sequence[Column],
    rows: AsyncIterable[Row],
    headers: Headers,
    chunk_bytes: int,
    max_rows: int,
) -> AsyncIterator[bytes]:
    book = _Workbook(columns, headers, max_rows)
    batch: list[Row] = []
    async for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            await asyncio.to_thread(book.append, batch)
            batch = []
    await asyncio.to_thread(book.append, batch)
    with tempfile.TemporaryFile() as file:
        await asyncio.to_thread(book.save, file)
        file.seek(0)
        while chunk := await asyncio.to_thread(file.read, chunk_bytes):
            yield chunk


def stream_table(
    columns: Sequence[Column],
    rows: AsyncIterable[Row],
    format: Format,
    *,
    headers: Headers = Headers.BOTH,
    chunk_bytes: int = CHUNK_BYTES,
    xlsx_max_rows: int = XLSX_MAX_ROWS,
) -> AsyncIterator[bytes]:
    """The bytes of the table ``columns`` × ``rows`` in ``format``, in chunks of about
    ``chunk_bytes`` (CSV: as the rows come; XLSX: once the last row is in).

    Each row holds one value per column, in order (``None`` for an empty cell); a row of
    another length raises ``ValueError``. Memory stays bounded by one chunk (CSV) or one batch
    of :data:`BATCH_ROWS` rows (XLSX, whose rows wait in a temporary file) however many rows
    there are. ``xlsx_max_rows`` (at most :data:`XLSX_MAX_ROWS`) is the rows per sheet,
    header included.
    """
    if format is Format.CSV:
        return _csv(columns, rows, headers, chunk_bytes)
    if not 2 <= xlsx_max_rows <= XLSX_MAX_ROWS:
        raise ValueError(f"xlsx_max_rows = {xlsx_max_rows}: between 2 and {XLSX_MAX_ROWS}")
    return _xlsx(columns, rows, headers, chunk_bytes, xlsx_max_rows)


async def write_table(
    columns: Sequence[Column],
    rows: AsyncIterable[Row],
    format: Format,
    file: IO[bytes],
    *,
    headers: Headers = Headers.BOTH,
) -> int:
    """Write the table to an open binary ``file`` (as :func:`stream_table`); the bytes written."""
    written = 0
    async for chunk in stream_table(columns, rows, format, headers=headers):
        await asyncio.to_thread(file.write, chunk)
        written += len(chunk)
    return written
