"""The yearly aid ledger (PROCESS.md §4.6): every aid a registered-poor student received in
a year, from every programme, each line with its source.

Plan 6 asks villages and townships to keep it for each registered-poor student and
file it with the county education bureau and poverty office. aidflow keeps it from what
it holds: payments the bank confirmed, grants signed for, and aid recorded from others'
lists (the national grant, which universities decide: no workflow of aidflow's).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class AidKind(StrEnum):
    PAID = "paid"  # onto the card, the bank confirmed it
    RECEIVED = "received"  # signed for in person (new-student aid)
    LENT = "lent"  # a loan the bank paid out
    RECORDED = "recorded"  # decided and paid by others, recorded here


AID_KIND_ZH: dict[AidKind, str] = {
    AidKind.PAID: "已发放",
    AidKind.RECEIVED: "已签领",
    AidKind.LENT: "已贷款",
    AidKind.RECORDED: "已登记",
}

# Programmes whose aid aidflow records but does not decide, with their names (Chinese,
# English). Their lists are imported (``aidflow grants import``).
RECORDED_PROGRAMMES: dict[str, tuple[str, str]] = {
    "national-grant": ("国家助学金", "national grant"),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LedgerLine(_Model):
    programme: str
    programme_name_zh: str
    kind: AidKind
    amount_cny: int
    on: date | None  # paid, signed for or recorded
    # Where the line comes from: an application's workflow id and its payment, or an
    # imported list's file and row.
    source: str


class StudentLedger(_Model):
    """One registered-poor student's year: never a full identity number (R9)."""

    national_id_masked: str
    name: str
    township_code: str
    village_code: str
    village_name: str
    lines: list[LedgerLine]

    @property
    def total_cny(self) -> int:
        return sum(line.amount_cny for line in self.lines)


class Ledger(_Model):
    year: int
    county_code: str
    township_code: str = ""
    village_code: str = ""
    built_at: datetime
    students: list[StudentLedger]

    @property
    def lines(self) -> int:
        return sum(len(s.lines) for s in self.students)

    @property
    def total_cny(self) -> int:
        return sum(s.total_cny for s in self.students)
