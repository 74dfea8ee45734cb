"""The yearly aid ledger (PROCESS.md §4.6) and the lists of aid others decide."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from workers.cli.common import (
    console,
    engine_for,
    fail,
    gateway_call,
    gateway_response,
    grants_app,
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
    from store.sealing import Keys

    if not file.is_file():
        raise fail(f"no file {file}")
    s = settings()
    keys = Keys(s.secret_key_bytes())
    report = import_recorded_aid(
        engine_for(s), file, keys.hash_id, programme=programme, year=year, skip_bad=skip_bad
    )
    print_import(report, programme)
    if report.imported and report.not_registered:
        console.print(
            f"[yellow]{report.not_registered} student(s) not on the registry: kept, in no "
            "village's ledger[/yellow]"
        )
