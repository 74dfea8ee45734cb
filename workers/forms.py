"""Reading application files for ``aidflow apply``: JSON, CSV or XLSX.

CSV and XLSX columns are the form's fields; nested ones are dotted:
``places.village_code``, ``documents.application_form`` (number of copies). A county
office enters a roster (the freshman grant's) the same way: one row a student.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


def read_forms(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(row number, raw form) pairs; row numbers count from 1 (CSV: the header is row 1)."""
    if path.suffix.lower() == ".xlsx":
        return _xlsx_rows(path)
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        items = data if isinstance(data, list) else [data]
        return [(i, item) for i, item in enumerate(items, start=1)]
    rows: list[tuple[int, dict[str, Any]]] = []
    for i, flat in enumerate(csv.DictReader(text.splitlines()), start=2):
        rows.append((i, unflatten(flat)))
    return rows


def unflatten(flat: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if key is None or value is None or value == "":
            continue
        head, _, tail = key.strip().partition(".")
        if tail:
            out.setdefault(head, {})[tail] = value
        else:
            out[head] = value
    return out


def _xlsx_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The first sheet's rows under its header, numbered as the spreadsheet numbers them;
    read row by row (read-only mode), every value as text."""
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        rows = wb.worksheets[0].iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        out: list[tuple[int, dict[str, Any]]] = []
        for i, values in enumerate(rows, start=2):
            if all(v is None or str(v).strip() == "" for v in values):
                continue
            flat = {
                h: ("" if v is None else str(v).strip())
                for h, v in zip(header, values, strict=False)
                if h
            }
            out.append((i, unflatten(flat)))
        return out
    finally:
        wb.close()
