"""Applications and the requests services send them: intake, decisions, objections,
corrections, withdrawals, account corrections; status and lists."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from models.domain import DecisionKind, ObjectionOutcome
from models.season import SeasonKey
from workers.cli.common import (
    RequestId,
    app,
    console,
    fail,
    gateway_call,
    gateway_request,
    season_key,
    settings,
)

PANEL = "申请与请求 / Applications and requests"


@app.command(rich_help_panel=PANEL)
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
    from workers.forms import read_forms

    rows = read_forms(file)
    if received_at is not None and settings().api_key is None:
        raise fail("--received-at: only an office dates paper forms; set AIDFLOW_API_KEY", 2)
    at: datetime | None = None
    if received_at is not None:
        try:
            at = datetime.fromisoformat(received_at)
        except ValueError:
            raise fail(f"--received-at {received_at!r} is not an ISO-8601 instant", 2) from None
        if at.tzinfo is None:
            raise fail("--received-at needs an offset, e.g. 2027-08-10T10:00+08:00", 2)

    # Each row to the gateway, which runs intake (R5) on the server.
    results: list[dict[str, Any]] = []
    for n, row in rows:
        body = {"form": row, **({"received_at": at.isoformat()} if at else {})}
        ok, answer = gateway_request("POST", "/v1/applications", body)
        if ok:
            results.append({"row": n, "accepted": True, "workflow_id": answer["workflow_id"]})
        else:
            results.append({"row": n, "accepted": False, "reason": answer})
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


@app.command(rich_help_panel=PANEL)
def decide(
    application: Annotated[str, typer.Argument(help="workflow id")],
    stage: Annotated[str, typer.Option()],
    decision: Annotated[DecisionKind, typer.Option()],
    reason: Annotated[str, typer.Option()] = "",
    request_id: RequestId = None,
) -> None:
    """Take a review decision: approve, reject or return (for correction)."""
    result = gateway_call(
        "POST",
        f"/v1/applications/{application}/decisions",
        {
            "request_id": request_id or uuid.uuid4().hex,
            "stage": stage,
            "decision": decision.value,
            "reason": reason,
        },
    )
    console.print(f"{result['message']} (request {result['request_id']})")


@app.command("object", rich_help_panel=PANEL)
def object_(
    application: Annotated[str, typer.Argument(help="workflow id")],
    text: Annotated[str, typer.Option(help="the objection")],
    contact: Annotated[str, typer.Option()] = "",
    evidence: Annotated[str, typer.Option(help="reference to evidence")] = "",
    request_id: RequestId = None,
) -> None:
    """Lodge an objection against an application on a public notice (no credential needed)."""
    result = gateway_call(
        "POST",
        f"/v1/applications/{application}/objections",
        {
            "request_id": request_id or uuid.uuid4().hex,
            "text": text,
            "contact": contact,
            "evidence_ref": evidence,
        },
        anonymous=True,
    )
    console.print(result["message"])


@app.command(rich_help_panel=PANEL)
def resolve(
    application: Annotated[str, typer.Argument(help="workflow id")],
    objection: Annotated[str, typer.Option(help="objection id, e.g. obj-1")],
    outcome: Annotated[ObjectionOutcome, typer.Option()],
    reason: Annotated[str, typer.Option()],
    request_id: RequestId = None,
) -> None:
    """Resolve an objection (the notice's owner): upheld rejects, dismissed goes on."""
    result = gateway_call(
        "POST",
        f"/v1/applications/{application}/objection-resolutions",
        {
            "request_id": request_id or uuid.uuid4().hex,
            "objection_id": objection,
            "outcome": outcome.value,
            "reason": reason,
        },
    )
    console.print(result["message"])


@app.command(rich_help_panel=PANEL)
def withdraw(
    application: Annotated[str, typer.Argument(help="workflow id")],
    reason: Annotated[str, typer.Option()] = "",
    request_id: RequestId = None,
) -> None:
    """Withdraw an application (the applicant), at any stage before payout."""
    result = gateway_call(
        "POST",
        f"/v1/applications/{application}/withdrawal",
        {"request_id": request_id or uuid.uuid4().hex, "reason": reason},
    )
    console.print(result["message"])


@app.command(rich_help_panel=PANEL)
def cancel(
    application: Annotated[str, typer.Argument(help="workflow id")],
    reason: Annotated[str, typer.Option(help="what the report or objection proved")],
    report_ref: Annotated[
        str, typer.Option("--report-ref", help="the report's or objection's reference")
    ] = "",
    request_id: RequestId = None,
) -> None:
    """Cancel a grant a report proved true (the programme's office, e.g. the county
    poverty office): before payment the application ends cancelled; once paid, the
    amount goes onto the recovery list."""
    result = gateway_call(
        "POST",
        f"/v1/applications/{application}/cancellation",
        {
            "request_id": request_id or uuid.uuid4().hex,
            "reason": reason,
            "report_ref": report_ref,
        },
    )
    console.print(result["message"])


@app.command(rich_help_panel=PANEL)
def recovered(
    application: Annotated[str, typer.Argument(help="workflow id")],
    amount: Annotated[int, typer.Option(help="CNY recovered (the amount paid)")],
    reference: Annotated[str, typer.Option(help="the refund receipt's reference")],
    request_id: RequestId = None,
) -> None:
    """Mark a cancelled, paid grant's money recovered: off the open recovery list."""
    result = gateway_call(
        "POST",
        f"/v1/applications/{application}/recovery",
        {
            "request_id": request_id or uuid.uuid4().hex,
            "amount_cny": amount,
            "reference": reference,
        },
    )
    console.print(result["message"])


@app.command(rich_help_panel=PANEL)
def correct(
    application: Annotated[str, typer.Argument(help="workflow id")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="field=value, repeatable")] = None,
    document: Annotated[
        list[str] | None, typer.Option("--document", help="kind=copies, repeatable")
    ] = None,
    note: Annotated[str, typer.Option()] = "",
    request_id: RequestId = None,
) -> None:
    """Send corrected data or documents after a return for correction."""
    try:
        changes = dict(x.split("=", 1) for x in set_ or [])
        docs = {k: int(v) for k, v in (x.split("=", 1) for x in document or [])} or None
    except ValueError:
        raise fail("--set takes field=value and --document kind=copies", 2) from None
    body: dict[str, Any] = {
        "request_id": request_id or uuid.uuid4().hex,
        "changes": changes,
        "note": note,
    }
    if docs is not None:
        body["documents"] = docs
    result = gateway_call("POST", f"/v1/applications/{application}/corrections", body)
    console.print(result["message"])


@app.command("correct-account", rich_help_panel=PANEL)
def correct_account_cmd(
    application: Annotated[str, typer.Argument(help="workflow id")],
    account: Annotated[str, typer.Option(help="the corrected 一卡通 account number")],
    holder: Annotated[str, typer.Option(help="account holder")],
    bank_name: Annotated[str, typer.Option("--bank")],
    request_id: RequestId = None,
) -> None:
    """After a returned payment (退票): the village sends the corrected account; re-paid in a later batch."""
    result = gateway_call(
        "POST",
        f"/v1/applications/{application}/account",
        {
            "request_id": request_id or uuid.uuid4().hex,
            "bank_name": bank_name,
            "account_number": account,
            "account_holder": holder,
        },
    )
    console.print(result["message"])


@app.command(rich_help_panel=PANEL)
def status(
    application: Annotated[str, typer.Argument(help="workflow id")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    trail: Annotated[
        bool, typer.Option("--trail", help="also print the full decision trail")
    ] = False,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="ask the workflow itself (a query) rather than read what it has recorded",
        ),
    ] = False,
) -> None:
    """An application's stage, what it waits for, its dates and (optionally) its trail,
    as recorded (its newest event), or --live from the workflow."""
    q = "?live=true" if live else ""
    st = gateway_call("GET", f"/v1/applications/{application}{q}")
    events = gateway_call("GET", f"/v1/applications/{application}/trail{q}") if trail else None
    if as_json:
        console.print_json(
            json.dumps(
                {**st, **({"trail": events} if events is not None else {})}, ensure_ascii=False
            )
        )
        return
    console.print(
        f"[bold]{st['workflow_id']}[/bold]  {st['applicant_masked']}  stage [bold]{st['stage']}[/bold]",
        highlight=False,
    )
    console.print(st["details_zh"], highlight=False)
    console.print(st["details_en"], highlight=False)
    if events:
        table = Table("#", "at", "kind", "who", "what")
        for e in events:
            table.add_row(
                str(e["seq"]),
                e["at"],
                e["kind"],
                f"{e['actor']['name']} ({e['actor']['role']})",
                e["summary"],
            )
        console.print(table)


@app.command("list", rich_help_panel=PANEL)
def list_(
    stage: Annotated[str | None, typer.Option()] = None,
    village: Annotated[str | None, typer.Option()] = None,
    township: Annotated[str | None, typer.Option()] = None,
    programme: Annotated[str | None, typer.Option()] = None,
    season: Annotated[
        SeasonKey | None,
        typer.Option(parser=season_key, metavar="YEAR[-ROUND]", help="2027: every round"),
    ] = None,
    overdue: Annotated[bool | None, typer.Option("--overdue/--not-overdue")] = None,
    limit: Annotated[int, typer.Option()] = 1000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Applications at your office's place, by stage, place inside it and overdue flag."""
    rows = gateway_call(
        "GET",
        "/v1/applications",
        params={
            "stage": stage,
            "village": village,
            "township": township,
            "programme": programme,
            "season": str(season) if season else None,
            "overdue": None if overdue is None else str(overdue).lower(),
            "limit": limit,
        },
    )
    if as_json:
        console.print_json(json.dumps(rows, ensure_ascii=False))
        return
    table = Table(
        "workflow id", "stage", "village", "overdue", "at risk", "next deadline", "status"
    )
    for r in rows:
        table.add_row(
            r["workflow_id"],
            r["stage"],
            r["village"],
            "yes" if r["overdue"] else "",
            "yes" if r["at_risk"] else "",
            r["next_deadline"] or "",
            r["status"],
        )
    console.print(table)
