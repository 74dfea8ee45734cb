"""A cohort's roster and a programme's dated tasks: ``aidflow roster …``, ``aidflow tasks …``.

Each goes to the gateway with the caller's credential (AIDFLOW_API_KEY): the office is
the credential's, never an option (R10).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from workers.cli.common import (
    RequestId,
    SeasonOption,
    console,
    fail,
    gateway_call,
    roster_app,
    tasks_app,
)


@roster_app.command("show")
def roster_show(
    county: Annotated[str, typer.Option(help="12-digit county code")],
    season: SeasonOption,
    programme: Annotated[str, typer.Option()] = "freshman-grant",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Where the cohort's roster stands, whom it waits for until when, each student's stage."""
    view = gateway_call("GET", f"/v1/rosters/{programme}/{season}/{county}")
    if as_json:
        console.print_json(json.dumps(view, ensure_ascii=False))
        return
    console.print(
        f"{view['workflow_id']}: [bold]{view['phase']}[/bold]"
        + (f", waiting for {view['waiting_for']}" if view["waiting_for"] else "")
        + (f" until {view['waiting_until']}" if view["waiting_until"] else "")
        + (" [red]OVERDUE[/red]" if view["overdue"] else "")
    )
    table = Table("application", "stage", "village", "overdue")
    for m in view["members"]:
        table.add_row(m["workflow_id"], m["stage"], m["village"], "yes" if m["overdue"] else "")
    console.print(table)


@roster_app.command("decide")
def roster_decide(
    county: Annotated[str, typer.Option(help="12-digit county code")],
    season: SeasonOption,
    stage: Annotated[str, typer.Option(help="the roster step: civil_affairs_check, …")],
    others: Annotated[
        str,
        typer.Option(
            help="the students not named: approve, from_rolls (the civil-affairs rolls answer), none"
        ),
    ] = "none",
    entries: Annotated[
        Path | None,
        typer.Option(
            help="JSON list of {workflow_id, eligible, category, reason}: the students named one by one"
        ),
    ] = None,
    programme: Annotated[str, typer.Option()] = "freshman-grant",
    request_id: RequestId = None,
) -> None:
    """Your office's word on the roster at one stage (the roster tells each student's application)."""
    named: list[Any] = []
    if entries is not None:
        try:
            named = json.loads(entries.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise fail(f"--entries: {e}", 2) from None
    body: dict[str, Any] = {"stage": stage, "others": others, "entries": named}
    if request_id:
        body["request_id"] = request_id
    d = gateway_call("POST", f"/v1/rosters/{programme}/{season}/{county}/decisions", body)
    console.print(
        f"{d['stage']}: {d['approved']} passed, {d['refused']} not, {d['still_waiting']} still waiting"
        + (f" (civil-affairs rolls as of {d['rolls_snapshot']})" if d.get("rolls_snapshot") else "")
    )


@tasks_app.command("open")
def tasks_open(
    county: Annotated[str, typer.Option(help="12-digit county code")],
    year: Annotated[int, typer.Option()],
    programme: Annotated[str, typer.Option()] = "freshman-grant",
) -> None:
    """The county opens the programme's dated tasks of the year."""
    answer = gateway_call("POST", f"/v1/tasks/{programme}/{year}/{county}")
    console.print(f"tasks open: {answer['tasks_workflow_id']}")


@tasks_app.command("done")
def tasks_done(
    key: Annotated[str, typer.Argument(help="the task's key, e.g. rules_issued")],
    county: Annotated[str, typer.Option(help="12-digit county code")],
    year: Annotated[int, typer.Option()],
    programme: Annotated[str, typer.Option()] = "freshman-grant",
    note: Annotated[str, typer.Option()] = "",
    evidence: Annotated[str, typer.Option(help="the document's number or file hash")] = "",
    request_id: RequestId = None,
) -> None:
    """Your office reports a task done."""
    body: dict[str, Any] = {"note": note, "evidence_ref": evidence}
    if request_id:
        body["request_id"] = request_id
    t = gateway_call("POST", f"/v1/tasks/{programme}/{year}/{county}/{key}/done", body)
    console.print(f"{t['key']} done at {t['done_at']}" + (" (late)" if t["overdue"] else ""))


@tasks_app.command("show")
def tasks_show(
    county: Annotated[str, typer.Option(help="12-digit county code")],
    year: Annotated[int, typer.Option()],
    programme: Annotated[str, typer.Option()] = "freshman-grant",
) -> None:
    """The year's tasks: due, done, overdue."""
    states = gateway_call("GET", f"/v1/tasks/{programme}/{year}/{county}")
    table = Table("task", "任务", "responsible", "due", "done", "overdue")
    for t in states:
        table.add_row(
            t["key"],
            t["label_zh"],
            t["responsible"],
            t["due_at"],
            t["done_at"] or "",
            "[red]yes[/red]" if t["overdue"] else "",
        )
    console.print(table)
