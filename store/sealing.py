"""Sealed values: identity and account numbers travel through workflow histories encrypted.

The Web UI stays readable (everything else is plain JSON), while the numbers
themselves are only opened by the activities that need them (payment files).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from models.authority import derive
from models.privacy import keyed_hash


class Keys:
    """Keys derived from the deployment secret, one per purpose."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the deployment secret must be at least 16 bytes")
        self.id_hash = hmac.new(secret, b"aidflow/id-hash/v1", hashlib.sha256).digest()
        fernet_key = hmac.new(secret, b"aidflow/seal/v1", hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(fernet_key))
        # R10: credentials' keys derive from this one (gateway, workers); internal
        # messages between workflows are sealed with the other (workers only).
        self.authority = derive(secret, "authority")
        self.internal = derive(secret, "internal")
        # The audit chain's key (store/chain.py): the database never holds it.
        self.audit = derive(secret, "audit")
        # The student loan's receipt verification codes (store/loans.py).
        self.loans = derive(secret, "loan-receipts")
        # The read model's and the payments' row MACs (row_mac): also never in the database.
        self.rows = row_key(self.audit)

    def hash_id(self, national_id: str) -> str:
        return keyed_hash(self.id_hash, national_id)

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode() if value else ""

    def open(self, sealed: str) -> str:
        if not sealed:
            return ""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError("a sealed value does not open with this deployment's key") from None


# The fields of a row that say who is paid what, to which account, at which step: a
# database writer who changes one of them breaks the row's MAC (issue 16). Timestamps
# that only say when aidflow wrote the row are in too: the sealing watermark
# (store/audit.py) is checked against them.
APPLICATION_SEALED = (
    "workflow_id",
    "programme",
    "season",
    "round",
    "county_code",
    "stage",
    "amount_cny",
    "bank_name",
    "account_masked",
    "account_sealed",
    "account_holder",
    "national_id_hash",
    "last_seq",
    "updated_at",
)
PAYMENT_SEALED = (
    "idempotency_key",
    "workflow_id",
    "attempt",
    "batch_id",
    "sequence",
    "amount_cny",
    "account_masked",
    "account_holder",
    "status",
    "reason",
    "bank_reference",
    "settled_at",
)
SEALED_FIELDS = {"applications": APPLICATION_SEALED, "payments": PAYMENT_SEALED}


def row_key(audit_key: bytes) -> bytes:
    """The row-MAC key, derived from the audit key: whoever can verify the audit log
    (``store.audit.verify`` is handed the audit key alone) can verify the rows too."""
    return hmac.new(audit_key, b"aidflow/row-mac/v1", hashlib.sha256).digest()


def row_mac(key: bytes, table: str, row: object) -> str:
    """HMAC-SHA256 over the sealed fields of one row of ``table`` (a dict of column
    values or a table model). The table's name is in it: a payment's MAC never
    verifies an application row."""
    fields = SEALED_FIELDS[table]
    values = (
        {f: row.get(f) for f in fields}
        if isinstance(row, Mapping)
        else {f: getattr(row, f) for f in fields}
    )
    body = json.dumps(
        {"table": table, **{f: _canonical(v) for f, v in values.items()}},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        # SQLite returns naive datetimes; aidflow stores UTC.
        at = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return at.isoformat()
    return value
