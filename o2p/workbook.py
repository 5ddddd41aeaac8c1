"""payout.xlsx (rulebook §8, issue #12): the batch's files as one workbook, so finance never
meets the CSV pitfalls — ids and names are typed as text (a long numeric id stays as it is, a
name starting with `=` stays a name), money is a number formatted `0.00` (exact decimals, never
a float in the file), plus a summary sheet. Written with openpyxl, then made byte-for-byte
reproducible (fixed document times and zip entry times), as every file of a release is."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

from o2p.money import fen_to_cny

NUMBER_FORMATS = {"rate": "0.0000"}
MONEY_FORMAT = "0.00"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def payout_workbook(batch_id: str, period: str, sheets: list[tuple[str, list[str], list[list] | str]],
                    totals: dict, numeric: set[str], extra_summary: list[tuple[str, object]] = ()) -> bytes:
    """`sheets`: (title, columns, rows of text as in the CSVs), or (title, columns, a note) for a
    sheet that holds only that note (a statement too long for a workbook: `o2p.release.render`);
    columns in `numeric` become numbers. `extra_summary`: more (item, value) rows of the summary."""
    wb = Workbook()
    wb.remove(wb.active)
    for title, columns, rows in sheets:
        ws = wb.create_sheet(title)
        if isinstance(rows, str):
            _header(ws, [rows])
            ws.column_dimensions["A"].width = 120
            continue
        _header(ws, columns)
        for r, row in enumerate(rows, start=2):
            for c, (name, value) in enumerate(zip(columns, row, strict=True), start=1):
                _cell(ws.cell(row=r, column=c), name, value, numeric)
        ws.freeze_panes = "A2"
        for c, name in enumerate(columns, start=1):
            ws.column_dimensions[ws.cell(row=1, column=c).column_letter].width = max(12, len(name) + 2)
    ws = wb.create_sheet("summary")
    _header(ws, ["item", "value"])
    summary = [("batch_id", batch_id), ("period", period), ("promoters_paid", totals["row_count"]),
               ("gross_cny", fen_to_cny(totals["gross_fen"])), ("tax_cny", fen_to_cny(totals["tax_fen"])),
               ("net_cny", fen_to_cny(totals["net_fen"])), ("currency", "CNY"), *extra_summary]
    for r, (item, value) in enumerate(summary, start=2):
        _cell(ws.cell(row=r, column=1), "item", item, numeric)
        if isinstance(value, int):
            ws.cell(row=r, column=2, value=value)
        else:
            _cell(ws.cell(row=r, column=2), item, value, numeric)
    ws.column_dimensions["A"].width, ws.column_dimensions["B"].width = 18, 24
    fixed = datetime(2000, 1, 1)
    wb.properties.creator, wb.properties.lastModifiedBy = "o2p", "o2p"
    wb.properties.created, wb.properties.modified = fixed, fixed
    buf = io.BytesIO()
    wb.save(buf)
    return _reproducible(buf.getvalue())


def _header(ws, columns: list[str]) -> None:
    for c, name in enumerate(columns, start=1):
        cell = ws.cell(row=1, column=c)
        cell.value, cell.data_type = name, "s"
        cell.font = Font(bold=True)


def _cell(cell, column: str, value, numeric: set[str]) -> None:
    if column in numeric and isinstance(value, str) and value != "":
        cell.value = Decimal(value)          # written as its exact decimal text
        cell.number_format = NUMBER_FORMATS.get(column, MONEY_FORMAT)
    else:
        text = "" if value is None else str(value)
        # a control character (an upstream id can hold one; the reference data is refused) cannot
        # be stored in a workbook: shown escaped, as \x01; the CSVs keep the raw text
        cell.value = ILLEGAL_CHARACTERS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
        cell.data_type = "s"                 # text, never a formula, whatever it starts with
        cell.number_format = "@"


def _reproducible(data: bytes) -> bytes:
    """The same workbook, every zip entry with a fixed time and the same compression."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            fixed.compress_type, fixed.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":   # openpyxl stamps the save time here
                body = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                              rb"\g<1>2000-01-01T00:00:00Z\g<2>", body)
            dst.writestr(fixed, body)
    return out.getvalue()
