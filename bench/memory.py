"""What a cached application costs a worker in memory:

    .venv/bin/python -m bench.memory [--applications 300] [--sandbox shared|strict] [--trace]

A dev server of its own and a worker in this process (``running_worker``, as ``aidflow
worker`` runs it, with ``--sandbox``); 20 county-subsidy applications to warm it up,
then ``--applications`` more, each submitted, approved by its village and left waiting
in its village notice (4 villages, so 4 notices). Printed: the process's RSS growth per
application (its share of the notices included); with ``--trace``, what Python itself
allocated per application, by file (tracemalloc: slower, and its own bookkeeping swells
the RSS, so the two figures come from two runs).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.burst import burst_county, village_approval
from bench.run import dev_server, pipeline_env, records_client

_WARM_UP = 20
_VILLAGES = 4


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def measure(n: int, sandbox: str, trace: bool) -> dict[str, Any]:
    from store.db import make_engine, upgrade
    from store.sealing import Keys
    from workers.logs import configure_logging
    from workers.settings import Settings
    from workers.worker import connect, running_worker

    work = Path(tempfile.mkdtemp(prefix="aidflow-memory-"))
    async with dev_server(work / "temporal") as (address, _):
        epoch = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
        os.environ.update(pipeline_env(address, work, epoch, 600.0))
        os.environ["AIDFLOW_WORKFLOW_SANDBOX"] = sandbox
        settings = Settings()
        configure_logging(settings.log_format, settings.log_level)
        upgrade(settings.effective_database_url)
        engine = make_engine(settings.effective_database_url)
        keys = Keys(settings.secret_key_bytes())
        forms = burst_county(engine, work, keys.hash_id, _VILLAGES, _WARM_UP + n)
        client = await connect(settings)
        async with running_worker(client, settings) as (_, stop):
            api = records_client(client, settings, keys, engine)
            await asyncio.sleep(max(0.0, (epoch - datetime.now(UTC)).total_seconds()) + 0.2)
            gate = asyncio.Semaphore(16)

            async def in_notice(form: Any) -> None:
                async with gate:
                    wf = await api.submit(form)
                    while (await api.status(wf)).stage != "village_review":
                        await asyncio.sleep(0.3)
                    await api.decide(wf, village_approval(form.places.village_code))
                    while (await api.status(wf)).stage == "village_review":
                        await asyncio.sleep(0.3)

            await asyncio.gather(*(in_notice(f) for f in forms[:_WARM_UP]))
            await asyncio.sleep(3)
            gc.collect()
            if trace:
                tracemalloc.start(1)
            before, snap0 = _rss_kib(), tracemalloc.take_snapshot() if trace else None
            await asyncio.gather(*(in_notice(f) for f in forms[_WARM_UP:]))
            await asyncio.sleep(3)
            gc.collect()
            after, snap1 = _rss_kib(), tracemalloc.take_snapshot() if trace else None
            stop.set()
    out: dict[str, Any] = {
        "applications": n,
        "sandbox": sandbox,
        "rss_kib_per_application": round((after - before) / n),
    }
    if snap0 is not None and snap1 is not None:
        diff = snap1.compare_to(snap0, "filename")
        out["traced_kib_per_application"] = round(sum(d.size_diff for d in diff) / n / 1024, 1)
        out["by_file"] = [
            (d.traceback[0].filename.split("site-packages/")[-1], round(d.size_diff / n / 1024, 1))
            for d in diff[:15]
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--applications", type=int, default=300)
    parser.add_argument("--sandbox", choices=["shared", "strict"], default="shared")
    parser.add_argument("--trace", action="store_true", help="Python's allocations by file")
    args = parser.parse_args()
    os.environ.setdefault("AIDFLOW_LOG_LEVEL", "WARNING")
    result = asyncio.run(measure(args.applications, args.sandbox, args.trace))
    print(f"{result['sandbox']}: RSS +{result['rss_kib_per_application']} KiB an application")
    if "by_file" in result:
        print(f"Python's own: +{result['traced_kib_per_application']} KiB an application")
        for name, kib in result["by_file"]:
            print(f"  {kib:7.1f} KiB  {name}")


if __name__ == "__main__":
    main()
