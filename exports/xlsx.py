"""XLSX exports with typed cells: numbers, dates and date-times a spreadsheet can sum and
sort, and text that can never be a formula.

The engine renders every value as text (``CompiledColumns.rows``); each column's cell type
(``CompiledColumns.cell_types``) turns it back into what it stands for: ids and ages as
integers, ``bid_price`` and Excel serial numbers as decimals, dates as dates, date-times as
the client's local wall time (Excel has no time zones). An empty value is an empty cell.

Text cells are stored as text (type ``s``), which Excel never evaluates, so nothing is
prefixed: a would-be formula (``engine.is_formula``) is shown as it is, and gets Excel's
"quote prefix" so that editing the cell keeps it text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from customfields.engine import CompiledColumns, is_formula

DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"


def _local_datetime(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=None)


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "integer": int,
    "decimal": Decimal,
    "number": Decimal,
    "date": dt.date.fromisoformat,
    "datetime": _local_datetime,
}
_FORMATS = {"date": DATE_FORMAT, "datetime": DATETIME_FORMAT}


def xlsx_write(
    compiled: CompiledColumns,
    rows: Iterable[list[str]],
    path: Path,
    progress: Callable[[int], None],
    every: int,
) -> int:
    """Write ``rows`` (the engine's text of ``compiled``) to ``path``; ``progress(done)`` is
    called every ``every`` rows. Returns the number of rows."""
    workbook = openpyxl.Workbook(write_only=True)  # rows go to disk as they come
    sheet = workbook.create_sheet("referrals")
    sheet.append([_text_cell(sheet, header) for header in compiled.headers])
    cell = _cell_writers(sheet, compiled.cell_types)
    count = 0
    for row in rows:
        sheet.append([write(value) for write, value in zip(cell, row, strict=True)])
        count += 1
        if count % every == 0:
            progress(count)
    workbook.save(path)
    return count


def _cell_writers(sheet: WriteOnlyWorksheet, cell_types: list[str]) -> list[Callable]:
    writers = []
    for cell_type in cell_types:
        if cell_type in _CONVERTERS:
            writers.append(_typed(sheet, _CONVERTERS[cell_type], _FORMATS.get(cell_type)))
        else:
            writers.append(lambda value, sheet=sheet: _text_cell(sheet, value))
    return writers


def _typed(sheet: WriteOnlyWorksheet, convert: Callable[[str], Any], number_format: str | None):
    def write(value: str) -> Any:
        if not value:
            return None
        if number_format is None:
            return convert(value)
        cell = WriteOnlyCell(sheet, convert(value))
        cell.number_format = number_format
        return cell

    return write


def _text_cell(sheet: WriteOnlyWorksheet, value: str) -> Any:
    """``value`` as a text cell. openpyxl would store a string starting with "=" as a
    formula: a would-be formula gets an explicit text cell instead."""
    if not is_formula(value):
        return value or None
    cell = WriteOnlyCell(sheet, value)
    cell.data_type = "s"
    cell.quotePrefix = True
    return cell
