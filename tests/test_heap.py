"""The worker's garbage collector settings (workers/heap.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from workers import heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_freezes_what_is_alive_and_widens_the_youngest_generation(
    restored_gc: None,
) -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    kept: list[list[int]] = [[] for _ in range(1000)]  # alive at the start: frozen with the rest
    heap.settle()
    assert gc.get_freeze_count() >= len(kept)
    young, middle, oldest = gc.get_threshold()
    assert young == heap.YOUNG and (middle, oldest) == before[1:]
    # Nothing the process allocates after it is frozen: the collector still sees it.
    later: list[list[int]] = [[] for _ in range(100)]
    assert all(gc.is_tracked(x) for x in later)
    frozen = gc.get_freeze_count()
    heap.settle()  # a second call freezes what was allocated since
    assert gc.get_freeze_count() >= frozen + len(later)
