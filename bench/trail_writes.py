"""How long one trail batch takes to write: ``python -m bench.trail_writes [--url URL]``.

Writes 300 applications × 5 batches of two events each (every other batch with a
notification) through ``RecordActivities`` into a fresh database (SQLite by default)
and prints the wall and CPU time per batch.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from activities.records import RecordActivities
from store.db import make_engine, upgrade
from store.sealing import Keys
from tests.test_persistence import batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="database URL (default: a new SQLite file)")
    parser.add_argument("--applications", type=int, default=300)
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'trail.db'}"
    upgrade(url)
    keys = Keys(b"k" * 32)
    records = RecordActivities(make_engine(url), keys)
    batches = [
        batch(f"bench/{w}", range(2 * b + 1, 2 * b + 3), keys=keys, notify=b % 2 == 0)
        for w in range(args.applications)
        for b in range(args.batches)
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    for b in batches:
        records.record_events(b)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = len(batches)
    print(f"{n} batches: {wall / n * 1000:.2f} ms wall, {cpu / n * 1000:.2f} ms CPU per batch")


if __name__ == "__main__":
    main()
