"""What every command shares: the Typer apps, the consoles, settings, one-line failures,
the calls to aidflow's HTTP API, option types."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

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
    "ledger": "资金与报告 / Funds and reports",
    "grants": "数据 / Data",
    "roster": "名册与任务 / Rosters and tasks",
    "tasks": "名册与任务 / Rosters and tasks",
    "loan": "贷款 / Student loans",
    "case": "帮扶个案 / Cases",
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
ledger_app = typer.Typer(help="The yearly aid ledger (学生资助台账).", no_args_is_help=True)
grants_app = typer.Typer(
    help="Aid decided by others, recorded for the ledger (the national grant).",
    no_args_is_help=True,
)
app.add_typer(ledger_app, name="ledger", rich_help_panel=_PANELS["ledger"])
app.add_typer(grants_app, name="grants", rich_help_panel=_PANELS["grants"])
roster_app = typer.Typer(
    help="A cohort's roster (the freshman grant): where it stands, an office's word on it.",
    no_args_is_help=True,
)
tasks_app = typer.Typer(help="A programme's dated tasks of a year.", no_args_is_help=True)
app.add_typer(roster_app, name="roster", rich_help_panel=_PANELS["roster"])
app.add_typer(tasks_app, name="tasks", rich_help_panel=_PANELS["tasks"])
loan_app = typer.Typer(
    help="The origin-place student loan: the centre's queue, receipts' codes.",
    no_args_is_help=True,
)
app.add_typer(loan_app, name="loan", rich_help_panel=_PANELS["loan"])
case_app = typer.Typer(
    help="Help that is a case: pairing, dropout persuasion, academic help, left-behind children.",
    no_args_is_help=True,
)
app.add_typer(case_app, name="case", rich_help_panel=_PANELS["case"])

# Wide enough for the plan table when the output is a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 300)
T = TypeVar("T")


def season_key(text: str | SeasonKey) -> SeasonKey:
    if isinstance(text, SeasonKey):  # an option's default, given as a key
        return text
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
    """A command's async work: every command that has some runs Temporal's native
    runtime (a client, a worker, a private server), and so ends as ``main`` says."""
    state.temporal_runtime = True
    return asyncio.run(coro)


# --------------------------------------------------------------------------- stack


def engine_for(s: Settings) -> Any:
    """The deployment's database, brought up to date (a command that works on it
    directly: imports, credentials, the audit check)."""
    from store.db import make_engine, upgrade

    if s.api_url and s.database_url is None:
        # Set up to send requests to a gateway, this command would write to a database
        # of this machine's own, and hash with a secret of its own: an import that
        # "succeeds" and never matches anyone.
        raise fail(
            "this command works on the deployment's database directly, not through the "
            f"gateway at AIDFLOW_API_URL ({s.api_url}): run it where AIDFLOW_DATABASE_URL "
            "and AIDFLOW_SECRET_KEY are the deployment's"
        )

    upgrade(s.effective_database_url)
    return make_engine(s.effective_database_url)


def keys_for(s: Settings) -> Any:
    """The deployment's keys, for a command that hashes, seals or signs by itself."""
    from store.sealing import Keys

    if s.api_url and s.secret_key is None:
        # Set up to send requests to a gateway, this command would make a secret of its
        # own: hashes that match no one's, a link the gateway refuses.
        raise fail(
            "this command hashes and signs with the deployment's secret, which requests "
            f"to the gateway at AIDFLOW_API_URL ({s.api_url}) do not need: set "
            "AIDFLOW_SECRET_KEY (and AIDFLOW_DATABASE_URL) of the deployment"
        )
    return Keys(s.secret_key_bytes())


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
    temporal_runtime: bool = False  # this command ran Temporal's native runtime (``run``)


state = _State()


def gateway_response(
    method: str,
    path: str,
    body: Any = None,
    *,
    params: dict[str, Any] | None = None,
    anonymous: bool = False,
) -> Any:
    """One request to aidflow's HTTP API as the credential in AIDFLOW_API_KEY (R10: the
    CLI is a client of the gateway like any service, for reading as for acting). Returns
    the ``httpx.Response``; a gateway that cannot be reached ends the command."""
    import httpx

    s = settings()
    if s.api_key is None and not anonymous:
        raise fail(
            "no credential: set AIDFLOW_API_KEY to your office's API key (aidflow credentials create)"
        )
    url = s.api_url or f"http://{s.api_host}:{s.api_port}"
    headers = {"Authorization": f"Bearer {s.api_key.get_secret_value()}"} if s.api_key else {}
    query = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        return httpx.request(
            method,
            url + quote(path, safe="/:@-._~"),
            json=body,
            params=query,
            headers=headers,
            timeout=120,
        )
    except httpx.HTTPError as e:
        raise fail(
            f"cannot reach aidflow's API at {url} ({e}); is aidflow up or aidflow serve running?"
        ) from None


def refusal(r: Any) -> str:
    """The problem's detail of a refused response, with its HTTP status."""
    try:
        problem = r.json()
        detail = str(problem.get("detail") or problem)
    except ValueError:
        detail = r.text[:300]
    return f"{detail} (HTTP {r.status_code})"


def gateway_request(
    method: str,
    path: str,
    body: Any = None,
    *,
    params: dict[str, Any] | None = None,
    anonymous: bool = False,
) -> tuple[bool, Any]:
    """:func:`gateway_response` as (accepted, answer): the JSON answer, or, refused, the
    problem's detail."""
    r = gateway_response(method, path, body, params=params, anonymous=anonymous)
    if r.status_code >= 400:
        return False, refusal(r)
    return True, r.json()


def gateway_call(
    method: str,
    path: str,
    body: Any = None,
    *,
    params: dict[str, Any] | None = None,
    anonymous: bool = False,
) -> Any:
    """:func:`gateway_request`; a refusal ends the command on one line, status 1."""
    ok, answer = gateway_request(method, path, body, params=params, anonymous=anonymous)
    if not ok:
        raise fail(f"refused: {answer}")
    return answer


def download(path: str, target: Path, *, params: dict[str, Any] | None = None) -> Path:
    """A file the gateway serves, written to ``target`` here (the gateway's own paths
    are on its machine, not the caller's)."""
    r = gateway_response("GET", path, params=params)
    if r.status_code >= 400:
        raise fail(f"refused: {refusal(r)}")
    try:
        target.write_bytes(r.content)
    except OSError as e:
        raise fail(f"cannot write {target}: {e.strerror or e}") from None
    return target


RequestId = Annotated[
    str | None, typer.Option("--request-id", help="idempotency key (default: random)")
]
