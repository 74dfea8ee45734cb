"""Rain and Dew's cross-check against the imported registers (store/cross_check.py)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from temporalio import activity

from models.cross_check import CrossCheckAnswer, CrossCheckRequest
from store.cross_check import cross_check


class CrossCheckActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="cross_check_registers")
    def check(self, req: CrossCheckRequest) -> CrossCheckAnswer:
        return cross_check(self._engine, req)
