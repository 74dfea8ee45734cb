"""The audit log's hash chain (R8): each row carries the hash of the previous row of the
same application, over the row's canonical content.

The hash is keyed (HMAC-SHA256 with a key derived from the deployment secret, which the
database does not hold): whoever can write the database cannot recompute a chain after
editing it, nor append a row that verifies. The head of each chain (seq and hash) is
also what the recording activity answers, so each application's history holds it: a
witness the database cannot rewrite (``store/audit.py``, ``workers/witness.py``)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from models.application import Actor
from store.tables import AuditEntry

GENESIS = "0" * 64


def entry_hash(key: bytes, prev_hash: str, entry: AuditEntry) -> str:
    """The chain link: HMAC over the previous hash and this row's canonical content."""
    return chain_hash(key, prev_hash, entry.model_dump())


def chain_hash(key: bytes, prev_hash: str, entry: dict[str, Any]) -> str:
    body = json.dumps(
        {
            "workflow_id": entry["workflow_id"],
            "seq": entry["seq"],
            "at": utc(entry["at"]).isoformat(),
            "kind": entry["kind"],
            "stage": entry["stage"],
            "actor_id": entry["actor_id"],
            "actor_role": entry["actor_role"],
            "detail": entry["detail"],
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hmac.new(key, (prev_hash + body).encode(), hashlib.sha256).hexdigest()


def utc(at: datetime) -> datetime:
    # SQLite returns naive datetimes; aidflow stores UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def utc_or_none(at: datetime | None) -> datetime | None:
    """:func:`utc`, for a column that may be empty. Instants are written in UTC: SQLite
    keeps an instant's wall time and drops its offset (a notice's end at 00:00 +08:00
    came back as 00:00 UTC, eight hours late)."""
    return None if at is None else utc(at)


def audit_entry(
    workflow_id: str,
    seq: int,
    at: datetime,
    kind: str,
    stage: str,
    actor: Actor,
    summary: str,
    detail: dict[str, Any],
) -> dict[str, Any]:
    """An audit row's content (its hash and link are added by the writer): the summary,
    the actor's name and, R10, the credential that proved the request are in the
    chained detail."""
    return {
        "workflow_id": workflow_id,
        "seq": seq,
        "at": utc(at),
        "kind": kind,
        "stage": stage,
        "actor_id": actor.id,
        "actor_role": actor.role.value,
        "detail": {
            "summary": summary,
            "actor_name": actor.name,
            **({"credential": actor.credential} if actor.credential else {}),
            **detail,
        },
    }
