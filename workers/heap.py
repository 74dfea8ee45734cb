"""The garbage collector of a process that keeps workflows cached: set once, at start.

CPython's collector walks every object it tracks at each full collection, and makes one
whenever a quarter of its oldest generation is new since the last. A worker's oldest
generation is first of all what it imported (aidflow's worker: 111 MiB, BENCHMARKS.md,
"The worker's memory"), then its cached workflows; each full collection walked the
imports again, with every workflow task of the process waiting behind it (the burst's
tail, the simulator's pauses: issue 20). Two standard settings:

- ``gc.freeze()`` once the process has imported everything and built its worker: what is
  alive then (modules, the programme registry, the worker) moves to a generation no
  collection walks again; it lives as long as the process anyway.
- a larger youngest generation (``YOUNG``, against CPython's 700): a workflow task
  allocates thousands of short-lived objects (payloads, pydantic models, trail events)
  that reference counting frees; collected every 700, the ones still alive mid-task
  were promoted and walked again in the older generations.

The commands call it (``aidflow worker``, ``up``, ``simulate``), not the functions they
run: a process that builds workers for other ends (the test suite) keeps its collector.
"""

from __future__ import annotations

import gc

YOUNG = 20_000


def settle() -> None:
    """Freeze what the start left alive and widen the youngest generation. Idempotent:
    a second call freezes what was allocated since (a process that builds two workers)."""
    gc.collect()  # what the imports left as garbage is freed, not frozen
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, oldest)
