"""The notification outbox, written in the transaction of the change it reports: one
message a key, once (a retried activity adds nothing)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from models.privacy import mask_sensitive_text
from store.chain import utc
from store.tables import OutboxMessage

_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]


def put_once(
    conn: Connection,
    *,
    key: str,
    workflow_id: str | None,
    recipient: str,
    subject: str,
    body: str,
    at: datetime,
) -> bool:
    """Queue the message unless its key is queued already; True if queued now
    (``workflow_id``: the workflow it is about, if one; an office's reminder has none)."""
    if conn.execute(select(_OUTBOX.c.id).where(_OUTBOX.c.dedupe_key == key)).first():
        return False
    conn.execute(
        insert(_OUTBOX).values(
            dedupe_key=key,
            workflow_id=workflow_id,
            channel="default",
            recipient=recipient,
            subject=mask_sensitive_text(subject),
            body=mask_sensitive_text(body),
            created_at=utc(at),
            next_attempt_at=utc(at),
        )
    )
    return True
