"""What a cached application costs a worker in memory: ``python -m bench.cached_memory [N]``.

Starts the simulator's private server and one worker in the shared sandbox (as
production runs it), submits one application to warm it, then N more (default 600),
waits until they wait for their village review, and prints the worker process's RSS
before and after, per application. With ``--trace``, also the Python objects by file
(``tracemalloc``: slower, and it inflates the RSS it measures).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import tests.conftest as stack_support
from store.calendars import build_calendar
from store.sealing import Keys
from tests.support import IN_WINDOW_2027, VILLAGE, form
from workers.simulate.stack import start_time_skipping_server


def _rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


async def _waiting(api: Any, wf: str) -> None:
    for _ in range(600):
        try:
            if (await api.status(wf)).waiting_for == "village_committee":
                return
        except Exception:  # a busy worker: the status query times out; ask again
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{wf} never reached the village review")


async def measure(n: int, trace: bool) -> None:
    env = await start_time_skipping_server()
    keys = Keys(b"aidflow-bench-secret-0123456789abcdef")
    registry = stack_support.Registry(keys)
    for serial in range(1, n + 2):
        registry.add(serial, VILLAGE)
    try:
        async with stack_support.make_stack(
            env,
            keys,
            build_calendar("state-council"),
            registry,
            Path(tempfile.mkdtemp()),
            sandbox="shared",  # production's, not the tests' strict one
        ) as st:
            await _waiting(st.api, await st.api.submit(form(1), now=IN_WINDOW_2027))
            gc.collect()
            before = _rss_mib()
            if trace:
                tracemalloc.start(1)
                first = tracemalloc.take_snapshot()
            ids = [await st.api.submit(form(i), now=IN_WINDOW_2027) for i in range(2, n + 2)]
            for wf in ids:
                await _waiting(st.api, wf)
            await asyncio.sleep(3)
            gc.collect()
            after = _rss_mib()
            print(
                f"RSS {before:.1f} -> {after:.1f} MiB: "
                f"{(after - before) * 1024 / n:.0f} KiB an application ({n} waiting)"
            )
            if trace:
                stats = tracemalloc.take_snapshot().compare_to(first, "filename")
                total = sum(x.size_diff for x in stats)
                print(f"Python objects: {total / 1024 / n:.0f} KiB an application; by file:")
                for x in stats[:15]:
                    print(f"  {x.size_diff / 1024 / n:7.1f} KiB  {x.traceback[0].filename}")
    finally:
        await env.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("applications", type=int, nargs="?", default=600)
    parser.add_argument("--trace", action="store_true", help="Python objects by file")
    args = parser.parse_args()
    asyncio.run(measure(args.applications, args.trace))


if __name__ == "__main__":
    main()
