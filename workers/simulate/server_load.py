"""What the simulator's Temporal server did for a season, from its own metrics: the calls
each of its services took (``service_requests``), its persistence operations and the
time they took (``persistence_requests``, ``persistence_latency``), and its CPU.

The dev server keeps every workflow on one history shard and one SQLite connection
(its fixed settings); a season's wall time that these do not explain is the driver's
or the worker's. Read at the end of a run, before the server stops (issue 20); the
server reports its counters about every second, so the last moment's calls may be
missing.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    """A port for the server's metrics endpoint (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerLoad:
    # "service operation" -> calls, e.g. "frontend UpdateWorkflowExecutionOptions"
    calls: Counter[str] = field(default_factory=Counter)
    # persistence operation -> (operations, seconds in all)
    persistence: dict[str, tuple[int, float]] = field(default_factory=dict)
    cpu_seconds: float = 0.0

    def as_json(self, top: int = 15) -> dict[str, Any]:
        by_time = sorted(self.persistence.items(), key=lambda kv: -kv[1][1])
        return {
            "cpu_seconds": round(self.cpu_seconds, 1),
            # What the clients (the simulator's driver and its worker) asked of the server.
            "frontend_calls": dict(
                sorted(
                    (
                        (k.removeprefix("frontend "), n)
                        for k, n in self.calls.items()
                        if k.startswith("frontend ") and n
                    ),
                    key=lambda kv: -kv[1],
                )
            ),
            "persistence_operations": sum(n for n, _ in self.persistence.values()),
            "persistence_seconds": round(sum(s for _, s in self.persistence.values()), 1),
            "persistence_most_time": {
                op: {"operations": n, "seconds": round(s, 1)} for op, (n, s) in by_time[:top]
            },
        }


def parse(text: str) -> ServerLoad:
    """The season's load from the server's metrics (Prometheus text format)."""
    load = ServerLoad()
    counts: Counter[str] = Counter()
    seconds: defaultdict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            op = sample.labels.get("operation", "")
            # Counters, named with or without "_total" by the server's version.
            if sample.name in ("service_requests", "service_requests_total"):
                load.calls[f"{sample.labels.get('service_name', '')} {op}"] += int(sample.value)
            elif sample.name in ("persistence_requests", "persistence_requests_total"):
                counts[op] += int(sample.value)
            elif sample.name == "persistence_latency_sum":
                seconds[op] += sample.value
    load.persistence = {op: (counts[op], seconds[op]) for op in counts}
    return load


@dataclass(frozen=True)
class ServerProbe:
    """Where a running server's metrics are, and its process (None where unknown)."""

    metrics_port: int
    pid: int | None

    def read(self) -> ServerLoad:
        """The server's load so far: its metrics, and its CPU."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as r:
            load = parse(r.read().decode())
        if self.pid is not None:
            load.cpu_seconds = process_cpu_seconds(self.pid)
        return load


def dev_server_pid(candidates: set[int]) -> int | None:
    """Which of ``candidates`` (new child processes) is the dev server."""
    for pid in candidates:
        try:
            if b"start-dev" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


def process_cpu_seconds(pid: int, *, unknown: float = 0.0) -> float:
    """User and system CPU of ``pid`` so far (Linux); ``unknown`` where it cannot be read
    (the process gone, or not Linux: a benchmark's table says NaN, a total adds 0)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return unknown
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
