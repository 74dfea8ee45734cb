"""Running aidflow: the embedded stack, a worker, the demo and the what-if simulator."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.panel import Panel

from models.season import SeasonKey, season_label
from workers.cli.common import (
    app,
    console,
    err,
    fail,
    run,
    season_key,
    settings,
    setup_logging,
)
from workers.settings import Settings

PANEL = "运行 / Run"


@app.command(rich_help_panel=PANEL)
def up() -> None:
    """Start the embedded stack: Temporal dev server + Web UI, database, worker."""
    from workers.deployment import WrongDatabase
    from workers.embedded import StackError

    s = settings()
    setup_logging(s)
    try:
        run(_up(s))
    except (StackError, WrongDatabase) as e:
        raise fail(str(e)) from None
    except asyncio.CancelledError:  # SIGINT/SIGTERM while starting: nothing left running
        console.print("stopped while starting.")


async def _up(s: Settings) -> None:
    from workers import heap
    from workers.embedded import embedded_stack
    from workers.settings import mask_url

    async with embedded_stack(s) as stack:
        heap.settle()  # the worker built: this process's collector set once (heap.py)
        gateway = None
        if s.api_port:
            from workers.gateway.serving import serve_gateway

            gateway = asyncio.create_task(serve_gateway(stack.client, s, stack.stop))
        console.print(
            Panel.fit(
                f"[bold]Temporal Web UI[/bold]  {stack.server.ui_url}\n"
                f"[bold]Temporal gRPC[/bold]    {stack.server.address}  (namespace {s.temporal_namespace}, task queue {s.task_queue})\n"
                f"[bold]HTTP API[/bold]         "
                + (
                    f"http://{s.api_host}:{s.api_port}  (OpenAPI /openapi.json)"
                    if s.api_port
                    else "off"
                )
                + "\n"
                f"[bold]Database[/bold]         {mask_url(s.effective_database_url)}\n"
                f"[bold]Worker metrics[/bold]   "
                + (f"http://localhost:{s.metrics_port}/metrics" if s.metrics_port else "off")
                + f"\n[bold]Data dir[/bold]         {s.data_dir.resolve()}\n\nCtrl-C stops everything.",
                title="aidflow is up",
            )
        )
        await stack.stop.wait()
        console.print("stopping…")
        if gateway is not None:
            await gateway
    console.print("stopped.")


@app.command(rich_help_panel=PANEL)
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
    from models.programmes import CASE_REGISTRY, REGISTRY
    from workers.demo import run_demo
    from workers.embedded import StackError

    if programme == "cadre-pairing":
        _demo_pairing(applicants, day_seconds, seed, exit_when_done)
        return
    if programme not in REGISTRY:
        known = [*REGISTRY, "cadre-pairing"]
        if programme in CASE_REGISTRY:
            raise fail(
                f"--programme: the demo runs cadre-pairing among the cases, not {programme}", 2
            )
        raise fail(f"--programme: unknown {programme!r} (known: {', '.join(known)})", 2)

    s = settings()
    # The live table owns the terminal; logs go to a file in the demo's data dir.
    s = s.model_copy(update={"log_level": "WARNING"})
    setup_logging(s)
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


def _demo_pairing(households: int, day_seconds: float, seed: int, exit_when_done: bool) -> None:
    """A pairing year live: ``--applicants`` households (8 if left at 50), three cadres each."""
    from workers.demo_cases import run_case_demo
    from workers.embedded import StackError

    s = settings().model_copy(update={"log_level": "WARNING"})
    setup_logging(s)
    try:
        result = run(
            run_case_demo(
                s,
                households=8 if households == 50 else households,
                day_seconds=day_seconds if day_seconds != 10.0 else 0.5,
                seed=seed,
                console=console,
                exit_when_done=exit_when_done,
            )
        )
    except StackError as e:
        raise fail(str(e)) from None
    if not result.statuses or set(result.statuses.values()) != {"year_ended"}:
        raise fail("the demo stopped before the year was over")
    console.print(
        f"结对帮扶年度结束 / the pairing year is over: {len(result.statuses)} cases closed"
    )


NEXT_SEASON = SeasonKey(year=2027)


@app.command(rich_help_panel=PANEL)
def simulate(
    applications: Annotated[
        int | None,
        typer.Option(help="synthetic applicants (1,000); for cadre-pairing, households (904)"),
    ] = None,
    departments: Annotated[
        int, typer.Option(help="cadre-pairing: the departments whose cadres pair")
    ] = 67,
    season: Annotated[
        SeasonKey,
        typer.Option(
            parser=season_key,
            metavar="YEAR[-ROUND]",
            help="a season still to come: 2027, or a round of it (2027-undergraduate)",
        ),
    ] = NEXT_SEASON,
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

    from models.programmes import CASE_REGISTRY
    from workers import heap
    from workers.client import Refused
    from workers.embedded import StackError
    from workers.simulate import (
        Scenario,
        SeasonSimulation,
        SimulationStalled,
        print_result,
        result_json,
        rounds_to_run,
        run_simulation,
    )

    if programme in CASE_REGISTRY:
        households = 904 if applications is None else applications
        _simulate_pairing(programme, households, departments, season, seed, as_json)
        return
    if applications is None:
        applications = 1000
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
    elif season.round:
        try:
            REGISTRY[programme].for_round(season.round)
        except ValueError as e:
            problems.append(f"--season: {e}")
    if officials_delay < 0:
        problems.append("--officials-delay must not be negative")
    if funds_delay < 0:
        problems.append("--funds-delay must not be negative")
    if problems:
        raise fail("; ".join(problems), 2)
    # A programme with rounds and no round named: each round of the year, one after the
    # other (Rain and Dew's spring and autumn, the freshman grant's two cohorts).
    rounds = rounds_to_run(REGISTRY[programme], season.round)
    scenarios = [
        Scenario(
            programme=programme,
            applications=applications,
            season=season.year,
            round=round_,
            seed=seed,
            officials_delay=officials_delay,
            objection_rate=objection_rate,
            objection_upheld=objection_upheld,
            return_rate=return_rate,
            rejection_rate=rejection_rate,
            bank_return_rate=bank_return_rate,
            funds_delay_days=funds_delay,
        )
        for round_ in rounds
    ]
    s = settings().model_copy(update={"log_level": "WARNING"})
    setup_logging(s)
    tz = s.build_calendar().tz
    results = []
    for scenario in scenarios:
        label = season_label(scenario.season, scenario.round)
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

            def progress(sim: SeasonSimulation, task: Any = task, label: str = label) -> None:
                settled = sum(1 for a in sim.apps if a.terminal)
                bar.update(
                    task,
                    completed=settled,
                    description=f"season {label} · {sim.now.astimezone(tz):%Y-%m-%d}",
                    info=f"{sim.clocks.fast_forwards} fast-forwards",
                )

            data_dir = s.data_dir / "simulate" / (scenario.round or "season")
            heap.settle()  # all imported: this process's collector set once (heap.py)
            try:
                results.append(
                    run(run_simulation(scenario, s, data_dir=data_dir, progress=progress))
                )
            except (StackError, Refused, SimulationStalled) as e:
                raise fail(str(e)) from None
    if as_json:
        if len(results) == 1:
            console.print_json(result_json(results[0]))
        else:  # each round's result, in order
            console.print_json("[" + ",".join(result_json(r) for r in results) + "]")
    else:
        for result in results:
            if len(results) > 1:
                console.rule(
                    f"{programme} {season_label(result.scenario.season, result.scenario.round)}"
                )
            print_result(result, console)


def _simulate_pairing(
    programme: str, households: int, departments: int, season: SeasonKey, seed: int, as_json: bool
) -> None:
    """A pairing year at the plan's size: each cadre's obligations met and missed."""
    import dataclasses
    import json

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from workers.simulate.cases import PairingScenario, run_pairing_simulation

    if programme != "cadre-pairing":
        raise fail(f"--programme: {programme} is a case programme simulate does not run yet", 2)
    if households < 1 or departments < 1:
        raise fail("--applications (households) and --departments must be at least 1", 2)
    scenario = PairingScenario(
        households=households, departments=departments, year=season.year, seed=seed
    )
    s = settings().model_copy(update={"log_level": "WARNING"})
    setup_logging(s)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task(f"pairing {season.year}: opening {households} cases", total=9)

        def progress(month: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"pairing · {month}")

        result = run(
            run_pairing_simulation(
                scenario, s, data_dir=s.data_dir / "simulate" / "pairing", progress=progress
            )
        )
    if as_json:
        console.print_json(json.dumps(dataclasses.asdict(result), default=str))
        return
    console.print(
        f"结对帮扶 {season.year}：{result.cases} 户、{result.cadres} 名干部、{departments} 个部门 / "
        f"cadre pairing {season.year}: {result.cases} households, {result.cadres} cadres, "
        f"{departments} departments; {result.contacts:,} contacts logged; "
        f"{result.wall_seconds:.0f} s wall time, {result.fast_forwards:,} fast-forwards"
    )
    table = Table(title="义务完成情况 / obligations (periods, all cadres)")
    for col in ("obligation", "met / 完成", "missed / 未完成"):
        table.add_column(col)
    for key in sorted({*result.met, *result.missed}):
        table.add_row(key, f"{result.met.get(key, 0):,}", f"{result.missed.get(key, 0):,}")
    console.print(table)
    worst = sorted(result.departments, key=lambda d: -d[3])[:10]
    dept = Table(title="部门（未完成最多的十个） / departments, most missed first")
    for col in ("department", "cadres", "met", "missed"):
        dept.add_column(col)
    for unit, cadres, met, missed in worst:
        dept.add_row(unit, str(cadres), f"{met:,}", f"{missed:,}")
    console.print(dept)
    console.print(f"closed: {result.closed}")


@app.command(rich_help_panel=PANEL)
def worker() -> None:
    """Run a worker against the configured Temporal cluster and database (production)."""
    from store.db import schema_problem
    from workers import heap
    from workers.deployment import WrongDatabase
    from workers.logs import get_logger
    from workers.settings import mask_url
    from workers.worker import MetricsPortTaken, connect, make_runtime, running_worker

    s = settings()
    setup_logging(s)
    s.check_deployment()
    # Refuse at once rather than fail every activity (and the outbox every 2 s).
    problem = schema_problem(s.effective_database_url)
    if problem:
        raise fail(f"{mask_url(s.effective_database_url)}: {problem}")

    async def _main() -> None:
        try:
            runtime = make_runtime(s.metrics_port)
        except MetricsPortTaken as e:
            raise fail(str(e)) from None
        try:
            client = await connect(s, runtime)
        except Exception as e:
            raise fail(f"cannot connect to Temporal at {s.temporal_address}: {e}") from None
        async with running_worker(client, s) as (_, stop):
            heap.settle()  # built and running: this process's collector set once (heap.py)
            get_logger().info(
                "worker started",
                address=s.temporal_address,
                namespace=s.temporal_namespace,
                task_queue=s.task_queue,
                metrics_port=s.metrics_port,
                bank=s.bank,  # the simulated bank answers every file "paid": said at start
            )
            await stop.wait()

    try:
        run(_main())
    except WrongDatabase as e:
        raise fail(str(e)) from None
