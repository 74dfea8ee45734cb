"""The revoked credentials as the workers know them (R10: a revoked credential is refused
at once, at the gateway and at the workers alike).

The gateway reads the credentials table on every request. The workers' check of a
statement runs inside workflow code, which reads no database: this list, refreshed from
the table every few seconds beside the worker, is what it consults.

- An **update** is checked in its validator, which a replay never runs: refused from the
  moment the list knows the revocation.
- A **request signal** is handled again on every replay, so its check must give the same
  answer each time: a signal is refused when its credential was revoked more than
  :data:`models.authority.REVOKED_SIGNAL_GRACE` before the workflow task that handles it. A revocation's time
  never changes, and the list is never that far behind the table, so the answer cannot
  differ between the first run and a replay.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.engine import Engine

from store import credentials

log = structlog.get_logger("aidflow.revocations")

# Far shorter than REVOKED_SIGNAL_GRACE: the list always knows a revocation that old.
REFRESH = timedelta(seconds=5)


class Revocations:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._revoked: dict[str, datetime] = {}
        self.refreshed_at: datetime | None = None

    def refresh(self) -> None:
        self._revoked = credentials.revocations(self._engine)
        self.refreshed_at = datetime.now(UTC)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until ``stop``; a failed refresh is logged and tried again."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as e:  # the database away for a moment: keep the last list
                log.warning("revocations.refresh_failed", error=str(e)[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REFRESH.total_seconds())

    def revoked_by(self, credential: str, at: datetime, *, grace: timedelta) -> datetime | None:
        """When ``credential`` was revoked, if that was at least ``grace`` before ``at``."""
        when = self._revoked.get(credential)
        return when if when is not None and when + grace <= at else None
