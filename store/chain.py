"""The audit log's hash chain (R8): each row carries the hash of the previous row of the
same application, over the row's canonical content."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from store.tables import AuditEntry

GENESIS = "0" * 64


def entry_hash(prev_hash: str, entry: AuditEntry) -> str:
    """The chain link: sha256 over the previous hash and this row's canonical content."""
    return chain_hash(prev_hash, entry.model_dump())


def chain_hash(prev_hash: str, entry: dict[str, Any]) -> str:
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
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def utc(at: datetime) -> datetime:
    # SQLite returns naive datetimes; aidflow stores UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
