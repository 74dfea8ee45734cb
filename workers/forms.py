"""Reading application files for ``aidflow apply``: JSON or CSV.

CSV columns are the form's fields; nested ones are dotted: ``places.village_code``,
``documents.application_form`` (number of copies).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


def read_forms(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(row number, raw form) pairs; row numbers count from 1 (CSV: the header is row 1)."""
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
