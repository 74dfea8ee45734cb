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

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from store.chain import utc
from store.db import one_writer
from store.tables import LoanReceipt

_RECEIPTS = LoanReceipt.__table__  # type: ignore[attr-defined]


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
