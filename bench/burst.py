"""The deadline-day burst (issue 20): many village decisions in one minute.

    .venv/bin/python -m bench.run --applications 0 --idle 0 --simulate '' --burst 1000

(a) ``2 n`` county-subsidy applications of ``villages`` villages (three townships of
the sample county) wait for their village committee's review. In ``seconds``:

- *single*: the first ``n`` are decided one request each, evenly spread over the
  minute, the villages interleaved;
- *batches*: the other ``n``, each village's list in one batch (as the gateway's
  ``/v1/batches/decisions`` runs one: its items at once, through the same client),
  the villages' batches evenly spread over the minute.

(b) ``2 n`` bare workflows (``bench/baseline.py``) waiting for one update each, sent on
the same two schedules, in the same run, on the same server.

Measured for each: every decision's latency (p50, p99), the time from the first
decision sent to the last answered, how late the client sent (its own lag: a
saturated driver would hide latency), refused decisions (each should be accepted) and
lost ones (accepted, but the application not past the village's review 120 s after the
burst).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.run import (
    BIN,
    Procs,
    machine_busy_seconds,
    pct,
    pipeline_env,
    records_client,
    spawn_bare_workers,
    spawn_workers,
)

SEASON = 2026
# Village codes of the burst's county: three of the sample county's townships, their
# villages numbered from 301 (the sample's own are 2xx).
_TOWNSHIPS = ("341225100000", "341225101000", "341225102000")


def _places_csv(villages: int) -> tuple[str, list[tuple[str, str]]]:
    """The county, its townships and ``villages`` villages: the CSV and (village,
    township) codes."""
    rows = [
        "code,name,level,parent_code,contact_email,contact_phone",
        "341225000000,阜南县,county,,jyj@funan.example.gov.cn,",
    ]
    rows += [
        f"{t},第{i + 1}镇,township,341225000000,t{i}@funan.example.gov.cn,"
        for i, t in enumerate(_TOWNSHIPS)
    ]
    codes = []
    for v in range(villages):
        township = _TOWNSHIPS[v % len(_TOWNSHIPS)]
        code = f"{township[:9]}{301 + v // len(_TOWNSHIPS):03d}"
        codes.append((code, township))
        rows.append(f"{code},第{v + 1}村,village,{township},,138{v:08d}")
    return "\n".join(rows) + "\n", codes


def burst_county(
    engine: Any, work: Path, hash_id: Callable[[str], str], villages: int, count: int
) -> list[Any]:
    """The burst's county in ``engine`` (its places, and ``count`` county-subsidy
    applicants spread over ``villages`` villages on its registry): their forms."""
    from models.programmes import COUNTY_SUBSIDY_DEMO
    from store.importing import import_places, import_registry
    from workers.synthetic import applicants, registry_csv

    csv_text, codes = _places_csv(villages)
    (work / "places.csv").write_text(csv_text, encoding="utf-8")
    import_places(engine, work / "places.csv")
    forms = applicants(count, SEASON, seed=20, programme=COUNTY_SUBSIDY_DEMO.code)
    forms = [
        f.model_copy(
            update={
                "places": f.places.model_copy(
                    update={
                        "village_code": codes[i % villages][0],
                        "village_name": f"第{i % villages + 1}村",
                        "township_code": codes[i % villages][1],
                        "township_name": f"第{_TOWNSHIPS.index(codes[i % villages][1]) + 1}镇",
                    }
                )
            }
        )
        for i, f in enumerate(forms)
    ]
    (work / "registry.csv").write_text(registry_csv(forms, SEASON), encoding="utf-8")
    import_registry(engine, work / "registry.csv", hash_id, as_of=date(SEASON, 1, 1))
    return forms


def village_approval(village: str) -> Any:
    """A village committee's approval at its review, a new request id."""
    from models.application import Actor, DecisionRequest
    from models.domain import DecisionKind, Role

    return DecisionRequest(
        request_id=uuid.uuid4().hex,
        actor=Actor(
            id=f"village_committee-{village}",
            name="村干部",
            role=Role.VILLAGE_COMMITTEE,
            place_code=village,
        ),
        stage="village_review",
        decision=DecisionKind.APPROVE,
    )


def _stats(
    latencies: list[float], first_sent: float, last_done: float, late: list[float]
) -> dict[str, Any]:
    return {
        "decisions": len(latencies),
        "p50_ms": round(pct(latencies, 0.5) * 1000, 1),
        "p99_ms": round(pct(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "completion_s": round(last_done - first_sent, 2),
        "client_late_p99_ms": round(pct(late, 0.99) * 1000, 1),
    }


async def _burst(
    groups: list[list[str]],
    seconds: float,
    one: Callable[[str], Awaitable[bool]],
    worker: Procs,
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Send each group at its slot of ``seconds`` (its members at once); the statistics,
    the refused and the accepted. With them, where the CPU went over the phase: the
    machine's cores busy (server, workers, this driver) and the workers' share."""
    busy0, worker0, wall0 = machine_busy_seconds(), worker.cpu_seconds(), time.perf_counter()
    latencies: list[float] = []
    late: list[float] = []
    refused: list[str] = []
    accepted: list[str] = []
    done: list[float] = []
    start = time.perf_counter() + 0.5
    step = seconds / len(groups)

    async def send(at: float, wf: str) -> None:
        t0 = time.perf_counter()
        late.append(max(0.0, t0 - at))
        ok = await one(wf)
        t1 = time.perf_counter()
        latencies.append(t1 - t0)
        done.append(t1)
        (accepted if ok else refused).append(wf)

    async def group(i: int, members: list[str]) -> None:
        at = start + i * step
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        await asyncio.gather(*(send(at, wf) for wf in members))

    await asyncio.gather(*(group(i, g) for i, g in enumerate(groups)))
    stats = _stats(latencies, start, max(done), late)
    wall = time.perf_counter() - wall0
    stats["machine_busy"] = round(
        (machine_busy_seconds() - busy0) / (wall * (os.cpu_count() or 1)), 2
    )
    stats["worker_cpu_share"] = round((worker.cpu_seconds() - worker0) / wall, 2)
    return stats, refused, accepted


async def _outbox_drained(engine: Any, limit: float = 300.0) -> float:
    """Seconds until no notification is due to be sent (at most ``limit``), then 3 more."""
    from sqlalchemy import func, select

    from store.tables import OutboxMessage

    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        due = select(func.count()).where(
            OutboxMessage.status == "pending",  # type: ignore[arg-type]
            OutboxMessage.next_attempt_at <= datetime.now(UTC),  # type: ignore[arg-type]
        )
        with engine.connect() as c:
            if not c.execute(due).scalar_one():
                break
        await asyncio.sleep(1.0)
    waited = time.monotonic() - t0
    await asyncio.sleep(3.0)
    return round(waited, 1)


def _schedules(
    wfs: list[str], village_of: dict[str, str], n: int
) -> tuple[list[list[str]], list[list[str]]]:
    """Single: the first ``n``, one a slot, villages interleaved; batches: the rest, one
    village's list a slot."""
    single, batched = wfs[:n], wfs[n:]
    by_village: dict[str, list[str]] = {}
    for wf in batched:
        by_village.setdefault(village_of[wf], []).append(wf)
    return [[wf] for wf in single], list(by_village.values())


async def run_aidflow(
    address: str, work: Path, n: int, seconds: float, villages: int, workers: int
) -> dict[str, Any]:
    from models.domain import Role
    from store.db import make_engine, upgrade
    from store.sealing import Keys
    from workers.client import Refused
    from workers.settings import Settings
    from workers.worker import connect

    work.mkdir(parents=True, exist_ok=True)
    # A long compressed day: nothing moves on its own while the offices decide.
    epoch = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    env = pipeline_env(address, work, epoch, 600.0)
    os.environ.update(env)
    settings = Settings()
    upgrade(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    keys = Keys(settings.secret_key_bytes())
    forms = burst_county(engine, work, keys.hash_id, villages, 2 * n)
    worker = spawn_workers(workers, [str(BIN / "aidflow"), "worker"], work, "worker-burst-a", env)
    try:
        client = await connect(settings)
        api = records_client(client, settings, keys, engine)
        await asyncio.sleep(max(0.0, (epoch - datetime.now(UTC)).total_seconds()) + 0.2)
        sem = asyncio.Semaphore(32)
        t_setup = time.monotonic()

        async def submit(f: Any) -> str:
            async with sem:
                return await api.submit(f)

        wfs = list(await asyncio.gather(*(submit(f) for f in forms)))
        village_of = {wf: f.places.village_code for wf, f in zip(wfs, forms, strict=True)}

        async def at_review(wf: str) -> None:
            async with sem:
                while True:
                    st = await api.status(wf)
                    if (
                        st.stage == "village_review"
                        and st.waiting_for == Role.VILLAGE_COMMITTEE.value
                    ):
                        return
                    await asyncio.sleep(0.5)

        await asyncio.gather(*(at_review(wf) for wf in wfs))
        setup_s = time.monotonic() - t_setup
        # The burst starts on a quiet worker: the submissions' notifications sent (else
        # their sending, in the worker beside the decisions, is measured as theirs).
        drain_s = await _outbox_drained(engine)

        async def decide(wf: str) -> bool:
            try:
                r = await api.decide(wf, village_approval(village_of[wf]))
            except Refused:
                return False
            return r.accepted

        single, batches = _schedules(wfs, village_of, n)
        out: dict[str, Any] = {"setup_s": round(setup_s, 1), "outbox_drain_s": drain_s}
        accepted_all: list[str] = []
        for name, groups in (("single", single), ("batches", batches)):
            stats, refused, accepted = await _burst(groups, seconds, decide, worker)
            stats["refused"] = len(refused)
            out[name] = stats
            accepted_all += accepted

        # Lost: accepted, yet not past the village's review after a while.
        deadline = time.monotonic() + 120

        async def moved_on(wf: str) -> bool:
            async with sem:
                while time.monotonic() < deadline:
                    st = await api.status(wf)
                    if st.stage != "village_review":
                        return True
                    await asyncio.sleep(1.0)
                return False

        moved = await asyncio.gather(*(moved_on(wf) for wf in accepted_all))
        out["lost"] = sum(1 for m in moved if not m)
        out["worker_peak_rss_mib"] = round(worker.peak_rss_mib(), 1)
        out["workers"] = workers
    finally:
        worker.stop()
        engine.dispose()
    return out


async def run_bare(
    address: str, work: Path, n: int, seconds: float, villages: int, workers: int
) -> dict[str, Any]:
    from temporalio.client import Client

    from bench.baseline import BareApplication, Script

    worker = spawn_bare_workers(workers, address, work, "worker-burst-b")
    try:
        client = await Client.connect(address)
        await asyncio.sleep(3)
        run_id = uuid.uuid4().hex[:6]
        sem = asyncio.Semaphore(32)

        async def start(i: int) -> Any:
            async with sem:
                return await client.start_workflow(
                    BareApplication.run,
                    # Waits for its decision, then for a while: alive, as (a)'s are.
                    Script(steps=["update", "timer:300"]),
                    id=f"burst-{run_id}-{i}",
                    task_queue="bare",
                )

        handles = list(await asyncio.gather(*(start(i) for i in range(2 * n))))
        by_id = {h.id: h for h in handles}

        async def waiting(h: Any) -> None:
            async with sem:
                while (await h.query(BareApplication.status)).next != "update":
                    await asyncio.sleep(0.5)

        await asyncio.gather(*(waiting(h) for h in handles))
        village_of = {h.id: str(i % villages) for i, h in enumerate(handles)}

        async def decide(wf: str) -> bool:
            try:
                await by_id[wf].execute_update(BareApplication.decide, uuid.uuid4().hex)
            except Exception:
                return False
            return True

        single, batches = _schedules([h.id for h in handles], village_of, n)
        out: dict[str, Any] = {}
        for name, groups in (("single", single), ("batches", batches)):
            stats, refused, _ = await _burst(groups, seconds, decide, worker)
            stats["refused"] = len(refused)
            out[name] = stats
        out["worker_peak_rss_mib"] = round(worker.peak_rss_mib(), 1)
        out["workers"] = workers
        for h in handles:  # nothing left running on the server
            await h.terminate("benchmark over")
    finally:
        worker.stop()
    return out


async def run_burst(
    address: str, work: Path, n: int, seconds: float, villages: int, workers: int = 1
) -> dict[str, Any]:
    a = await run_aidflow(address, work / "a", n, seconds, villages, workers)
    b = await run_bare(address, work / "b", n, seconds, villages, workers)
    ratios = {
        mode: {
            "p99": round(a[mode]["p99_ms"] / b[mode]["p99_ms"], 2),
            "p50": round(a[mode]["p50_ms"] / b[mode]["p50_ms"], 2),
            "completion": round(a[mode]["completion_s"] / b[mode]["completion_s"], 2),
        }
        for mode in ("single", "batches")
    }
    return {
        "decisions": n,
        "seconds": seconds,
        "villages": villages,
        "aidflow": a,
        "bare": b,
        "a_over_b": ratios,
    }


__all__ = ["run_burst"]
