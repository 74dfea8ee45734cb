"""The ``aidflow`` command line (Typer + rich).

A refused request exits with status 1 and its reason on one line; a usage
error exits with status 2.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from models.calendar import CalendarDataMissing, NoticeCounting, ScheduleFileError, notice_period
from models.domain import DecisionKind, Level, ObjectionOutcome, Role
from models.planner import SeasonPlan, plan_season
from models.programme import NoticeStep
from models.programmes import BUILTIN_PROGRAMMES
from models.season import SeasonKey, season_label
from workers.settings import Settings

app = typer.Typer(
    name="aidflow",
    help="Durable, auditable, deadline-aware student-aid pipelines on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
db_app = typer.Typer(help="The application database.", no_args_is_help=True)
notice_app = typer.Typer(help="Public notices.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(notice_app, name="notice")
funds_app = typer.Typer(help="Funds requests and arrivals.", no_args_is_help=True)
app.add_typer(funds_app, name="funds")
registry_app = typer.Typer(help="The registry of registered poor households.", no_args_is_help=True)
places_app = typer.Typer(help="Counties, townships and villages.", no_args_is_help=True)
audit_app = typer.Typer(help="The append-only audit log.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
app.add_typer(places_app, name="places")
app.add_typer(audit_app, name="audit")

# Wide enough for the plan table when the output is a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 300)
T = TypeVar("T")


def _season_key(text: str) -> SeasonKey:
    try:
        return SeasonKey.parse(text)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


# R12: a season is a year, or a year and a round (2027-spring).
SeasonOption = Annotated[
    SeasonKey, typer.Option("--season", parser=_season_key, metavar="YEAR[-ROUND]")
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


def _setup_logging(s: Settings) -> None:
    from workers.logs import configure_logging

    configure_logging(s.log_format, s.log_level)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# --------------------------------------------------------------------------- stack


@app.command()
def up() -> None:
    """Start the embedded stack: Temporal dev server + Web UI, database, worker."""
    from workers.embedded import StackError

    s = settings()
    _setup_logging(s)
    try:
        run(_up(s))
    except StackError as e:
        raise fail(str(e)) from None


async def _up(s: Settings) -> None:
    from workers.embedded import embedded_stack
    from workers.settings import mask_url

    async with embedded_stack(s) as stack:
        console.print(
            Panel.fit(
                f"[bold]Temporal Web UI[/bold]  {stack.server.ui_url}\n"
                f"[bold]Temporal gRPC[/bold]    {stack.server.address}  (namespace {s.temporal_namespace}, task queue {s.task_queue})\n"
                f"[bold]Database[/bold]         {mask_url(s.effective_database_url)}\n"
                f"[bold]Worker metrics[/bold]   "
                + (f"http://localhost:{s.metrics_port}/metrics" if s.metrics_port else "off")
                + f"\n[bold]Data dir[/bold]         {s.data_dir.resolve()}\n\nCtrl-C stops everything.",
                title="aidflow is up",
            )
        )
        await stack.stop.wait()
        console.print("stopping…")
    console.print("stopped.")


@app.command()
def demo(
    applicants: Annotated[int, typer.Option(help="synthetic applicants")] = 50,
    day_seconds: Annotated[
        float, typer.Option("--day-seconds", help="how long one calendar day lasts")
    ] = 10.0,
    seed: Annotated[int, typer.Option()] = 7,
    exit_when_done: Annotated[
        bool, typer.Option("--exit-when-done", help="stop the stack when the season is over")
    ] = False,
    programme: Annotated[
        str, typer.Option(help="programme code (aidflow programmes lists them)")
    ] = "county-subsidy",
) -> None:
    """A live season on the embedded stack, to watch in the Web UI (about ten minutes)."""
    from models.programmes import REGISTRY
    from workers.demo import run_demo
    from workers.embedded import StackError

    if programme not in REGISTRY:
        raise fail(f"--programme: unknown {programme!r} (known: {', '.join(REGISTRY)})", 2)

    s = settings()
    # The live table owns the terminal; logs go to a file in the demo's data dir.
    s = s.model_copy(update={"log_level": "WARNING"})
    _setup_logging(s)
    try:
        result = run(
            run_demo(
                s,
                applicants_count=applicants,
                day_seconds=day_seconds,
                seed=seed,
                console=console,
                exit_when_done=exit_when_done,
                programme=programme,
            )
        )
    except StackError as e:
        raise fail(str(e)) from None
    if result.report_md is None:
        raise fail("the demo stopped before the season was over")


@app.command()
def simulate(
    applications: Annotated[int, typer.Option(help="synthetic applicants")] = 1000,
    season: Annotated[int, typer.Option(help="season year (one still to come)")] = 2027,
    programme: Annotated[
        str, typer.Option(help="programme code (aidflow programmes lists them)")
    ] = "county-subsidy",
    seed: Annotated[int, typer.Option()] = 1,
    officials_delay: Annotated[
        float,
        typer.Option(
            "--officials-delay",
            help="multiplies the officials' mean decision delays (0: act the moment a step opens)",
        ),
    ] = 1.0,
    objection_rate: Annotated[
        float, typer.Option("--objection-rate", help="share of notices with an objection")
    ] = 0.04,
    objection_upheld: Annotated[
        float, typer.Option("--objection-upheld", help="share of objections upheld")
    ] = 0.3,
    return_rate: Annotated[
        float, typer.Option("--return-rate", help="share returned for correction by the village")
    ] = 0.08,
    rejection_rate: Annotated[
        float, typer.Option("--rejection-rate", help="share rejected at each review")
    ] = 0.02,
    bank_return_rate: Annotated[
        float, typer.Option("--bank-return-rate", help="share of accounts the bank finds closed")
    ] = 0.03,
    funds_delay: Annotated[
        int, typer.Option("--funds-delay", help="working days from funds request to arrival")
    ] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="the result as JSON")] = False,
) -> None:
    """A whole season of synthetic applicants on the real programme and calendar, time skipped."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from workers.client import Refused
    from workers.embedded import StackError
    from workers.simulate import (
        Scenario,
        SeasonSimulation,
        SimulationStalled,
        print_result,
        result_json,
        run_simulation,
    )

    problems = [
        f"{name} must be between 0 and 1"
        for name, v in (
            ("--objection-rate", objection_rate),
            ("--objection-upheld", objection_upheld),
            ("--return-rate", return_rate),
            ("--rejection-rate", rejection_rate),
            ("--bank-return-rate", bank_return_rate),
        )
        if not 0 <= v <= 1
    ]
    if applications < 1:
        problems.append("--applications must be at least 1")
    from models.programmes import REGISTRY

    if programme not in REGISTRY:
        problems.append(f"--programme: unknown {programme!r} (known: {', '.join(REGISTRY)})")
    if officials_delay < 0:
        problems.append("--officials-delay must not be negative")
    if funds_delay < 0:
        problems.append("--funds-delay must not be negative")
    if problems:
        raise fail("; ".join(problems), 2)
    scenario = Scenario(
        programme=programme,
        applications=applications,
        season=season,
        seed=seed,
        officials_delay=officials_delay,
        objection_rate=objection_rate,
        objection_upheld=objection_upheld,
        return_rate=return_rate,
        rejection_rate=rejection_rate,
        bank_return_rate=bank_return_rate,
        funds_delay_days=funds_delay,
    )
    s = settings().model_copy(update={"log_level": "WARNING"})
    _setup_logging(s)
    tz = s.build_calendar().tz
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} settled · {task.fields[info]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task("simulating", total=applications, info="starting the server")

        def progress(sim: SeasonSimulation) -> None:
            settled = sum(1 for a in sim.apps if a.terminal)
            bar.update(
                task,
                completed=settled,
                description=f"season {season} · {sim.now.astimezone(tz):%Y-%m-%d}",
                info=f"{sim.clocks.fast_forwards} fast-forwards",
            )

        try:
            result = run(run_simulation(scenario, s, progress=progress))
        except (StackError, Refused, SimulationStalled) as e:
            raise fail(str(e)) from None
    if as_json:
        console.print_json(result_json(result))
    else:
        print_result(result, console)


@app.command()
def worker() -> None:
    """Run a worker against the configured Temporal cluster and database (production)."""
    from activities.db import schema_problem
    from workers.logs import get_logger
    from workers.settings import mask_url
    from workers.worker import connect, make_runtime, running_worker

    s = settings()
    _setup_logging(s)
    # Refuse at once rather than fail every activity (and the outbox every 2 s).
    problem = schema_problem(s.effective_database_url)
    if problem:
        raise fail(f"{mask_url(s.effective_database_url)}: {problem}")

    async def _main() -> None:
        try:
            client = await connect(s, make_runtime(s.metrics_port))
        except Exception as e:
            raise fail(f"cannot connect to Temporal at {s.temporal_address}: {e}") from None
        async with running_worker(client, s) as (_, stop):
            get_logger().info(
                "worker started",
                address=s.temporal_address,
                namespace=s.temporal_namespace,
                task_queue=s.task_queue,
                metrics_port=s.metrics_port,
            )
            await stop.wait()

    run(_main())


@config_app.command("show")
def config_show(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print the effective configuration, secrets masked."""
    values = settings().masked()
    if as_json:
        console.print_json(json.dumps(values, default=str))
        return
    table = Table("setting", "value", title="aidflow configuration")
    for k, v in values.items():
        table.add_row(k, "" if v is None else str(v))
    console.print(table)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the application database to the newest schema."""
    from activities.db import current_revision, upgrade
    from workers.settings import mask_url

    s = settings()
    upgrade(s.effective_database_url)
    console.print(
        f"database {mask_url(s.effective_database_url)} at revision {current_revision(s.effective_database_url)}"
    )


# ------------------------------------------------------------------ data and audit


def _engine(s: Settings) -> Any:
    from activities.db import make_engine, upgrade

    upgrade(s.effective_database_url)
    return make_engine(s.effective_database_url)


def _print_import(report: Any, what: str) -> None:
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


@registry_app.command("import")
def registry_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV: household_no, head_name, member_ids (;-separated), county_code, township_code, village_code, status, year"
        ),
    ],
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad", help="import the good rows, write the bad ones to FILE.rejects.csv"
        ),
    ] = False,
) -> None:
    """Import the county poverty office's registry (identity numbers stored only hashed and masked)."""
    from activities.importing import import_registry
    from activities.sealing import Keys

    s = settings()
    keys = Keys(s.secret_key_bytes())
    _print_import(import_registry(_engine(s), file, keys.hash_id, skip_bad=skip_bad), "registry")


@places_app.command("import")
def places_import(
    file: Annotated[
        Path,
        typer.Argument(help="CSV: code, name, level, parent_code[, contact_email, contact_phone]"),
    ],
    skip_bad: Annotated[bool, typer.Option("--skip-bad")] = False,
) -> None:
    """Import places (12-digit division codes) and their offices' contacts."""
    from activities.importing import import_places

    _print_import(import_places(_engine(settings()), file, skip_bad=skip_bad), "places")


@audit_app.command("verify")
def audit_verify(
    season: Annotated[int | None, typer.Option()] = None,
    programme: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Check every application's hash chain; name the first broken row of each."""
    from activities.audit import verify

    report = verify(_engine(settings()), season=season, programme=programme)
    if report.ok:
        console.print(f"audit log intact: {report.chains} application(s), {report.rows} row(s)")
        return
    for b in report.breaks:
        err.print(f"BROKEN {b}", highlight=False)
    raise fail(f"audit log broken in {len(report.breaks)} of {report.chains} application(s)")


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option("--out", help="file to write")],
    fmt: Annotated[str, typer.Option("--format", help="csv or xlsx")] = "csv",
    season: Annotated[int | None, typer.Option()] = None,
    programme: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Export the audit log for an auditor (CSV or XLSX)."""
    from activities.audit import export

    if fmt not in ("csv", "xlsx"):
        raise fail("--format must be csv or xlsx", 2)
    n = export(_engine(settings()), out, fmt, season=season, programme=programme)
    console.print(f"wrote {n} audit row(s) to {out}")


# ---------------------------------------------------------------------------- plan


@app.command()
def programmes(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The programme registry: every programme aidflow runs, and what it does today."""
    from models.programmes import REGISTRY

    rows: list[dict[str, Any]] = []
    for p in REGISTRY.values():
        latest = p.amounts[-1]
        rows.append(
            {
                "code": p.code,
                "name_zh": p.name_zh,
                "name_en": p.name_en,
                "kind": p.kind,
                "rounds": ["(one a year)"],
                "submitted_by": [r.value for r in p.submitted_by],
                "steps": [f"{s.kind}:{s.stage}" for s in p.steps],
                "ends_in": p.done_stage,
                "amounts_cny": {
                    "from_year": latest.from_year,
                    "options": [
                        {"amount_cny": o.amount_cny, "when": dict(o.when)} for o in latest.options
                    ],
                },
                "source": p.source,
                "does_today": p.description_en,
            }
        )
    if as_json:
        console.print_json(json.dumps(rows, ensure_ascii=False))
        return
    table = Table(
        "code",
        "名称 / name",
        "kind",
        "rounds",
        "steps → end",
        "amount (CNY)",
        "what it does today",
        title="aidflow programmes · 资助项目",
        show_lines=True,
    )
    for r in rows:
        amounts = ", ".join(
            str(o["amount_cny"])
            + (f" ({', '.join(f'{k}={v}' for k, v in o['when'].items())})" if o["when"] else "")
            for o in r["amounts_cny"]["options"]
        )
        table.add_row(
            r["code"],
            f"{r['name_zh']}\n{r['name_en']}",
            r["kind"],
            ", ".join(r["rounds"]),
            " → ".join(s.split(":")[1] for s in r["steps"]) + f" → {r['ends_in']}",
            f"{amounts} (from {r['amounts_cny']['from_year']})",
            f"{r['does_today']}\n[dim]{r['source']}[/dim]",
        )
    console.print(table)


@app.command()
def plan(
    programme: Annotated[str, typer.Option(help="programme code")] = "county-subsidy",
    season: Annotated[
        SeasonKey | None,
        typer.Option(
            parser=_season_key, metavar="YEAR[-ROUND]", help="the season: 2026, 2027-spring"
        ),
    ] = None,
    notice_days: Annotated[
        int | None, typer.Option("--notice-days", help="one notice: its length")
    ] = None,
    posted: Annotated[
        str | None, typer.Option(help="one notice: when posted (ISO-8601 with offset)")
    ] = None,
    counting: Annotated[
        NoticeCounting, typer.Option(help="one notice: how days count")
    ] = NoticeCounting.WORKING_DAYS,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A season's fastest possible timeline, or one notice's counted days and end."""

    s = settings()
    try:
        cal = s.build_calendar()
    except ScheduleFileError as e:
        raise fail(f"bad holiday schedule file: {e}") from None
    try:
        if notice_days is not None or posted is not None:
            if notice_days is None or posted is None:
                raise fail("--notice-days and --posted go together", 2)
            try:
                posted_at = datetime.fromisoformat(posted)
            except ValueError:
                raise fail(f"--posted {posted!r} is not an ISO-8601 instant", 2) from None
            if posted_at.tzinfo is None:
                raise fail("--posted needs an offset, e.g. 2026-09-01T09:30+08:00", 2)
            p = notice_period(cal, posted_at, notice_days, counting)
            if as_json:
                console.print_json(
                    json.dumps(
                        {
                            "posted_at": p.posted_at.isoformat(),
                            "days": notice_days,
                            "counting": counting.value,
                            "counted_days": [d.isoformat() for d in p.counted_days],
                            "ends_at": p.ends_at.astimezone(cal.tz).isoformat(),
                            "provisional": p.provisional,
                        }
                    )
                )
                return
            days = ", ".join(f"{d:%a} {d}" for d in p.counted_days)
            console.print(f"posted {p.posted_at.isoformat()}; counted days: {days}")
            console.print(
                f"ends {p.ends_at.astimezone(cal.tz).isoformat()} (24:00 of {p.counted_days[-1]})"
                + ("  [yellow]PROVISIONAL calendar data[/yellow]" if p.provisional else "")
            )
            return
        if season is None:
            raise fail("--season is required (or --notice-days with --posted)", 2)
        prog = BUILTIN_PROGRAMMES.get(programme)
        if prog is None:
            raise fail(
                f"unknown programme {programme!r} (known: {', '.join(BUILTIN_PROGRAMMES)})", 2
            )
        try:
            prog = prog.for_round(season.round)
        except ValueError as e:
            raise fail(str(e), 2) from None
        result = plan_season(prog, season.year, cal)
    except CalendarDataMissing as e:
        raise fail(str(e)) from None
    if as_json:
        console.print_json(plan_json(result))
    else:
        print_plan(result)


def plan_json(p: SeasonPlan) -> str:
    data = p.model_dump(mode="json")
    data["at_risk"] = [s.stage for s in p.at_risk]
    return json.dumps(data, ensure_ascii=False)


def print_plan(p: SeasonPlan) -> None:
    from models.calendar import SHANGHAI

    def t(x: datetime) -> str:
        return x.astimezone(SHANGHAI).strftime("%a %Y-%m-%d %H:%M")

    title = f"{p.programme} {season_label(p.season, p.round)}: fastest possible timeline ({p.calendar} calendar)"
    table = Table(
        "stage", "earliest start", "earliest end", "must be done by (24:00)", "ok?", title=title
    )
    for s in p.steps:
        ok = (
            "[green]yes[/green]"
            if s.meets_due
            else f"[red]NO, {-(s.slack.total_seconds() / 86400):.1f} days late[/red]"
        )
        table.add_row(
            s.label_en,
            t(s.earliest_start),
            t(s.earliest_end),
            f"{s.due_date} ({s.due_label_en})",
            ok,
        )
    console.print(table)
    console.print(f"application window: {t(p.window_opens_at)} to {t(p.window_closes_at)}")
    for d in p.fixed_dates:
        state = "—" if d.met is None else ("met" if d.met else "[red]CANNOT be met[/red]")
        console.print(f"  {d.date}  {d.label_en} / {d.label_zh}: {state}")
    if p.provisional:
        console.print(
            "[yellow]PROVISIONAL: computed from a provisional holiday schedule (adjusted working days unknown)[/yellow]"
        )


# ------------------------------------------------------------------- applications


def _api_call(fn: Callable[[Any], Awaitable[T]]) -> T:
    """Connect, build the client API, run ``fn(api)``; refusals exit 1 on one line."""
    from activities.db import make_engine
    from activities.registry import RegistryReader
    from activities.sealing import Keys
    from workers.client import AidflowClient, Refused
    from workers.worker import connect

    s = settings()

    async def _main() -> T:
        try:
            client = await connect(s)
        except Exception as e:
            raise fail(f"cannot connect to Temporal at {s.temporal_address}: {e}") from None
        engine = make_engine(s.effective_database_url)
        try:
            api = AidflowClient(
                client,
                task_queue=s.task_queue,
                keys=Keys(s.secret_key_bytes()),
                calendar=s.build_calendar(),
                programmes=dict(BUILTIN_PROGRAMMES),
                lookup_member=RegistryReader(engine).lookup,
            )
            return await fn(api)
        except Refused as r:
            raise fail(f"refused: {r}") from None
        finally:
            engine.dispose()

    return run(_main())


def _actor(actor_id: str, name: str | None, role: Role, place: str) -> Any:
    from models.application import Actor

    return Actor(id=actor_id, name=name or actor_id, role=role, place_code=place)


ActorId = Annotated[str, typer.Option("--actor", help="the deciding official's id")]
ActorName = Annotated[str | None, typer.Option("--actor-name")]
Place = Annotated[str, typer.Option("--place", help="the actor's 12-digit place code")]
RequestId = Annotated[
    str | None, typer.Option("--request-id", help="idempotency key (default: random)")
]


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(help="JSON (object or list) or CSV of applications")],
    received_at: Annotated[
        str | None,
        typer.Option(
            "--received-at",
            help="when the village received the paper forms (ISO-8601 with offset); default now",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Submit applications; prints one result per row."""
    from models.application import ApplicationForm
    from workers.client import Refused
    from workers.forms import read_forms

    rows = read_forms(file)
    at: datetime | None = None
    if received_at is not None:
        try:
            at = datetime.fromisoformat(received_at)
        except ValueError:
            raise fail(f"--received-at {received_at!r} is not an ISO-8601 instant", 2) from None
        if at.tzinfo is None:
            raise fail("--received-at needs an offset, e.g. 2027-08-10T10:00+08:00", 2)

    async def _go(api: Any) -> list[dict[str, Any]]:
        out = []
        for n, row in rows:
            try:
                f = ApplicationForm.model_validate(row)
                wf = await api.submit(f, now=at)
                out.append({"row": n, "accepted": True, "workflow_id": wf})
            except ValidationError as e:
                msg = "; ".join(
                    f"{'.'.join(str(p) for p in x['loc'])}: {x['msg']}" for x in e.errors()
                )
                out.append({"row": n, "accepted": False, "reason": msg})
            except Refused as r:
                out.append({"row": n, "accepted": False, "reason": str(r)})
        return out

    results = _api_call(_go)
    if as_json:
        console.print_json(json.dumps(results, ensure_ascii=False))
    else:
        table = Table("row", "result", "workflow id / reason")
        for r in results:
            table.add_row(
                str(r["row"]),
                "[green]accepted[/green]" if r["accepted"] else "[red]refused[/red]",
                r.get("workflow_id") or r["reason"],
            )
        console.print(table)
    if any(not r["accepted"] for r in results):
        raise typer.Exit(1)


@app.command()
def decide(
    application: Annotated[str, typer.Argument(help="workflow id")],
    stage: Annotated[str, typer.Option()],
    decision: Annotated[DecisionKind, typer.Option()],
    actor: ActorId,
    role: Annotated[Role, typer.Option()],
    place: Place,
    reason: Annotated[str, typer.Option()] = "",
    actor_name: ActorName = None,
    request_id: RequestId = None,
) -> None:
    """Take a review decision: approve, reject or return (for correction)."""
    from models.application import DecisionRequest

    req = DecisionRequest(
        request_id=request_id or uuid.uuid4().hex,
        actor=_actor(actor, actor_name, role, place),
        stage=stage,
        decision=decision,
        reason=reason,
    )
    result = _api_call(lambda api: api.decide(application, req))
    console.print(f"{result.message} (request {result.request_id})")


@app.command("object")
def object_(
    application: Annotated[str, typer.Argument(help="workflow id")],
    text: Annotated[str, typer.Option(help="the objection")],
    actor: Annotated[str, typer.Option("--actor", help="who objects (any id)")] = "anonymous",
    contact: Annotated[str, typer.Option()] = "",
    evidence: Annotated[str, typer.Option(help="reference to evidence")] = "",
    request_id: RequestId = None,
) -> None:
    """Lodge an objection against an application on a public notice."""
    from models.application import ObjectionRequest

    req = ObjectionRequest(
        request_id=request_id or uuid.uuid4().hex,
        actor=_actor(actor, None, Role.PUBLIC, ""),
        text=text,
        contact=contact,
        evidence_ref=evidence,
    )
    result = _api_call(lambda api: api.lodge_objection(application, req))
    console.print(result.message)


@app.command()
def resolve(
    application: Annotated[str, typer.Argument(help="workflow id")],
    objection: Annotated[str, typer.Option(help="objection id, e.g. obj-1")],
    outcome: Annotated[ObjectionOutcome, typer.Option()],
    reason: Annotated[str, typer.Option()],
    actor: ActorId,
    role: Annotated[Role, typer.Option()],
    place: Place,
    actor_name: ActorName = None,
    request_id: RequestId = None,
) -> None:
    """Resolve an objection (the notice's owner): upheld rejects, dismissed goes on."""
    from models.application import ObjectionResolution

    req = ObjectionResolution(
        request_id=request_id or uuid.uuid4().hex,
        actor=_actor(actor, actor_name, role, place),
        objection_id=objection,
        outcome=outcome,
        reason=reason,
    )
    result = _api_call(lambda api: api.resolve_objection(application, req))
    console.print(result.message)


@app.command()
def withdraw(
    application: Annotated[str, typer.Argument(help="workflow id")],
    actor: ActorId,
    place: Place,
    reason: Annotated[str, typer.Option()] = "",
    request_id: RequestId = None,
) -> None:
    """Withdraw an application (the applicant), at any stage before payout."""
    from models.application import WithdrawalRequest

    req = WithdrawalRequest(
        request_id=request_id or uuid.uuid4().hex,
        actor=_actor(actor, None, Role.APPLICANT, place),
        reason=reason,
    )
    result = _api_call(lambda api: api.withdraw(application, req))
    console.print(result.message)


@app.command()
def correct(
    application: Annotated[str, typer.Argument(help="workflow id")],
    actor: ActorId,
    role: Annotated[Role, typer.Option()],
    place: Place,
    set_: Annotated[list[str] | None, typer.Option("--set", help="field=value, repeatable")] = None,
    document: Annotated[
        list[str] | None, typer.Option("--document", help="kind=copies, repeatable")
    ] = None,
    note: Annotated[str, typer.Option()] = "",
    request_id: RequestId = None,
) -> None:
    """Send corrected data or documents after a return for correction."""
    from models.application import CorrectionRequest

    changes = dict(x.split("=", 1) for x in set_ or [])
    docs = {k: int(v) for k, v in (x.split("=", 1) for x in document or [])} or None
    req = CorrectionRequest(
        request_id=request_id or uuid.uuid4().hex,
        actor=_actor(actor, None, role, place),
        changes=changes,
        documents=docs,
        note=note,
    )
    result = _api_call(lambda api: api.correct(application, req))
    console.print(result.message)


@notice_app.command("post")
def notice_post(
    actor: ActorId,
    village: Annotated[
        str | None, typer.Option("--village", help="post the village notice of this village")
    ] = None,
    township: Annotated[
        str | None, typer.Option("--township", help="post the township notice of this township")
    ] = None,
    county: Annotated[
        str | None, typer.Option("--county", help="post the county notice of this county")
    ] = None,
    programme: Annotated[str, typer.Option(help="programme code")] = "county-subsidy",
    season: Annotated[
        SeasonKey | None,
        typer.Option(parser=_season_key, metavar="YEAR[-ROUND]", help="only this season"),
    ] = None,
    actor_name: ActorName = None,
) -> None:
    """Post a notice list now: every application of the programme at the place waiting for it."""
    given = [
        (lvl, c)
        for lvl, c in ((Level.VILLAGE, village), (Level.TOWNSHIP, township), (Level.COUNTY, county))
        if c
    ]
    if len(given) != 1:
        raise fail("give exactly one of --village, --township or --county", 2)
    level, code = given[0]
    prog = BUILTIN_PROGRAMMES.get(programme)
    if prog is None:
        raise fail(f"unknown programme {programme!r} (known: {', '.join(BUILTIN_PROGRAMMES)})", 2)
    notice = next((s for s in prog.steps if isinstance(s, NoticeStep) and s.level is level), None)
    if notice is None:
        raise fail(f"{programme} has no {level.value} notice", 2)
    who = _actor(actor, actor_name, notice.owner, code)
    results = _api_call(
        lambda api: api.post_notices_at(
            level,
            code,
            who,
            notice.stage,
            programme=programme,
            season=season.year if season else None,
            round_=season.round if season else None,
        )
    )
    if not results:
        console.print(
            f"no {programme} application of {code} is waiting for the {notice.label_en} to be posted"
        )
        return
    for wf, r in results:
        console.print(f"{wf}: {getattr(r, 'message', r)}")


@app.command()
def status(
    application: Annotated[str, typer.Argument(help="workflow id")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    trail: Annotated[
        bool, typer.Option("--trail", help="also print the full decision trail")
    ] = False,
) -> None:
    """An application's stage, what it waits for, its dates and (optionally) its trail."""

    async def _go(api: Any) -> tuple[Any, Any]:
        st = await api.status(application)
        return st, (await api.trail(application) if trail else None)

    st, events = _api_call(_go)
    if as_json:
        data = st.model_dump(mode="json")
        if events is not None:
            data["trail"] = [e.model_dump(mode="json") for e in events]
        console.print_json(json.dumps(data, ensure_ascii=False))
        return
    console.print(
        f"[bold]{st.workflow_id}[/bold]  {st.applicant_masked}  stage [bold]{st.stage}[/bold]"
    )
    console.print(st.details_zh)
    console.print(st.details_en)
    if events:
        table = Table("#", "at", "kind", "who", "what")
        for e in events:
            table.add_row(
                str(e.seq),
                e.at.isoformat(timespec="seconds"),
                e.kind,
                f"{e.actor.name} ({e.actor.role.value})",
                e.summary,
            )
        console.print(table)


@funds_app.command("request")
def funds_request(
    county: Annotated[str, typer.Option(help="12-digit county code")],
    season: SeasonOption,
    actor: ActorId,
    programme: Annotated[str, typer.Option()] = "county-subsidy",
    actor_name: ActorName = None,
    request_id: RequestId = None,
) -> None:
    """The county's funds request: every county-approved application not yet requested, with the roster (XLSX)."""
    who = _actor(actor, actor_name, Role.COUNTY_EDUCATION_BUREAU, county)
    summary = _api_call(
        lambda api: api.request_funds(
            programme, season.year, county, who, request_id=request_id, round_=season.round
        )
    )
    console.print(
        f"funds request {summary.request_id}: {summary.count} application(s), {summary.total_cny} CNY"
    )
    console.print(f"roster: {summary.roster_path}")


@funds_app.command("arrived")
def funds_arrived_cmd(
    county: Annotated[str, typer.Option(help="12-digit county code")],
    season: SeasonOption,
    amount: Annotated[int, typer.Option(help="CNY received")],
    reference: Annotated[str, typer.Option(help="the transfer's reference")],
    request: Annotated[str, typer.Option("--request", help="the funds request id")],
    actor: ActorId,
    role: Annotated[Role, typer.Option()] = Role.COUNTY_FINANCE,
    programme: Annotated[str, typer.Option()] = "county-subsidy",
    actor_name: ActorName = None,
) -> None:
    """The funds arrived: release the request's applications for payment (amount must match)."""
    who = _actor(actor, actor_name, role, county)
    result = _api_call(
        lambda api: api.funds_arrived(
            programme, season.year, county, who, request, amount, reference, round_=season.round
        )
    )
    console.print(
        f"released {result.released} application(s); pay by {result.pay_by.isoformat()}; batch {result.batch_id}"
    )


@app.command("correct-account")
def correct_account_cmd(
    application: Annotated[str, typer.Argument(help="workflow id")],
    account: Annotated[str, typer.Option(help="the corrected 一卡通 account number")],
    holder: Annotated[str, typer.Option(help="account holder")],
    bank_name: Annotated[str, typer.Option("--bank")],
    actor: ActorId,
    place: Place,
    request_id: RequestId = None,
) -> None:
    """After a returned payment (退票): the village sends the corrected account; re-paid in a later batch."""
    who = _actor(actor, None, Role.VILLAGE_COMMITTEE, place)
    result = _api_call(
        lambda api: api.correct_account(
            application,
            who,
            bank_name=bank_name,
            account_number=account,
            account_holder=holder,
            request_id=request_id,
        )
    )
    console.print(result.message)


@app.command()
def report(
    county: Annotated[str, typer.Option(help="12-digit county code")],
    season: SeasonOption,
    programme: Annotated[str, typer.Option()] = "county-subsidy",
    out_dir: Annotated[Path | None, typer.Option("--out-dir")] = None,
) -> None:
    """The county's season report (XLSX and Markdown), now."""
    from activities.report import build_report, write_report

    s = settings()
    files = write_report(
        build_report(_engine(s), programme, season.year, county, round_=season.round),
        out_dir or s.files_dir / "reports",
    )
    console.print(f"season report: {files.markdown}\n               {files.xlsx}")


@app.command("list")
def list_(
    stage: Annotated[str | None, typer.Option()] = None,
    village: Annotated[str | None, typer.Option()] = None,
    township: Annotated[str | None, typer.Option()] = None,
    county: Annotated[str | None, typer.Option()] = None,
    programme: Annotated[str | None, typer.Option()] = None,
    season: Annotated[
        SeasonKey | None,
        typer.Option(parser=_season_key, metavar="YEAR[-ROUND]", help="2027: every round"),
    ] = None,
    overdue: Annotated[bool | None, typer.Option("--overdue/--not-overdue")] = None,
    limit: Annotated[int, typer.Option()] = 1000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Applications by stage, place and overdue flag (Temporal visibility)."""

    async def _go(api: Any) -> list[Any]:
        return [
            x
            async for x in api.list(
                stage=stage,
                village=village,
                township=township,
                county=county,
                programme=programme,
                season=season.year if season else None,
                round_=season.round or None if season else None,
                overdue=overdue,
                limit=limit,
            )
        ]

    rows = _api_call(_go)
    if as_json:
        console.print_json(json.dumps([r.__dict__ for r in rows], default=str))
        return
    table = Table(
        "workflow id", "stage", "village", "overdue", "at risk", "next deadline", "status"
    )
    for r in rows:
        table.add_row(
            r.workflow_id,
            r.stage,
            r.village,
            "yes" if r.overdue else "",
            "yes" if r.at_risk else "",
            r.next_deadline.isoformat() if r.next_deadline else "",
            r.status,
        )
    console.print(table)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
