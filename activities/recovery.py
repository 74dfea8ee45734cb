"""The recovery list's side effects (store/recovery.py): a paid grant's cancellation and
its recovery, into the list and the application's audit chain."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from temporalio import activity

from models.recovery import RecoveryRecord
from store.recovery import record_recovery
from store.sealing import Keys


class RecoveryActivities:
    def __init__(self, engine: Engine, keys: Keys) -> None:
        self._engine = engine
        self._keys = keys

    @activity.defn(name="record_recovery")
    def record(self, rec: RecoveryRecord) -> int:
        """The event's seq in the application's audit chain."""
        return record_recovery(self._engine, self._keys, rec.inp, rec.event)
