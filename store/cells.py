"""Text written into spreadsheets and CSV files an official opens (issue 16).

A value that begins with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return) is a
formula to Excel and WPS: a name ``=HYPERLINK(...)`` became a live link in the roster.
Such text is written with a leading apostrophe, which spreadsheets show as text, and
control characters are dropped (the audit CSV held NUL bytes). Numbers stay numbers.
XLSX workbooks are also opened with ``strings_to_formulas`` off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# xlsxwriter.Workbook options for every workbook aidflow writes. In memory: xlsxwriter
# otherwise writes its parts to the system's temporary folder first, which a container
# with a read-only root filesystem (deploy/k8s) does not have.
WORKBOOK_OPTIONS: dict[str, Any] = {
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "in_memory": True,
}


def cell(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = _CONTROL.sub("", value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def row(values: Iterable[Any]) -> list[Any]:
    return [cell(v) for v in values]
