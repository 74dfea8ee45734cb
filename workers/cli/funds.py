"""Funds requests and arrivals, and the season report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from models.domain import Role
from workers.cli.common import (
    ActorId,
    ActorName,
    RequestId,
    SeasonOption,
    api_call,
    app,
    console,
    engine_for,
    funds_app,
    make_actor,
    settings,
)

PANEL = "资金与报告 / Funds and reports"


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
    who = make_actor(actor, actor_name, Role.COUNTY_EDUCATION_BUREAU, county)
    summary = api_call(
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
    who = make_actor(actor, actor_name, role, county)
    result = api_call(
        lambda api: api.funds_arrived(
            programme, season.year, county, who, request, amount, reference, round_=season.round
        )
    )
    console.print(
        f"released {result.released} application(s); pay by {result.pay_by.isoformat()}; batch {result.batch_id}"
    )


@app.command(rich_help_panel=PANEL)
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
        build_report(engine_for(s), programme, season.year, county, round_=season.round),
        out_dir or s.files_dir / "reports",
    )
    console.print(f"season report: {files.markdown}\n               {files.xlsx}")
