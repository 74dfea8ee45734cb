"""Configuration, the database, imports of places and the registry, the audit log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from workers.cli.common import (
    audit_app,
    config_app,
    console,
    db_app,
    download,
    engine_for,
    err,
    fail,
    gateway_call,
    keys_for,
    places_app,
    print_import,
    registry_app,
    settings,
)

PANEL = "数据 / Data"


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
    from store.db import current_revision, upgrade
    from workers.settings import mask_url

    s = settings()
    upgrade(s.effective_database_url)
    console.print(
        f"database {mask_url(s.effective_database_url)} at revision {current_revision(s.effective_database_url)}"
    )


# ------------------------------------------------------------------ data and audit


@registry_app.command("import")
def registry_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="poor-households (CSV): household_no, head_name, member_ids (;-separated), "
            "county_code, township_code, village_code, status, year; enrolment and "
            "vocational-enrolment (CSV or XLSX): national_id, name, school, education_level, "
            "year_of_study; civil-affairs (CSV or XLSX): national_id, name, category"
        ),
    ],
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="poor-households (the county poverty office's registry: its latest round, "
            "dated by --as-of, default today), enrolment (who studies at which level: a dated "
            "snapshot), vocational-enrolment (the vocational enrolment registry, 中职/高职: a "
            "dated snapshot) or civil-affairs (the civil-affairs bureau's rolls of a county: a "
            "dated snapshot)",
        ),
    ] = "poor-households",
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="a snapshot's date (YYYY-MM-DD)"),
    ] = None,
    county: Annotated[
        str | None,
        typer.Option("--county", help="civil-affairs: the 12-digit county code of the rolls"),
    ] = None,
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad", help="import the good rows, write the bad ones to FILE.rejects.csv"
        ),
    ] = False,
) -> None:
    """Import a registry (identity numbers stored only hashed and masked): the registered
    poor households, a dated snapshot of enrolment data or of the vocational enrolment
    registry (coverage and Rain and Dew's cross-check read the newest), or of a county's
    civil-affairs rolls (the freshman grant's check reads the newest)."""
    from datetime import date

    kinds = ("poor-households", "enrolment", "vocational-enrolment", "civil-affairs")
    if kind not in kinds:
        raise fail(f"--kind: {kind!r} is not {', '.join(kinds[:-1])} or {kinds[-1]}", 2)
    if not file.is_file():
        raise fail(f"no file {file}")
    s = settings()
    keys = keys_for(s)
    try:
        day = (
            None if as_of is None and kind == "poor-households" else date.fromisoformat(as_of or "")
        )
    except ValueError:
        raise fail("--as-of: the snapshot's date, YYYY-MM-DD", 2) from None
    if kind == "poor-households":
        from store.importing import import_registry

        print_import(
            import_registry(engine_for(s), file, keys.hash_id, as_of=day, skip_bad=skip_bad),
            "registry",
        )
        return
    from store.coverage import import_enrolment

    if day is None:
        raise fail("--as-of: the snapshot's date, YYYY-MM-DD", 2)
    if kind == "civil-affairs":
        from store.rolls import import_rolls

        if county is None or not (county.isdigit() and len(county) == 12):
            raise fail("--county: the rolls' 12-digit county code", 2)
        print_import(
            import_rolls(
                engine_for(s), file, keys.hash_id, county_code=county, as_of=day, skip_bad=skip_bad
            ),
            f"civil-affairs rolls of {county} as of {day}",
        )
        return
    register: Literal["enrolment", "vocational"] = (
        "vocational" if kind == "vocational-enrolment" else "enrolment"
    )
    print_import(
        import_enrolment(
            engine_for(s), file, keys.hash_id, as_of=day, register=register, skip_bad=skip_bad
        ),
        f"{kind} as of {day}",
    )


@places_app.command("import")
def places_import(
    file: Annotated[
        Path,
        typer.Argument(help="CSV: code, name, level, parent_code[, contact_email, contact_phone]"),
    ],
    skip_bad: Annotated[bool, typer.Option("--skip-bad")] = False,
) -> None:
    """Import places (12-digit division codes) and their offices' contacts."""
    from store.importing import import_places

    print_import(import_places(engine_for(settings()), file, skip_bad=skip_bad), "places")


@audit_app.command("verify")
def audit_verify(
    season: Annotated[int | None, typer.Option()] = None,
    programme: Annotated[str | None, typer.Option()] = None,
    database: Annotated[
        bool,
        typer.Option(
            "--database",
            help=(
                "check the chains in the database here, with the deployment's key, without "
                "the gateway (and so without comparing them with the workflow histories)"
            ),
        ),
    ] = False,
) -> None:
    """Check every application's keyed hash chain, and (through the gateway) each chain's
    head against the one its workflow history recorded; name the first break of each."""
    if database:
        from store.audit import verify

        s = settings()
        local = verify(engine_for(s), keys_for(s).audit, season=season, programme=programme)
        chains, rows, breaks, seen = local.chains, local.rows, [str(b) for b in local.breaks], ""
    else:
        answer = gateway_call(
            "GET", "/v1/audit/verify", params={"season": season, "programme": programme}
        )
        chains, rows = answer["chains"], answer["rows"]
        from store.audit import Break

        # Read as the local check prints them: a sealed row's break names its row alone.
        breaks = [str(Break(**b)) for b in answer["breaks"]]
        seen = f", each matching its workflow history ({chains})"
    if not breaks:
        console.print(f"audit log intact: {chains} application(s), {rows} row(s){seen}")
        return
    for b in breaks:
        err.print(f"BROKEN {b}", highlight=False)
    raise fail(f"audit log broken in {len(breaks)} of {chains} application(s)")


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option("--out", help="file to write")],
    fmt: Annotated[str, typer.Option("--format", help="csv or xlsx")] = "csv",
    season: Annotated[int | None, typer.Option()] = None,
    programme: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Export your county's audit log for an auditor (CSV or XLSX), through the gateway."""
    if fmt not in ("csv", "xlsx"):
        raise fail("--format must be csv or xlsx", 2)
    params = {"format": fmt, "season": season, "programme": programme}
    download("/v1/audit/export", out, params=params)
    console.print(f"wrote the audit log ({out.stat().st_size:,} bytes) to {out}")


# ---------------------------------------------------------------------------- plan
