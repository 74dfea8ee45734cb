"""Running the gateway: uvicorn on ``api_host:api_port``, until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

from models.programmes import BUILTIN_PROGRAMMES
from store.db import make_engine
from store.loans import Loans
from store.registry import RegistryReader
from store.sealing import Keys
from workers.client import AidflowClient
from workers.gateway.app import create_app
from workers.settings import Settings


class _Beside(uvicorn.Server):
    """Beside the worker (``aidflow up``): the worker's own handlers own SIGINT/SIGTERM
    (uvicorn's would take them over and raise them again after its shutdown)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def gateway_client(client: Any, s: Settings, engine: Any) -> AidflowClient:
    s.check_bank()  # a season it starts names its bank
    registry = RegistryReader(engine)
    return AidflowClient(
        client,
        task_queue=s.task_queue,
        keys=Keys(s.secret_key_bytes()),
        calendar=s.build_calendar(),
        programmes=dict(BUILTIN_PROGRAMMES),
        lookup_member=registry.lookup,
        lookup_applications=registry.applications,
        claim_application=registry.claim,
        loans=Loans(engine),
        bank=s.bank,
        pairing_cadre=registry.pairing_cadre,
    )


@contextlib.asynccontextmanager
async def serving_app(app: Any, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """An ASGI app served by uvicorn in this event loop, until the block ends; yields
    its base URL (``port`` 0: a free one). The tests, the fuzzer and the demo's
    dashboard check use it."""
    if port == 0:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
    server = _Beside(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # it failed to start: say why
        await asyncio.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def serve_gateway(client: Any, s: Settings, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or, without one, until SIGINT/SIGTERM)."""
    engine = make_engine(s.effective_database_url)
    app = create_app(
        gateway_client(client, s, engine), engine, Keys(s.secret_key_bytes()), s.files_dir
    )
    config = uvicorn.Config(
        app, host=s.api_host, port=s.api_port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config) if stop is None else _Beside(config)
    serving = asyncio.create_task(server.serve())
    try:
        if stop is None:
            await serving
        else:
            await asyncio.wait(
                [serving, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
            )
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        engine.dispose()
