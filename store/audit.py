"""Checking and exporting the append-only audit log (R8).

Each row carries the hash of the previous row of the same application; the
read model's ``last_seq`` says how long each chain must be. An edited row
breaks its hash, a deleted row breaks the sequence (or, at the end, the length),
an inserted row breaks the sequence or the link.

The rows a payout reads (``applications``, ``payments``) carry a keyed MAC of their
money- and decision-bearing fields (``store/sealing.row_mac``): ``verify`` names each
row whose MAC does not match, and ``prepare_payments`` refuses to pay from one.
"""

from __future__ import annotations

import csv
import hmac
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.records import ChainHead
from store import cells
from store.cells import WORKBOOK_OPTIONS
from store.chain import GENESIS, entry_hash, utc
from store.sealing import row_key, row_mac
from store.tables import ApplicationRow, AuditEntry, Payment, PayoutBatch, RowSealing


@dataclass(frozen=True)
class Break:
    """A chain break (``table`` "audit_log": ``seq`` and ``row_id`` of the audit row), or
    a sealed row that does not verify (``table`` "applications": ``seq`` its last_seq;
    "payments": ``row_id`` the payment's id, ``seq`` its attempt). A row's ``problem``
    names the row itself, so it reads alone wherever it is printed."""

    workflow_id: str
    row_id: int | None
    seq: int
    problem: str
    table: str = "audit_log"

    def __str__(self) -> str:
        if self.table != "audit_log":
            return self.problem
        row = f"row id {self.row_id}" if self.row_id is not None else "no row"
        return f"{self.workflow_id} seq {self.seq} ({row}): {self.problem}"


@dataclass
class VerifyReport:
    chains: int
    rows: int
    breaks: list[Break]
    # applications and payments rows whose row_mac was checked, and those written
    # before row MACs began (migration 0007), not yet sealed
    sealed_rows: int = 0
    unsealed_rows: int = 0

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
    altogether (with its application row) is reported too. So is every ``applications``
    and ``payments`` row (of the same season, programme and county) whose row_mac does
    not match: its table and id named in the break."""
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
        sealed = _sealed_rows(session, row_key(key), season, programme, county)
    return VerifyReport(
        chains=len(chains),
        rows=rows,
        breaks=breaks + sealed.breaks,
        sealed_rows=sealed.sealed,
        unsealed_rows=sealed.unsealed,
    )


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
    if head.seq and not head.witnesses(entries[head.seq - 1].hash):
        e = entries[head.seq - 1]
        return Break(
            wf,
            e.id,
            e.seq,
            "its hash is not the one the workflow's history recorded: the chain was rewritten",
        )
    return None


# ------------------------------------------------------------------ row MACs

ROW_EDITED = "row_mac does not match (edited outside aidflow)"
ROW_UNSEALED = (
    "row_mac is empty but the row was written after row MACs began (edited outside aidflow)"
)
# Workers' clocks differ a little from the migrating machine's: a sealed row a lagging
# clock dated before the watermark is no sign that the watermark was moved.
_CLOCK_SKEW = timedelta(hours=1)


@dataclass(frozen=True)
class Sealing:
    """Which rows may still carry an empty row_mac: those written before migration 0007
    (``store/tables.RowSealing``). No watermark row: none may."""

    since: datetime | None
    payments_before_id: int

    @classmethod
    def load(cls, session: Session) -> Sealing:
        mark = session.get(RowSealing, 1)
        if mark is None:
            return cls(since=None, payments_before_id=0)
        return cls(since=utc(mark.since), payments_before_id=mark.payments_before_id)

    def written_before(self, row: ApplicationRow | Payment, leeway: timedelta) -> bool:
        """Whether the row was written before row MACs began. A payment by its id; an
        applications row by its updated_at, give or take ``leeway``: timed by the
        writing worker's clock and the migrating machine's."""
        if isinstance(row, Payment):
            return row.id is not None and row.id <= self.payments_before_id
        return (
            self.since is not None
            and row.updated_at is not None
            and utc(row.updated_at) < self.since + leeway
        )

    def moved_past(self, row: ApplicationRow | Payment) -> bool:
        """Whether a sealed row, by its sealed content, was written after row MACs began
        although the watermark puts it before (the watermark was moved forward). A
        payment written before is sealed when its result is recorded: its settled_at
        (sealed) says when."""
        if isinstance(row, Payment):
            return self.written_before(row, timedelta(0)) and (
                row.settled_at is None
                or (self.since is not None and utc(row.settled_at) < self.since - _CLOCK_SKEW)
            )
        return self.written_before(row, -_CLOCK_SKEW)


def row_label(row: ApplicationRow | Payment) -> str:
    """How a break names the row (no account or identity number: R9)."""
    if isinstance(row, Payment):
        return f"payments row {row.id} ({row.workflow_id}, attempt {row.attempt}, batch {row.batch_id})"
    return f"applications row {row.workflow_id}"


def row_problem(key: bytes, row: ApplicationRow | Payment, sealing: Sealing) -> str | None:
    """Why the row cannot be trusted, naming it; None when its MAC matches or it is a
    row written before row MACs began (not yet sealed). ``key``: ``Keys.rows``."""
    table = "payments" if isinstance(row, Payment) else "applications"
    if row.row_mac:
        # As bytes: compare_digest refuses a str with non-ASCII in it (a forger's text).
        if hmac.compare_digest(row.row_mac.encode(), row_mac(key, table, row).encode()):
            return None
        return f"{row_label(row)}: {ROW_EDITED}"
    # No leeway here: a row aidflow wrote since carries a MAC (stop the workers of the
    # old code before migrating: they would write rows without one).
    if sealing.written_before(row, timedelta(0)):
        return None
    return f"{row_label(row)}: {ROW_UNSEALED}"


@dataclass
class _SealedRows:
    breaks: list[Break]
    sealed: int = 0
    unsealed: int = 0


def _sealed_rows(
    session: Session, key: bytes, season: int | None, programme: str | None, county: str | None
) -> _SealedRows:
    sealing = Sealing.load(session)
    out = _SealedRows(breaks=[])
    apps = select(ApplicationRow)
    pays = select(Payment).join(PayoutBatch, col(PayoutBatch.id) == col(Payment.batch_id))
    if county is not None:
        apps = apps.where(ApplicationRow.county_code == county)
        pays = pays.where(PayoutBatch.county_code == county)
    if season is not None:
        apps = apps.where(ApplicationRow.season == season)
        pays = pays.where(PayoutBatch.season == season)
    if programme is not None:
        apps = apps.where(ApplicationRow.programme == programme)
        pays = pays.where(PayoutBatch.programme == programme)
    rows: list[ApplicationRow | Payment] = [
        *session.exec(apps.order_by(col(ApplicationRow.workflow_id))).all(),
        *session.exec(pays.order_by(col(Payment.id))).all(),
    ]
    # A watermark moved forward would pass rows blanked since as "not yet sealed": a
    # row sealed (by aidflow, after the migration) on its old side gives it away.
    moved: list[str] = []
    for row in rows:
        problem = row_problem(key, row, sealing)
        if problem is not None:
            if isinstance(row, Payment):
                where = Break(row.workflow_id, row.id, row.attempt, problem, table="payments")
            else:
                where = Break(row.workflow_id, None, row.last_seq, problem, table="applications")
            out.breaks.append(where)
        elif not row.row_mac:
            out.unsealed += 1
        else:
            out.sealed += 1
            if sealing.moved_past(row):
                moved.append(row_label(row))
    if moved:
        out.breaks.append(
            Break(
                "row_sealing",
                1,
                0,
                f"row_sealing: the watermark of unsealed rows lies after {len(moved)} sealed "
                f"row(s), the first {moved[0]}: it was moved (edited outside aidflow)",
                table="row_sealing",
            )
        )
    return out


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
