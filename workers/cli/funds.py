"""Funds requests and arrivals, and the season report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from workers.cli.common import (
    RequestId,
    SeasonOption,
    app,
    console,
    download,
    funds_app,
    gateway_call,
)

PANEL = "资金与报告 / Funds and reports"


@funds_app.command("open-season")
def funds_open_season(
    county: Annotated[str, typer.Option(help="12-digit county code")],
    season: SeasonOption,
    programme: Annotated[str, typer.Option()] = "county-subsidy",
    national_opened_on: Annotated[
        str | None,
        typer.Option(
            "--national-opened-on",
            help="YYYY-MM-DD: the day the national system opened the round (required for "
            "a programme whose rounds an office opens: rain-and-dew)",
        ),
    ] = None,
    note: Annotated[str, typer.Option()] = "",
) -> None:
    """The county opens its season now (its reminders run from now, among them the
    villages' coverage reminder before the window closes); its first application opens
    it too, but perhaps too late for that. Rain and Dew's rounds are opened by the county
    poverty office once the national system has (``--national-opened-on``): applications
    are taken from then, and the townships are told."""
    body = (
        {"national_opened_on": national_opened_on, "note": note}
        if national_opened_on is not None
        else None
    )
    answer = gateway_call("POST", f"/v1/seasons/{programme}/{season}/{county}", body)
    console.print(f"season open: {answer['season_workflow_id']}")
    if "opened_at" in answer:
        console.print(
            f"round opened at {answer['opened_at']} by {answer['opened_by']} (national system: "
            f"{answer['national_opened_on']}); townships told: {answer['townships_told']}"
        )


@funds_app.command("request")
def funds_request(
    county: Annotated[str, typer.Option(help="12-digit county code")],
    season: SeasonOption,
    programme: Annotated[str, typer.Option()] = "county-subsidy",
    request_id: RequestId = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="where to write the roster (default: its name, here)"),
    ] = None,
) -> None:
    """The county's funds request: every county-approved application not yet requested, with the roster (XLSX)."""
    base = f"/v1/seasons/{programme}/{season}/{county}/funds-requests"
    summary = gateway_call("POST", base, {"request_id": request_id} if request_id else {})
    console.print(
        f"funds request {summary['request_id']}: {summary['count']} application(s), {summary['total_cny']} CNY"
    )
    if summary.get("roster_path"):
        target = out or Path(Path(summary["roster_path"]).name)
        download(f"{base}/{summary['request_id']}/roster.xlsx", target)
        console.print(f"花名册 / roster: {target}")


@funds_app.command("arrived")
def funds_arrived_cmd(
    county: Annotated[str, typer.Option(help="12-digit county code")],
    season: SeasonOption,
    amount: Annotated[int, typer.Option(help="CNY received")],
    reference: Annotated[str, typer.Option(help="the transfer's reference")],
    request: Annotated[str, typer.Option("--request", help="the funds request id")],
    programme: Annotated[str, typer.Option()] = "county-subsidy",
) -> None:
    """The funds arrived: release the request's applications for payment (amount must match)."""
    result = gateway_call(
        "POST",
        f"/v1/seasons/{programme}/{season}/{county}/funds-arrivals",
        {"funds_request_id": request, "amount_cny": amount, "reference": reference},
    )
    console.print(
        f"released {result['released']} application(s); pay by {result['pay_by']}; batch {result['batch_id']}"
    )


@app.command(rich_help_panel=PANEL)
def report(
    county: Annotated[str, typer.Option(help="12-digit county code")],
    season: SeasonOption,
    programme: Annotated[str, typer.Option()] = "county-subsidy",
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="where to write the report's two files")
    ] = Path("."),
) -> None:
    """The county's season report (XLSX and Markdown), built now by the gateway."""
    files = gateway_call("POST", f"/v1/seasons/{programme}/{season}/{county}/reports")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [
        download(files["downloads"][kind], out_dir / files["downloads"][kind].rsplit("/", 1)[-1])
        for kind in ("markdown", "xlsx")
    ]
    console.print("季度报表 / season report: " + ", ".join(str(p) for p in written))
