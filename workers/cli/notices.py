"""Public notices: an office posts its list."""

from __future__ import annotations

from typing import Annotated

import typer

from models.domain import Level
from models.programme import NoticeStep
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
) -> None:
    """Post a notice list now: every application of the programme at the place waiting for it."""
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
    notice = next((s for s in prog.steps if isinstance(s, NoticeStep) and s.level is level), None)
    if notice is None:
        raise fail(f"{programme} has no {level.value} notice", 2)
    if settings().api_key is None:
        raise fail("no credential: set AIDFLOW_API_KEY to the notice owner's API key", 2)
    results = [
        (r["workflow_id"], r["message"])
        for r in gateway_call(
            "POST",
            "/v1/notices/postings",
            {
                "programme": programme,
                "level": level.value,
                "place_code": code,
                "season": str(season) if season else None,
            },
        )
    ]
    if not results:
        console.print(
            f"no {programme} application of {code} is waiting for the {notice.label_en} to be posted"
        )
        return
    for wf, message in results:
        console.print(f"{wf}: {message}")
