"""Checking and exporting the append-only audit log (R8).

Each row carries the hash of the previous row of the same application; the
read model's ``last_seq`` says how long each chain must be. An edited row
breaks its hash, a deleted row breaks the sequence (or, at the end, the length),
an inserted row breaks the sequence or the link.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.records import ChainHead
from store import cells
from store.cells import WORKBOOK_OPTIONS
from store.chain import GENESIS, entry_hash
from store.tables import ApplicationRow, AuditEntry


@dataclass(frozen=True)
class Break:
    workflow_id: str
    row_id: int | None
    seq: int
    problem: str

    def __str__(self) -> str:
        row = f"row id {self.row_id}" if self.row_id is not None else "no row"
        return f"{self.workflow_id} seq {self.seq} ({row}): {self.problem}"


@dataclass
class VerifyReport:
    chains: int
    rows: int
    breaks: list[Break]

    @property
    def ok(self) -> bool:
        return not self.breaks


def _workflows(
    session: Session, season: int | None, programme: str | None, county: str | None = None
) -> list[tuple[str, int]]:
    q = select(ApplicationRow.workflow_id, ApplicationRow.last_seq)
    if county is not None:
        q = q.where(ApplicationRow.county_code == county)
    if season is not None:
        q = q.where(ApplicationRow.season == season)
    if programme is not None:
        q = q.where(ApplicationRow.programme == programme)
    expected = {wf: n for wf, n in session.exec(q).all()}
    if season is None and programme is None and county is None:
        # Chains whose read-model row is gone are checked too.
        for wf in session.exec(select(AuditEntry.workflow_id).distinct()).all():
            expected.setdefault(wf, -1)
    return sorted(expected.items())


def verify(
    engine: Engine,
    key: bytes,
    *,
    season: int | None = None,
    programme: str | None = None,
    county: str | None = None,
    witness: Mapping[str, ChainHead] | None = None,
) -> VerifyReport:
    """Every chain from its genesis; the first break of each chain is reported.

    ``key``: the audit key (``Keys.audit``): a row hashed without it does not verify.
    ``witness``: each application's chain head as its workflow history recorded it
    (``workers/witness.py``): a chain that ends before it, differs from it, or is gone
    altogether (with its application row) is reported too."""
    breaks: list[Break] = []
    rows = 0
    with Session(engine) as session:
        chains = _workflows(session, season, programme, county)
        if witness is not None:
            known = {wf for wf, _ in chains}
            chains += [(wf, 0) for wf in sorted(set(witness) - known)]
        for wf, expected_last in chains:
            entries = session.exec(
                select(AuditEntry)
                .where(AuditEntry.workflow_id == wf)
                .order_by(col(AuditEntry.seq), col(AuditEntry.id))
            ).all()
            rows += len(entries)
            prev = GENESIS
            broken: Break | None = None
            for position, e in enumerate(entries, start=1):
                if e.seq != position:
                    broken = Break(
                        wf,
                        e.id,
                        e.seq,
                        f"expected seq {position}: a row was deleted or inserted before it",
                    )
                elif e.prev_hash != prev:
                    broken = Break(
                        wf,
                        e.id,
                        e.seq,
                        "its prev_hash does not match the previous row: a row was inserted, deleted or edited",
                    )
                elif entry_hash(key, prev, e) != e.hash:
                    broken = Break(
                        wf, e.id, e.seq, "its content does not match its hash: the row was edited"
                    )
                if broken:
                    break
                prev = e.hash
            if broken is None and expected_last == -1:
                broken = Break(
                    wf,
                    None,
                    len(entries),
                    "no application row for this chain: the application row was deleted",
                )
            if broken is None and expected_last > len(entries):
                broken = Break(
                    wf,
                    None,
                    len(entries) + 1,
                    f"the chain ends at seq {len(entries)} but the application recorded {expected_last}: rows were deleted at the end",
                )
            head = witness.get(wf) if witness is not None else None
            if broken is None and head is not None:
                broken = _against_witness(wf, entries, head)
            if broken:
                breaks.append(broken)
    return VerifyReport(chains=len(chains), rows=rows, breaks=breaks)


def _against_witness(wf: str, entries: Sequence[AuditEntry], head: ChainHead) -> Break | None:
    if not entries and head.seq:
        return Break(
            wf,
            None,
            1,
            f"the workflow's history records {head.seq} events but the database has none: the chain was deleted",
        )
    if len(entries) < head.seq:
        return Break(
            wf,
            None,
            len(entries) + 1,
            f"the workflow's history records the chain up to seq {head.seq}, the database only to {len(entries)}: rows were deleted at the end",
        )
    if head.seq and entries[head.seq - 1].hash != head.hash:
        e = entries[head.seq - 1]
        return Break(
            wf,
            e.id,
            e.seq,
            "its hash is not the one the workflow's history recorded: the chain was rewritten",
        )
    return None


EXPORT_COLUMNS = (
    "workflow_id",
    "seq",
    "at",
    "kind",
    "stage",
    "actor_id",
    "actor_role",
    "credential",
    "summary",
    "detail",
    "prev_hash",
    "hash",
)


def _export_rows(
    engine: Engine, season: int | None, programme: str | None, county: str | None = None
) -> Iterator[list[object]]:
    with Session(engine) as session:
        for wf, _ in _workflows(session, season, programme, county):
            for e in session.exec(
                select(AuditEntry).where(AuditEntry.workflow_id == wf).order_by(col(AuditEntry.seq))
            ).all():
                detail = dict(e.detail)
                summary = str(detail.pop("summary", ""))
                credential = str(detail.pop("credential", ""))
                yield [
                    e.workflow_id,
                    e.seq,
                    e.at.isoformat(),
                    e.kind,
                    e.stage,
                    e.actor_id,
                    e.actor_role,
                    credential,
                    summary,
                    json.dumps(detail, ensure_ascii=False, sort_keys=True),
                    e.prev_hash,
                    e.hash,
                ]


def export(
    engine: Engine,
    out: Path,
    fmt: str,
    *,
    season: int | None = None,
    programme: str | None = None,
    county: str | None = None,
) -> int:
    """Write the audit log as CSV or XLSX; returns the number of rows."""
    n = 0
    if fmt == "csv":
        with out.open("w", newline="", encoding="utf-8-sig") as f:
            w = csv.writer(f)
            w.writerow(EXPORT_COLUMNS)
            for row in _export_rows(engine, season, programme, county):
                w.writerow(cells.row(row))
                n += 1
        return n
    if fmt == "xlsx":
        import xlsxwriter

        wb = xlsxwriter.Workbook(str(out), {"constant_memory": True, **WORKBOOK_OPTIONS})
        ws = wb.add_worksheet("audit log")
        bold = wb.add_format({"bold": True})
        ws.write_row(0, 0, EXPORT_COLUMNS, bold)
        ws.freeze_panes(1, 0)
        for row in _export_rows(engine, season, programme, county):
            n += 1
            ws.write_row(n, 0, cells.row(row))
        wb.close()
        return n
    raise ValueError(f"format must be csv or xlsx, not {fmt!r}")
