"""Receipts of acceptance (受理证明) of the origin-place student loan, and their
verification codes (校验码), PROCESS.md §4.4.

The code is what the student takes to the university: unguessable (80 bits of an HMAC
under the deployment's secret, so the same application always has the same code and a
retry issues nothing new) and checkable (``verify_code``) by a university, which learns
only what it must: that the county accepted the loan of this student, at this university,
for this year and amount; never an identity number, a co-borrower or an account. Only
the code's digest is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from store.chain import utc
from store.db import one_writer
from store.outbox import put_once
from store.tables import LoanContract, LoanQueueTicket, LoanReceipt

_RECEIPTS = LoanReceipt.__table__  # type: ignore[attr-defined]
_CONTRACTS = LoanContract.__table__  # type: ignore[attr-defined]
_QUEUE = LoanQueueTicket.__table__  # type: ignore[attr-defined]


def receipt_code(key: bytes, workflow_id: str) -> str:
    """The application's verification code: ``ABCD-EFGH-JKLM-NPQR`` (base32, 80 bits)."""
    mac = hmac.new(key, b"loan-receipt:" + workflow_id.encode(), hashlib.sha256).digest()
    raw = base64.b32encode(mac[:10]).decode()
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def normalised(code: str) -> str:
    """As typed by a person: case, spaces and dashes do not matter."""
    return "".join(c for c in code.upper() if c.isalnum())


def code_digest(code: str) -> str:
    return hashlib.sha256(normalised(code).encode()).hexdigest()


def masked_name(name: str) -> str:
    """张三丰 → 张*丰, 张三 → 张*: enough for a university to match its student."""
    if len(name) <= 2:
        return name[:1] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


@dataclass(frozen=True)
class ReceiptView:
    """What a university learns from a code."""

    student: str  # masked name
    university: str
    university_code: str
    year: int
    amount_cny: int
    accepted_on: str  # YYYY-MM-DD, Shanghai


def issue_receipt(
    engine: Engine,
    key: bytes,
    *,
    workflow_id: str,
    student_name: str,
    university: str,
    university_code: str,
    year: int,
    amount_cny: int,
    accepted_on: str,
    at: datetime,
) -> str:
    """Record the receipt (once) and return its code."""
    code = receipt_code(key, workflow_id)
    digest = code_digest(code)
    with one_writer(engine), engine.begin() as conn:
        known = conn.execute(
            select(_RECEIPTS.c.code_digest).where(_RECEIPTS.c.workflow_id == workflow_id)
        ).first()
        if known is None:
            conn.execute(
                insert(_RECEIPTS).values(
                    code_digest=digest,
                    workflow_id=workflow_id,
                    student_masked=masked_name(student_name),
                    university=university,
                    university_code=university_code,
                    year=year,
                    amount_cny=amount_cny,
                    accepted_on=accepted_on,
                    issued_at=utc(at),
                )
            )
    return code


def verify_code(engine: Engine, code: str) -> ReceiptView | None:
    """The receipt a code stands for; None for a code that is not one (a typo, a guess)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(_RECEIPTS).where(_RECEIPTS.c.code_digest == code_digest(code))
        ).first()
    if row is None:
        return None
    return ReceiptView(
        student=row.student_masked,
        university=row.university,
        university_code=row.university_code,
        year=row.year,
        amount_cny=row.amount_cny,
        accepted_on=row.accepted_on,
    )


# ------------------------------------------------------------------ contracts


def record_contract(
    engine: Engine,
    *,
    contract_no: str,
    national_id_hash: str,
    workflow_id: str,
    county_code: str,
    year: int,
    at: datetime,
) -> None:
    """A first contract, once (a retried activity records nothing new)."""
    with one_writer(engine), engine.begin() as conn:
        known = conn.execute(
            select(_CONTRACTS.c.contract_no).where(_CONTRACTS.c.contract_no == contract_no)
        ).first()
        if known is None:
            conn.execute(
                insert(_CONTRACTS).values(
                    contract_no=contract_no,
                    national_id_hash=national_id_hash,
                    workflow_id=workflow_id,
                    county_code=county_code,
                    first_year=year,
                    created_at=utc(at),
                )
            )


def contract_holder(engine: Engine, contract_no: str) -> str | None:
    """The keyed hash of the student whose first contract this is (None: no such one)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(_CONTRACTS.c.national_id_hash).where(_CONTRACTS.c.contract_no == contract_no)
        ).first()
    return None if row is None else str(row.national_id_hash)


# -------------------------------------------------------- the student's message


def send_receipt_message(
    engine: Engine, *, workflow_id: str, recipient: str, subject: str, body: str, at: datetime
) -> None:
    """The receipt's code to the student, through the outbox, once: the code never
    enters a workflow's history, so the activity that issues it sends it."""
    with one_writer(engine), engine.begin() as conn:
        put_once(
            conn,
            key=f"{workflow_id}:loan-receipt",
            workflow_id=workflow_id,
            recipient=recipient,
            subject=subject,
            body=body,
            at=at,
        )


# ---------------------------------------------------------------- the queue


@dataclass(frozen=True)
class QueueEntry:
    ticket: int
    student: str  # masked name
    registered_poor: bool
    arrived_at: datetime


def check_in(
    engine: Engine,
    *,
    county_code: str,
    national_id_hash: str,
    student_name: str,
    registered_poor: bool,
    at: datetime,
) -> int:
    """A family arrives at the centre: its ticket (the same one if it is already waiting)."""
    with one_writer(engine), engine.begin() as conn:
        waiting = conn.execute(
            select(_QUEUE.c.id).where(
                _QUEUE.c.county_code == county_code,
                _QUEUE.c.national_id_hash == national_id_hash,
                _QUEUE.c.served_at.is_(None),
            )
        ).first()
        if waiting is not None:
            return int(waiting.id)
        done = conn.execute(
            insert(_QUEUE).values(
                county_code=county_code,
                national_id_hash=national_id_hash,
                student_masked=masked_name(student_name),
                registered_poor=registered_poor,
                arrived_at=utc(at),
            )
        )
        key = done.inserted_primary_key
        assert key is not None
        return int(key[0])


def queue(engine: Engine, county_code: str) -> list[QueueEntry]:
    """Who waits, in the order they are served: registered-poor students first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(_QUEUE)
            .where(_QUEUE.c.county_code == county_code, _QUEUE.c.served_at.is_(None))
            .order_by(_QUEUE.c.registered_poor.desc(), _QUEUE.c.arrived_at, _QUEUE.c.id)
        ).all()
    return [
        QueueEntry(
            ticket=r.id,
            student=r.student_masked,
            registered_poor=bool(r.registered_poor),
            arrived_at=utc(r.arrived_at),
        )
        for r in rows
    ]


def served(
    engine: Engine, *, county_code: str, national_id_hash: str, workflow_id: str, at: datetime
) -> None:
    """The student's application was taken: off the queue."""
    with one_writer(engine), engine.begin() as conn:
        conn.execute(
            update(_QUEUE)
            .where(
                _QUEUE.c.county_code == county_code,
                _QUEUE.c.national_id_hash == national_id_hash,
                _QUEUE.c.served_at.is_(None),
            )
            .values(served_at=utc(at), workflow_id=workflow_id)
        )


class Loans:
    """The loan's tables as the client and the gateway use them (one engine)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def contract_holder(self, contract_no: str) -> str | None:
        return contract_holder(self.engine, contract_no)

    def served(
        self, county_code: str, national_id_hash: str, workflow_id: str, at: datetime
    ) -> None:
        served(
            self.engine,
            county_code=county_code,
            national_id_hash=national_id_hash,
            workflow_id=workflow_id,
            at=at,
        )

    def verify(self, code: str) -> ReceiptView | None:
        return verify_code(self.engine, code)

    def application_of(self, code: str) -> str | None:
        """The application a receipt's code belongs to (None: not a code)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_RECEIPTS.c.workflow_id).where(_RECEIPTS.c.code_digest == code_digest(code))
            ).first()
        return None if row is None else str(row.workflow_id)
