"""The simulator's process pauses: its garbage collections, timed, and the SDK's
deadlock limit raised to outlast them.

At 10,000 applications every workflow stays cached (about 270 KiB each): a heap of
gigabytes whose full collections stopped the process for seconds, twice the SDK's
2-second limit on a workflow activation. The SDK then failed the activation as a
deadlock, and one such task's retry stayed pending for 11 minutes and stalled the season
(issue 20). The simulator runs the same workflow code the tests run under the sandbox's
2-second limit; here the limit only has to tell a pause from a hang.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from temporalio.worker import Worker

# Long enough for a full collection of the largest heap measured (3.2 GiB), short
# enough that a workflow that really hangs is still failed, and said, within a minute.
ACTIVATION_LIMIT_SECONDS = 30.0


def tolerate_pauses(worker: Worker, limit: float = ACTIVATION_LIMIT_SECONDS) -> None:
    """Raise ``worker``'s deadlock limit to ``limit`` seconds. The SDK (1.35) has no
    option for it but ``debug_mode``, which would also run every activation inline on
    the event loop; so its attribute is set, and an SDK that renamed it fails here."""
    inner = getattr(worker, "_workflow_worker", None)
    if inner is None or not isinstance(
        getattr(inner, "_deadlock_timeout_seconds", None), int | float
    ):
        raise RuntimeError("this temporalio has no _deadlock_timeout_seconds: see pauses.py")
    inner._deadlock_timeout_seconds = limit


@dataclass
class Collections:
    """The process's garbage collections while watched: how many of the oldest
    generation, and the time all collections took, in all and the longest."""

    full: int = 0
    seconds: float = 0.0
    longest_seconds: float = 0.0

    def as_json(self) -> dict[str, float]:
        return {
            "full_collections": self.full,
            "seconds": round(self.seconds, 2),
            "longest_seconds": round(self.longest_seconds, 3),
        }


@contextmanager
def collections_timed() -> Iterator[Collections]:
    seen = Collections()
    began = 0.0

    def timed(phase: str, info: dict[str, Any]) -> None:
        nonlocal began
        if phase == "start":
            began = time.perf_counter()
            return
        took = time.perf_counter() - began
        seen.seconds += took
        seen.longest_seconds = max(seen.longest_seconds, took)
        if info.get("generation") == 2:
            seen.full += 1

    gc.callbacks.append(timed)
    try:
        yield seen
    finally:
        gc.callbacks.remove(timed)
