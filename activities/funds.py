"""Funds requests, payout batches and payments (R7). Every activity here is idempotent.

Exactly once: each payment attempt has an idempotency key (application, season,
attempt) with a unique constraint; ``prepare_payments`` checks before it
inserts and never includes an application that is already paid; the bank file
carries the keys, and the bank pays a key once. A worker that dies after
sending a batch and before recording it re-sends the same file with the same
keys on retry: nothing is paid twice.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from integrations.bank import DISBURSEMENT_COLUMNS, FileExchangeBank, inside
from models.calendar import WorkingCalendar, end_of_day
from models.payout import (
    BankResultRow,
    FundsRequestOf,
    FundsRequestSummary,
    PaymentSent,
    PayoutBatchInput,
    PreparedBatch,
)
from models.season import season_label
from store import cells
from store.audit import Sealing, row_problem
from store.cells import WORKBOOK_OPTIONS
from store.db import one_writer
from store.sealing import Keys, row_mac
from store.tables import (
    ApplicationRow,
    FundsRequest,
    FundsRequestItem,
    Payment,
    PayoutBatch,
    Place,
)


class FundsRequestInput(BaseModel):
    request_id: str
    programme: str
    season: int
    round: str = ""
    county_code: str


class FundsArrivalRecord(BaseModel):
    funds_request_id: str
    amount_cny: int
    reference: str
    arrived_at: datetime


class PayByRequest(BaseModel):
    arrived_at: datetime
    limit_calendar_days: int
    payout_due_at: datetime


class BankWait(BaseModel):
    batch_id: str
    poll_seconds: float = 2.0


class PaymentResults(BaseModel):
    batch_id: str
    rows: list[BankResultRow]


ROSTER_HEADER = (
    "序号 No.",
    "姓名 Name",
    "身份证号 ID (masked)",
    "村 Village",
    "乡镇 Township",
    "学校 University",
    "金额(元) Amount CNY",
    "开户行 Bank",
    "一卡通账号 Account (masked)",
)


def file_inside(folder: Path, name: str) -> Path:
    """``folder / name`` for a file name built from an id, refused unless it stays in
    ``folder`` (``integrations.bank.inside``). Refused for good: another try of the same
    id climbs out the same way, so the activity fails at once instead of retrying."""
    try:
        return inside(folder, name)
    except ValueError as e:
        raise ApplicationError(str(e), type="UnsafeFileName", non_retryable=True) from None


def payment_key(programme: str, season: str, id_hash: str, attempt: int) -> str:
    """``season`` is the season key (2027, 2027-spring): a student is paid once a round."""
    return f"{programme}/{season}/{id_hash}/{attempt}"


# Stages of an application that ended without being owed anything.
ENDED_UNPAID = frozenset({"withdrawn", "cancelled", "rejected"})


class FundsActivities:
    def __init__(
        self, engine: Engine, keys: Keys, calendar: WorkingCalendar, files_dir: Path, bank_dir: Path
    ) -> None:
        self._engine = engine
        self._keys = keys
        self._calendar = calendar
        self._files = files_dir
        self._bank = FileExchangeBank(bank_dir)

    # ------------------------------------------------------------ funds request

    @activity.defn(name="create_funds_request")
    def create_funds_request(self, req: FundsRequestInput) -> FundsRequestSummary:
        """The county-approved applications not yet on a request, with the roster (花名册)."""
        # Checked before anything is written: the request id names the roster's file.
        roster = file_inside(self._files / "rosters", f"{req.request_id.replace('/', '_')}.xlsx")
        with one_writer(self._engine), Session(self._engine) as s, s.begin():
            existing = s.get(FundsRequest, req.request_id)
            if existing is not None:
                items = s.exec(
                    select(FundsRequestItem).where(FundsRequestItem.request_id == req.request_id)
                ).all()
                ids = sorted(i.workflow_id for i in items)
                amounts = {i.workflow_id: i.amount_cny for i in items}
                return FundsRequestSummary(
                    request_id=existing.id,
                    county_code=existing.county_code,
                    season=existing.season,
                    count=existing.count,
                    total_cny=existing.total_cny,
                    roster_path=existing.roster_path,
                    workflow_ids=ids,
                    amounts=amounts,
                    created=False,
                )
            on_request = select(FundsRequestItem.workflow_id)
            rows = s.exec(
                select(ApplicationRow)
                .where(
                    ApplicationRow.programme == req.programme,
                    ApplicationRow.season == req.season,
                    ApplicationRow.round == req.round,
                    ApplicationRow.county_code == req.county_code,
                    ApplicationRow.stage == "awaiting_funds",
                    col(ApplicationRow.workflow_id).not_in(on_request),
                )
                .order_by(
                    col(ApplicationRow.township_code),
                    col(ApplicationRow.village_code),
                    col(ApplicationRow.workflow_id),
                )
            ).all()
            # The roster asks finance for money: never on the word of an edited row.
            self._refuse_edited(rows, Sealing.load(s))
            places = {p.code: p.name for p in s.exec(select(Place)).all()}
            self._write_roster(roster, rows, places)
            total = sum(r.amount_cny for r in rows)
            s.add(
                FundsRequest(
                    id=req.request_id,
                    programme=req.programme,
                    season=req.season,
                    county_code=req.county_code,
                    created_at=datetime.now(UTC),
                    count=len(rows),
                    total_cny=total,
                    roster_path=str(roster),
                )
            )
            s.flush()
            ids = [r.workflow_id for r in rows]
            amounts = {r.workflow_id: r.amount_cny for r in rows}
            for r in rows:
                s.add(
                    FundsRequestItem(
                        request_id=req.request_id,
                        workflow_id=r.workflow_id,
                        amount_cny=r.amount_cny,
                    )
                )
        return FundsRequestSummary(
            request_id=req.request_id,
            county_code=req.county_code,
            season=req.season,
            count=len(ids),
            total_cny=total,
            roster_path=str(roster),
            workflow_ids=ids,
            amounts=amounts,
        )

    @staticmethod
    def _write_roster(path: Path, rows: Sequence[ApplicationRow], places: dict[str, str]) -> None:
        import xlsxwriter

        path.parent.mkdir(parents=True, exist_ok=True)
        wb = xlsxwriter.Workbook(str(path), WORKBOOK_OPTIONS)
        ws = wb.add_worksheet("花名册")
        bold = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1})
        money = wb.add_format({"num_format": "#,##0"})
        ws.write_row(0, 0, ROSTER_HEADER, bold)
        for i, r in enumerate(rows, start=1):
            ws.write_row(
                i,
                0,
                cells.row(
                    [
                        i,
                        r.applicant_name,
                        r.national_id_masked,
                        places.get(r.village_code, r.village_code),
                        places.get(r.township_code, r.township_code),
                        r.university,
                    ]
                ),
            )
            ws.write_number(i, 6, r.amount_cny, money)
            ws.write_row(i, 7, cells.row([r.bank_name, r.account_masked]))
        ws.write(len(rows) + 1, 5, "合计 Total", bold)
        ws.write_number(len(rows) + 1, 6, sum(r.amount_cny for r in rows), money)
        ws.set_column(0, 0, 8)
        ws.set_column(1, 8, 20)
        ws.freeze_panes(1, 0)
        wb.close()

    @activity.defn(name="record_funds_arrival")
    def record_funds_arrival(self, arrival: FundsArrivalRecord) -> None:
        with one_writer(self._engine), Session(self._engine) as s, s.begin():
            request = s.get(FundsRequest, arrival.funds_request_id)
            if request is None:
                raise ValueError(f"no funds request {arrival.funds_request_id}")
            if request.arrived_at is None:
                request.arrived_at = arrival.arrived_at
                request.arrived_amount_cny = arrival.amount_cny
                request.arrived_reference = arrival.reference
                s.add(request)

    @activity.defn(name="funds_request_of")
    def funds_request_of(self, workflow_id: str) -> FundsRequestOf:
        """The funds request an application is on, if any: its roster, as the request
        was made (asked before a withdrawal or a cancellation in its funds step)."""
        with Session(self._engine) as s:
            found = s.exec(
                select(FundsRequestItem.request_id).where(
                    FundsRequestItem.workflow_id == workflow_id
                )
            ).first()
        return FundsRequestOf(request_id=found)

    @activity.defn(name="compute_pay_by")
    def compute_pay_by(self, req: PayByRequest) -> datetime:
        """Within N calendar days of the funds' arrival, and never after the payout date."""
        last_day = self._calendar.day_of(req.arrived_at) + timedelta(days=req.limit_calendar_days)
        return min(end_of_day(self._calendar, last_day), req.payout_due_at)

    # ------------------------------------------------------------------ batches

    @activity.defn(name="prepare_payments")
    def prepare_payments(self, batch: PayoutBatchInput) -> PreparedBatch:
        # Checked before anything is written: the batch id names the disbursement file.
        path = file_inside(self._files / "batches", f"{batch.batch_id}.csv")
        included: list[PaymentSent] = []
        skipped: list[str] = []
        lines: list[list[object]] = []
        now = datetime.now(UTC)
        with one_writer(self._engine), Session(self._engine) as s, s.begin():
            if s.get(PayoutBatch, batch.batch_id) is None:
                s.add(
                    PayoutBatch(
                        id=batch.batch_id,
                        programme=batch.programme,
                        season=batch.season,
                        county_code=batch.county_code,
                        created_at=now,
                    )
                )
                s.flush()
            sealing = Sealing.load(s)
            for sequence, item in enumerate(batch.items, start=1):
                row = s.get(ApplicationRow, item.workflow_id)
                if row is None:
                    raise ValueError(f"no application row for {item.workflow_id}")
                key = payment_key(
                    batch.programme,
                    season_label(batch.season, batch.round),
                    row.national_id_hash,
                    item.attempt,
                )
                # Every row this payment is decided from: the account, amount and stage,
                # the earlier attempts (is it paid already?) and this attempt's own row.
                payments = s.exec(
                    select(Payment).where(
                        or_(
                            col(Payment.workflow_id) == item.workflow_id,
                            col(Payment.idempotency_key) == key,
                        )
                    )
                ).all()
                self._refuse_edited([row, *payments], sealing)
                already_paid = next(
                    (
                        p
                        for p in payments
                        if p.workflow_id == item.workflow_id and p.status == "paid"
                    ),
                    None,
                )
                payment = next((p for p in payments if p.idempotency_key == key), None)
                if already_paid is not None and (payment is None or payment.id != already_paid.id):
                    skipped.append(item.workflow_id)  # never paid twice
                    continue
                if payment is None and row.stage in ENDED_UNPAID:
                    # Withdrawn or cancelled after it joined the funds request (a message
                    # still on its way when the roster was made): never paid.
                    skipped.append(item.workflow_id)
                    continue
                if payment is None:
                    if item.amount_cny != row.amount_cny:
                        raise ValueError(
                            f"{item.workflow_id}: amount {item.amount_cny} is not the approved {row.amount_cny}"
                        )
                    payment = Payment(
                        idempotency_key=key,
                        workflow_id=item.workflow_id,
                        attempt=item.attempt,
                        batch_id=batch.batch_id,
                        sequence=sequence,
                        amount_cny=row.amount_cny,
                        account_masked=row.account_masked,
                        account_holder=row.account_holder,
                        created_at=now,
                    )
                    payment.row_mac = row_mac(self._keys.rows, "payments", payment)
                    s.add(payment)
                included.append(
                    PaymentSent(
                        workflow_id=item.workflow_id,
                        batch_id=payment.batch_id,
                        idempotency_key=key,
                        attempt=item.attempt,
                        account_masked=payment.account_masked,
                    )
                )
                lines.append(
                    [
                        payment.batch_id,
                        payment.sequence,
                        self._keys.open(row.account_sealed),
                        payment.account_holder,
                        payment.amount_cny,
                        key,
                    ]
                )
            total = sum(int(x[4]) for x in lines)  # type: ignore[call-overload]
            s.execute(
                update(PayoutBatch)
                .where(col(PayoutBatch.id) == batch.batch_id)
                .values(count=len(lines), total_cny=total)
            )
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(DISBURSEMENT_COLUMNS)
        w.writerows(lines)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(out.getvalue(), encoding="utf-8")
        path.chmod(0o600)  # it holds full account numbers
        return PreparedBatch(
            batch_id=batch.batch_id,
            file_path=str(path),
            included=included,
            skipped=skipped,
            total_cny=total,
        )

    def _refuse_edited(self, rows: Sequence[ApplicationRow | Payment], sealing: Sealing) -> None:
        """A row edited outside aidflow is never paid from (nor asked funds for): the
        activity fails for good, naming the row (another try would read the same row),
        and nothing is written."""
        for row in rows:
            problem = row_problem(self._keys.rows, row, sealing)
            if problem is not None:
                activity.logger.error("payout refused: %s", problem)
                raise ApplicationError(
                    f"{problem}: refused, nothing paid; `aidflow audit verify` names every such row",
                    type="RowEdited",
                    non_retryable=True,
                )

    @activity.defn(name="send_batch")
    def send_batch(self, prepared: PreparedBatch) -> str:
        text = Path(prepared.file_path).read_text(encoding="utf-8")
        sent = self._bank.send(prepared.batch_id, text)
        with one_writer(self._engine), Session(self._engine) as s, s.begin():
            s.execute(
                update(PayoutBatch)
                .where(
                    col(PayoutBatch.id) == prepared.batch_id, col(PayoutBatch.status) == "prepared"
                )
                .values(status="sent", file_path=str(sent))
            )
        return str(sent)

    @activity.defn(name="await_bank_result")
    async def await_bank_result(self, wait: BankWait) -> list[BankResultRow]:
        """Polls the bank's inbox, heartbeating, until the result file is there: soon
        after sending at first (a quick bank answers in under a second), then every
        ``poll_seconds``."""
        pause = 0.05
        while True:
            rows = await asyncio.to_thread(self._bank.result, wait.batch_id)
            if rows is not None:
                return rows
            activity.heartbeat()
            await asyncio.sleep(pause)
            pause = min(pause * 2, wait.poll_seconds)

    @activity.defn(name="record_payment_results")
    def record_payment_results(self, results: PaymentResults) -> None:
        now = datetime.now(UTC)
        with one_writer(self._engine), Session(self._engine) as s, s.begin():
            sealing = Sealing.load(s)
            for r in results.rows:
                payment = s.exec(
                    select(Payment)
                    .where(Payment.idempotency_key == r.idempotency_key, Payment.status == "sent")
                    .with_for_update()
                ).first()
                if payment is None:
                    continue  # recorded by an earlier attempt
                edited = row_problem(self._keys.rows, payment, sealing)
                payment.status = r.status
                payment.reason = r.reason or None
                payment.bank_reference = r.bank_reference or None
                payment.settled_at = now
                if edited is None:
                    # Sealed with the bank's answer (a row from before row MACs too).
                    payment.row_mac = row_mac(self._keys.rows, "payments", payment)
                else:
                    # The bank's answer is what happened, so it is recorded; an edited
                    # row is not sealed again, and verify keeps naming it.
                    activity.logger.error("bank result recorded on %s", edited)
                s.add(payment)
            s.execute(
                update(PayoutBatch)
                .where(col(PayoutBatch.id) == results.batch_id)
                .values(status="settled")
            )
