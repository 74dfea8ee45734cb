"""A case's side effects (PROCESS.md §5): its trail and row into the database, the
messages of its misses into the outbox (store/cases.py)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from temporalio import activity

from models.cases import CaseEventBatch
from store.cases import record_case_events
from store.sealing import Keys


class CaseActivities:
    def __init__(self, engine: Engine, keys: Keys) -> None:
        self._engine = engine
        self._keys = keys

    @activity.defn(name="record_case_events")
    def record(self, batch: CaseEventBatch) -> int:
        """The case's last seq written (a retry writes nothing twice)."""
        return record_case_events(self._engine, batch, self._keys.open)
