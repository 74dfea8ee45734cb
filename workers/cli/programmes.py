"""The programme registry and the season planner."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from models.calendar import CalendarDataMissing, NoticeCounting, ScheduleFileError, notice_period
from models.planner import SeasonPlan, plan_season
from models.programmes import BUILTIN_PROGRAMMES
from models.season import SeasonKey, season_label
from workers.cli.common import (
    app,
    console,
    fail,
    season_key,
    settings,
)

PANEL = "项目与计划 / Programmes and plans"


@app.command(rich_help_panel=PANEL)
def programmes(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The programme registry: every programme aidflow runs, and what it does today."""
    from models.compact import RELEASED, released_name
    from models.programmes import CASE_REGISTRY, REGISTRY

    rows: list[dict[str, Any]] = []
    for p in REGISTRY.values():
        latest = p.amounts[-1]
        # The name an application's start event shows for it (models/programmes/released/),
        # each round's where it has rounds.
        variants = [p.for_round(r.key) for r in p.rounds] or [p]
        names = [released_name(v) for v in variants]
        rows.append(
            {
                "code": p.code,
                "name_zh": p.name_zh,
                "name_en": p.name_en,
                "kind": p.kind,
                "rounds": [r.key for r in p.rounds] or ["(one a year)"],
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
                "released_as": [n if n in RELEASED else f"{n} (not released)" for n in names],
            }
        )
    # The help that is a case, not an application (PROCESS.md §5): a group's duties.
    for c in CASE_REGISTRY.values():
        name = released_name(c)
        rows.append(
            {
                "code": c.code,
                "name_zh": c.name_zh,
                "name_en": c.name_en,
                "kind": c.kind,
                "opened_by": [r.value for r in c.opened_by],
                "group": [str(m) for m in c.group],
                "obligations": [
                    f"{o.key}: {o.label_en}"
                    + (f" (every {o.every})" if o.every else "")
                    + (f" (every {o.every_days} days)" if o.every_days else "")
                    for o in c.obligations
                ],
                "closes_on": [o.outcome for o in c.closes_on]
                + (["year_end"] if c.ends_with_year else []),
                "source": c.source,
                "does_today": c.description_en,
                "released_as": [name if name in RELEASED else f"{name} (not released)"],
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
        if r["kind"] == "case":
            table.add_row(
                r["code"],
                f"{r['name_zh']}\n{r['name_en']}",
                "case",
                "",
                "opened by "
                + ", ".join(r["opened_by"])
                + "; duties: "
                + ("; ".join(r["obligations"]) or "none")
                + " → "
                + " / ".join(r["closes_on"]),
                "",
                f"{r['does_today']}\n[dim]{r['source']}[/dim]\n[dim]released as "
                + ", ".join(r["released_as"])
                + "[/dim]",
            )
            continue
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
            f"{r['does_today']}\n[dim]{r['source']}[/dim]\n[dim]released as "
            + ", ".join(r["released_as"])
            + "[/dim]",
        )
    console.print(table)


@app.command(rich_help_panel=PANEL)
def plan(
    programme: Annotated[str, typer.Option(help="programme code")] = "county-subsidy",
    season: Annotated[
        SeasonKey | None,
        typer.Option(
            parser=season_key, metavar="YEAR[-ROUND]", help="the season: 2026, 2027-spring"
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
        # No round named for a programme with rounds: each round of the year.
        rounds = [season.round] if season.round or not prog.rounds else [r.key for r in prog.rounds]
        try:
            results = [plan_season(prog.for_round(r), season.year, cal) for r in rounds]
        except ValueError as e:
            raise fail(str(e), 2) from None
    except CalendarDataMissing as e:
        raise fail(str(e)) from None
    if as_json:
        if len(results) == 1:
            console.print_json(plan_json(results[0]))
        else:
            console.print_json("[" + ",".join(plan_json(r) for r in results) + "]")
    else:
        for result in results:
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


@app.command("release-programmes", rich_help_panel=PANEL)
def release_programmes() -> None:
    """Write the released file of every definition in force that has none (models/programmes/released/).

    An application carries a released definition by its name alone; the file is kept for
    as long as a history names it: never edit nor delete one, commit the new ones."""
    from models.compact import RELEASED_DIR
    from models.programmes import unreleased

    missing = unreleased()
    RELEASED_DIR.mkdir(parents=True, exist_ok=True)
    for key, bare in sorted(missing.items()):
        path = RELEASED_DIR / f"{key}.json"
        path.write_text(
            json.dumps(bare, ensure_ascii=False, indent=1, sort_keys=True) + "\n", "utf-8"
        )
        console.print(f"released {path}")
    if not missing:
        console.print("every definition in force is released")
