"""What every command shares: the Typer apps, the consoles, settings, one-line failures,
the client API call, option types."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from models.season import SeasonKey
from workers.settings import Settings

app = typer.Typer(
    name="aidflow",
    help="Durable, auditable, deadline-aware student-aid pipelines on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
_PANELS = {
    "config": "数据 / Data",
    "db": "数据 / Data",
    "registry": "数据 / Data",
    "places": "数据 / Data",
    "audit": "数据 / Data",
    "notice": "公示 / Notices",
    "funds": "资金与报告 / Funds and reports",
}
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
db_app = typer.Typer(help="The application database.", no_args_is_help=True)
notice_app = typer.Typer(help="Public notices.", no_args_is_help=True)
app.add_typer(config_app, name="config", rich_help_panel=_PANELS["config"])
app.add_typer(db_app, name="db", rich_help_panel=_PANELS["db"])
app.add_typer(notice_app, name="notice", rich_help_panel=_PANELS["notice"])
funds_app = typer.Typer(help="Funds requests and arrivals.", no_args_is_help=True)
app.add_typer(funds_app, name="funds", rich_help_panel=_PANELS["funds"])
registry_app = typer.Typer(help="The registry of registered poor households.", no_args_is_help=True)
places_app = typer.Typer(help="Counties, townships and villages.", no_args_is_help=True)
audit_app = typer.Typer(help="The append-only audit log.", no_args_is_help=True)
app.add_typer(registry_app, name="registry", rich_help_panel=_PANELS["registry"])
app.add_typer(places_app, name="places", rich_help_panel=_PANELS["places"])
app.add_typer(audit_app, name="audit", rich_help_panel=_PANELS["audit"])

# Wide enough for the plan table when the output is a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 300)
T = TypeVar("T")


def season_key(text: str) -> SeasonKey:
    try:
        return SeasonKey.parse(text)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


# R12: a season is a year, or a year and a round (2027-spring).
SeasonOption = Annotated[
    SeasonKey, typer.Option("--season", parser=season_key, metavar="YEAR[-ROUND]")
]


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]aidflow:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings() -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in x['loc'])}: {x['msg']}" for x in e.errors()
        )
        raise fail(f"bad configuration: {problems}", 2) from None


def setup_logging(s: Settings) -> None:
    from workers.logs import configure_logging

    configure_logging(s.log_format, s.log_level)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# --------------------------------------------------------------------------- stack


def engine_for(s: Settings) -> Any:
    from store.db import make_engine, upgrade

    upgrade(s.effective_database_url)
    return make_engine(s.effective_database_url)


def print_import(report: Any, what: str) -> None:
    if report.problems and not report.imported:
        for p in report.problems[:200]:
            err.print(str(p), highlight=False)
        raise fail(
            f"{what}: {len(report.bad_rows)} bad row(s) of {report.rows}; nothing imported (--skip-bad imports the good rows)"
        )
    console.print(f"{what}: imported {report.imported} of {report.rows} row(s)")
    if report.rejects_file:
        console.print(
            f"[yellow]{len(report.bad_rows)} bad row(s) written to {report.rejects_file}[/yellow]"
        )


@dataclass
class _State:
    connected: bool = False  # this command connected to Temporal as a client


state = _State()


def api_call(fn: Callable[[Any], Awaitable[T]]) -> T:
    """Connect, build the client API, run ``fn(api)``; refusals exit 1 on one line."""
    state.connected = True
    from store.db import make_engine
    from workers.client import Refused
    from workers.gateway.serving import gateway_client
    from workers.worker import connect

    s = settings()

    async def _main() -> T:
        try:
            client = await connect(s)
        except Exception as e:
            raise fail(f"cannot connect to Temporal at {s.temporal_address}: {e}") from None
        engine = make_engine(s.effective_database_url)
        try:
            return await fn(gateway_client(client, s, engine))
        except Refused as r:
            raise fail(f"refused: {r}") from None
        finally:
            engine.dispose()

    return run(_main())


def gateway_request(
    method: str, path: str, body: Any = None, *, anonymous: bool = False
) -> tuple[bool, Any]:
    """One request to aidflow's HTTP API as the credential in AIDFLOW_API_KEY (R10: the
    CLI is a client of the gateway like any service). Returns (accepted, answer); an
    answer refused is the problem's detail."""
    import httpx

    s = settings()
    if s.api_key is None and not anonymous:
        raise fail(
            "no credential: set AIDFLOW_API_KEY to your office's API key (aidflow credentials create)"
        )
    url = s.api_url or f"http://{s.api_host}:{s.api_port}"
    headers = {"Authorization": f"Bearer {s.api_key.get_secret_value()}"} if s.api_key else {}
    try:
        r = httpx.request(method, url + path, json=body, headers=headers, timeout=120)
    except httpx.HTTPError as e:
        raise fail(
            f"cannot reach aidflow's API at {url} ({e}); is aidflow up or aidflow serve running?"
        ) from None
    if r.status_code >= 400:
        try:
            problem = r.json()
            detail = str(problem.get("detail") or problem)
        except ValueError:
            detail = r.text[:300]
        return False, f"{detail} (HTTP {r.status_code})"
    return True, r.json()


def gateway_call(method: str, path: str, body: Any = None, *, anonymous: bool = False) -> Any:
    """:func:`gateway_request`; a refusal ends the command on one line, status 1."""
    ok, answer = gateway_request(method, path, body, anonymous=anonymous)
    if not ok:
        raise fail(f"refused: {answer}")
    return answer


RequestId = Annotated[
    str | None, typer.Option("--request-id", help="idempotency key (default: random)")
]
