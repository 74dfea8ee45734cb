"""Public notices: an office posts its list."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from models.domain import Level
from models.programmes import BUILTIN_PROGRAMMES
from models.season import SeasonKey
from workers.cli.common import (
    console,
    fail,
    gateway_call,
    notice_app,
    season_key,
    settings,
)

PANEL = "公示 / Notices"


@notice_app.command("post")
def notice_post(
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
        typer.Option(parser=season_key, metavar="YEAR[-ROUND]", help="only this season"),
    ] = None,
    photo: Annotated[
        list[Path] | None,
        typer.Option(
            "--photo",
            exists=True,
            dir_okay=False,
            help="a photograph or scan of the posted list (JPEG, PNG or PDF); repeatable",
        ),
    ] = None,
) -> None:
    """Post a notice now: every application of the programme at the place waiting for it
    is on this posting."""
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
    notice = prog.notice_at(level)
    if notice is None:
        raise fail(f"{programme} has no {level.value} notice", 2)
    if settings().api_key is None:
        raise fail("no credential: set AIDFLOW_API_KEY to the notice owner's API key", 2)
    evidence = [_evidence(p) for p in photo or []]
    results = gateway_call(
        "POST",
        "/v1/notices/postings",
        {
            "programme": programme,
            "level": level.value,
            "place_code": code,
            "season": str(season) if season else None,
            "evidence": evidence,
        },
    )
    for r in results:
        mark = "[green]✓[/]" if r["accepted"] else "[red]✗[/]"
        console.print(f"{mark} {r['notice_id']}: {r['message']}")


_MEDIA = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".pdf": "application/pdf",
}


def _evidence(path: Path) -> dict[str, str]:
    media = _MEDIA.get(path.suffix.lower())
    if media is None:
        raise fail(f"{path}: a photograph or scan is .jpg, .png or .pdf", 2)
    return {
        "filename": path.name,
        "media_type": media,
        "content_base64": base64.b64encode(path.read_bytes()).decode(),
    }


@notice_app.command("show")
def notice_show(
    notice_id: Annotated[
        str,
        typer.Argument(
            help="the notice's id, e.g. notice/county-subsidy/2027/village/340123101001/village_notice"
        ),
    ],
) -> None:
    """A notice: who waits for its next posting, its postings and their periods, its
    open objections."""
    st = gateway_call("GET", f"/v1/notices/{notice_id}")
    console.print(f"[bold]{st['details_zh']}[/]\n{st['details_en']}")
    table = Table(
        "批次 posting",
        "张贴 posted",
        "期满 ends",
        "件数 applications",
        "方式 how",
        "清单 list (SHA-256)",
    )
    for p in st["postings"]:
        xlsx = next((f for f in p["files"] if f["kind"] == "xlsx"), None)
        table.add_row(
            str(p["number"]),
            p["posted_at"],
            p["ends_at"],
            str(len(p["members"])),
            p["posting"] + (f" ({len(p['evidence'])} photo)" if p["evidence"] else ""),
            xlsx["sha256"][:16] if xlsx else "-",
        )
    console.print(table)
    if st["pending"]:
        console.print(
            f"待张贴 / waiting for the next posting: {len(st['pending'])}; automatic {st['auto_post_at']}"
        )
    for wf, n in st["open_objections"].items():
        console.print(f"异议 / open objections: {wf}: {n}")
