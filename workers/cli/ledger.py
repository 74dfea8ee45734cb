"""The yearly aid ledger (PROCESS.md §4.6) and the lists of aid others decide."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from workers.cli.common import (
    console,
    engine_for,
    fail,
    gateway_call,
    gateway_response,
    grants_app,
    keys_for,
    ledger_app,
    print_import,
    refusal,
    settings,
)


@ledger_app.command("export")
def ledger_export(
    year: Annotated[int, typer.Option(help="the year of aid, e.g. 2027")],
    village: Annotated[str | None, typer.Option(help="12-digit village code")] = None,
    township: Annotated[str | None, typer.Option(help="12-digit township code")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="file to write (default: the ledger's name)")
    ] = None,
) -> None:
    """Every registered-poor student's aid of the year at your key's place (or one
    township or village inside it), from every programme, as a workbook (XLSX)."""
    answer = gateway_call(
        "POST", "/v1/ledgers", params={"year": year, "village": village, "township": township}
    )
    r = gateway_response("GET", answer["xlsx"])
    if r.status_code >= 400:
        raise fail(f"refused: {refusal(r)}")
    target = out or Path(answer["xlsx"].rsplit("/", 1)[-1])
    try:
        target.write_bytes(r.content)
    except OSError as e:
        raise fail(f"cannot write {target}: {e.strerror or e}") from None
    console.print(
        f"{year} 年度学生资助台账 / aid ledger of {answer['place']}: {answer['students']} "
        f"student(s), {answer['lines']} line(s), {answer['total_cny']:,} CNY → {target}"
    )


@grants_app.command("import")
def grants_import(
    file: Annotated[
        Path,
        typer.Argument(help="CSV or XLSX: national_id, name, university, grade, amount_cny"),
    ],
    year: Annotated[int, typer.Option(help="the year the list is of")],
    programme: Annotated[
        str, typer.Option(help="the programme the list records")
    ] = "national-grant",
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad", help="import the good rows, write the bad ones to FILE.rejects.csv"
        ),
    ] = False,
) -> None:
    """Import a university's list of the county's students who received a grant aidflow
    does not decide (identity numbers stored only hashed and masked); importing a list
    again replaces its rows."""
    from store.ledger import import_recorded_aid

    if not file.is_file():
        raise fail(f"no file {file}")
    s = settings()
    keys = keys_for(s)
    report = import_recorded_aid(
        engine_for(s), file, keys.hash_id, programme=programme, year=year, skip_bad=skip_bad
    )
    print_import(report, programme)
    if report.imported and report.not_registered:
        console.print(
            f"[yellow]{report.not_registered} student(s) not on the registry: kept, in no "
            "village's ledger[/yellow]"
        )


@ledger_app.command("coverage")
def ledger_coverage(
    programme: Annotated[str, typer.Option(help="programme code")] = "county-subsidy",
    season: Annotated[str, typer.Option(help="e.g. 2027, or 2027-spring for a round")] = "",
    village: Annotated[str | None, typer.Option(help="12-digit village code")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """应补尽补: per village at your key's place, the registered-poor students the
    programme is for, how many applied and were paid this season, and who has not
    applied (masked identity numbers)."""
    if not season:
        raise fail("--season: the season, e.g. 2027", 2)
    answer = gateway_call(
        "GET",
        "/v1/coverage",
        params={"programme": programme, "season": season, "village": village},
    )
    if as_json:
        console.print_json(json.dumps(answer, ensure_ascii=False))
        return
    if answer["as_of"] is None:
        console.print(
            "no enrolment data yet: aidflow registry import --kind enrolment --as-of DATE FILE"
        )
        return
    table = Table(
        "村 village",
        "符合条件 eligible",
        "已申请 applied",
        "已发放 paid",
        "未申请 not applied",
        title=f"应补尽补 coverage: {programme} {season} (enrolment as of {answer['as_of']})",
    )
    for v in answer["villages"]:
        table.add_row(
            f"{v['village_name']} {v['village_code']}",
            str(v["eligible"]),
            str(v["applied"]),
            str(v["paid"]),
            "、".join(f"{s['name']}（{s['id_masked']}）" for s in v["not_applied"]),
        )
    table.add_row(
        "合计 total", str(answer["eligible"]), str(answer["applied"]), str(answer["paid"]), ""
    )
    console.print(table)
