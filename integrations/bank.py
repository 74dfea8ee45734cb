"""Bank adapters: how disbursement files reach the agent bank and results come back.

``FileExchangeBank`` is how county finance offices really work with the agent
bank: aidflow drops ``<batch>.csv`` into an outbox folder; the bank (or the
office's transfer tool) drops ``<batch>.result.csv`` into an inbox folder.

``BankSimulator`` plays the bank on the other side of those folders, for
development, tests and the demo: it pays each row once per idempotency key
(a re-sent file never pays twice), keeps a ledger, and returns the payments
its rules say (closed account, name mismatch), after a configurable delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import os
import random
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from models.payout import BankResultRow

DISBURSEMENT_COLUMNS = (
    "batch_id",
    "sequence",
    "account",
    "account_holder",
    "amount_cny",
    "idempotency_key",
)
RESULT_COLUMNS = ("batch_id", "sequence", "idempotency_key", "status", "reason", "bank_reference")


def atomic_write(path: Path, text: str) -> None:
    """Written whole (the other side never sees half a file) and readable by the owner
    alone: a disbursement file holds full account numbers."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o600)  # whatever the umask, and if the file was there before
    os.replace(tmp, path)


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, refused unless it stays a file of ``folder`` (a name built from
    an id must not climb out with ``..`` or a slash)."""
    path = folder / name
    if (
        "/" in name
        or "\\" in name
        or name.startswith(".")
        or path.resolve().parent != folder.resolve()
    ):
        raise ValueError(f"{name!r} is not a file name inside {folder}")
    return path


@dataclass
class FileExchangeBank:
    root: Path

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    def send(self, batch_id: str, disbursement_csv: str) -> Path:
        """Idempotent: the same batch file again is a no-op."""
        self.outbox.mkdir(parents=True, exist_ok=True)
        path = inside(self.outbox, f"{batch_id}.csv")
        if path.exists() and path.read_text(encoding="utf-8") == disbursement_csv:
            return path
        atomic_write(path, disbursement_csv)
        return path

    def result(self, batch_id: str) -> list[BankResultRow] | None:
        path = inside(self.inbox, f"{batch_id}.result.csv")
        if not path.exists():
            return None
        rows = []
        try:
            for r in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))):
                rows.append(
                    BankResultRow(
                        sequence=int(r["sequence"]),
                        idempotency_key=r["idempotency_key"],
                        status=r["status"],
                        reason=r.get("reason", ""),
                        bank_reference=r.get("bank_reference", ""),
                    )
                )
        except csv.Error as e:  # e.g. a field over csv's 128 KB: the bank sends it again
            raise ValueError(f"the bank's result file {path.name} cannot be read: {e}") from None
        return rows


@dataclass
class SimulatorRules:
    """Which payments the simulated bank returns, and how long it takes."""

    # Account numbers ending in one of these suffixes are closed (销户).
    closed_account_suffixes: tuple[str, ...] = ()
    # Account holders with these names do not match the bank's records (户名不符).
    name_mismatch_holders: tuple[str, ...] = ()
    # Otherwise, this share of first attempts is returned at random (seeded).
    return_rate: float = 0.0
    seed: int = 0
    delay_seconds: float = 0.0
    reasons: Mapping[str, str] = field(
        default_factory=lambda: {
            "closed": "账户已销户 / account closed",
            "name": "户名不符 / name mismatch",
        }
    )


class BankSimulator:
    def __init__(self, root: Path, rules: SimulatorRules | None = None) -> None:
        self.bank = FileExchangeBank(root)
        self.rules = rules or SimulatorRules()
        self._random = random.Random(self.rules.seed)
        root.mkdir(parents=True, exist_ok=True)
        self._ledger_path = root / "ledger.db"
        with self._ledger() as db:
            db.execute(
                "create table if not exists ledger (idempotency_key text primary key, batch_id text, account text, "
                "holder text, amount_cny integer, status text, reason text, bank_reference text, at real)"
            )
            db.execute("create table if not exists seen_files (name text primary key, at real)")

    def _ledger(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._ledger_path, timeout=30, isolation_level=None)
        db.execute("pragma journal_mode=wal")
        return db

    def ledger(self) -> list[dict[str, object]]:
        with self._ledger() as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("select * from ledger order by at")]

    def paid_total(self) -> int:
        with self._ledger() as db:
            return int(
                db.execute(
                    "select coalesce(sum(amount_cny), 0) from ledger where status = 'paid'"
                ).fetchone()[0]
            )

    def _decide(self, account: str, holder: str, attempt_is_first: bool) -> tuple[str, str]:
        r = self.rules
        if any(account.endswith(s) for s in r.closed_account_suffixes):
            return "returned", r.reasons["closed"]
        if holder in r.name_mismatch_holders:
            return "returned", r.reasons["name"]
        if attempt_is_first and r.return_rate and self._random.random() < r.return_rate:
            return "returned", self._random.choice(list(r.reasons.values()))
        return "paid", ""

    def process_once(self) -> int:
        """Answer every new batch file that has waited ``delay_seconds``; returns files answered."""
        if not self.bank.outbox.exists():
            return 0
        answered = 0
        for path in sorted(self.bank.outbox.glob("*.csv")):
            if time.time() - path.stat().st_mtime < self.rules.delay_seconds:
                continue
            batch_id = path.stem
            result_path = self.bank.inbox / f"{batch_id}.result.csv"
            if result_path.exists():
                continue
            out = io.StringIO()
            w = csv.writer(out)
            w.writerow(RESULT_COLUMNS)
            with self._ledger() as db:
                db.execute("begin immediate")
                for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))):
                    key = row["idempotency_key"]
                    seen = db.execute(
                        "select status, reason, bank_reference from ledger where idempotency_key = ?",
                        (key,),
                    ).fetchone()
                    if seen is None:
                        first = key.endswith("/1")
                        status, reason = self._decide(row["account"], row["account_holder"], first)
                        ref = "SIM" + hashlib.sha256(key.encode()).hexdigest()[:10].upper()
                        db.execute(
                            "insert into ledger values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (
                                key,
                                batch_id,
                                row["account"][-4:],
                                row["account_holder"],
                                int(row["amount_cny"]),
                                status,
                                reason,
                                ref,
                                time.time(),
                            ),
                        )
                        seen = (status, reason, ref)
                    w.writerow([batch_id, row["sequence"], key, seen[0], seen[1], seen[2]])
                db.execute("commit")
            self.bank.inbox.mkdir(parents=True, exist_ok=True)
            atomic_write(result_path, out.getvalue())
            answered += 1
        return answered

    async def run_forever(self, stop: asyncio.Event, interval: float = 0.5) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.process_once)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
