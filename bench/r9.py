"""R9 checked after a season (issue 16): no full national identity number and no full
bank account number anywhere aidflow writes, except the sealed fields and the bank's
disbursement files: not in a workflow history, not in any table, not in any file.

A finding names where and what kind, never the number itself.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from temporalio.client import Client

from models.privacy import is_valid_national_id

# An 18-character identity number that is not part of a hex digest: a SHA-256 holds a
# run of 18 decimal digits bounded by the letters a-f about once in a hundred, and one
# in eleven of those passes the check digit (seen: a chain head in a CI run's histories).
_ID = re.compile(r"(?<![0-9a-fA-F])[0-9]{17}[0-9Xx](?![0-9a-fA-F])")
# A run of 16 to 19 digits that is not part of a hex digest (MACs, hashes) or a longer
# number: an account number.
_ACCOUNT = re.compile(r"(?<![0-9a-fA-F])[0-9]{16,19}(?![0-9a-fA-F])")
# Where a full number belongs: sealed (encrypted) columns, and the disbursement files
# for the bank (prepared under files/batches, sent to the bank's outbox), which only
# their owner may read.
SEALED_COLUMN = re.compile(r"_sealed$")
BANK_FILES = ("outbox", "batches")
_PAYLOAD_DATA = re.compile(r'"data":\s*"([A-Za-z0-9+/=]+)"')


def kinds_in(value: str) -> list[str]:
    """What full numbers ``value`` holds: "national id", "account number"."""
    found = []
    if any(is_valid_national_id(m.upper()) for m in _ID.findall(value)):
        found.append("national id")
    if any(not is_valid_national_id(m) for m in _ACCOUNT.findall(value)):
        found.append("account number")  # 16 to 19 digits that are not an identity number
    return found


def scan_database(engine: Engine) -> list[str]:
    findings = []
    tables = inspect(engine).get_table_names()
    with engine.connect() as conn:
        for table in tables:
            if table == "alembic_version":
                continue
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).mappings()
            for n, row in enumerate(rows):
                for column, value in row.items():
                    if value is None or SEALED_COLUMN.search(column):
                        continue
                    for kind in kinds_in(str(value)):
                        findings.append(f"table {table}, row {n + 1}, column {column}: {kind}")
    return findings


def scan_files(folder: Path, *, skip: Iterable[Path] = ()) -> list[str]:
    """Every file under ``folder`` (XLSX are ZIPs: read inside), but the bank's files and
    ``skip`` (a season's inputs)."""
    import zipfile

    skipped = {p.resolve() for p in skip}
    findings = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.resolve() in skipped:
            continue
        if any(part in BANK_FILES for part in path.relative_to(folder).parts):
            if path.stat().st_mode & 0o077:
                findings.append(f"file {path.relative_to(folder)}: readable by others")
            continue
        if path.suffix in (".db", ".db-wal", ".db-shm", ".key") or path.name.endswith(
            ("-wal", "-shm")
        ):
            continue  # the databases are scanned as databases; the key is a key
        texts: list[str] = []
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as z:
                texts = [z.read(n).decode("utf-8", "replace") for n in z.namelist()]
        else:
            texts = [path.read_bytes().decode("utf-8", "replace")]
        for kind in sorted({k for t in texts for k in kinds_in(t)}):
            findings.append(f"file {path.relative_to(folder)}: {kind}")
    return findings


def scan_history_json(name: str, history_json: str) -> list[str]:
    """A history as JSON: every payload decoded, and the JSON itself."""
    findings = [f"history {name}: {k}" for k in kinds_in(history_json)]
    for m in _PAYLOAD_DATA.finditer(history_json):
        try:
            decoded = base64.b64decode(m.group(1)).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            continue
        findings += [f"history {name}, a payload: {k}" for k in kinds_in(decoded)]
    return sorted(set(findings))


async def scan_histories(client: Client, workflow_ids: Iterable[str]) -> list[str]:
    """The histories of these workflows (their latest runs)."""
    findings = []
    for wf in workflow_ids:
        history = await client.get_workflow_handle(wf).fetch_history()
        findings += scan_history_json(wf, history.to_json())
    return findings


def summary(findings: list[str], **scanned: Any) -> dict[str, Any]:
    return {"clean": not findings, "findings": findings[:20], **scanned}
