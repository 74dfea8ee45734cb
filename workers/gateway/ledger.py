"""The yearly aid ledger and coverage (应补尽补) over HTTP (PROCESS.md §4.6): built now from
the database, at the caller's place (a village's key its village, a township's its
villages, the county's all); the ledger as a workbook to download."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from activities.ledger import ledger_file_name, write_ledger
from integrations.bank import inside
from models.domain import Level
from models.programme import Programme
from models.season import SeasonKey
from store.coverage import coverage
from store.ledger import build_ledger
from workers.gateway.auth import Caller, office, within_callers_place
from workers.gateway.problems import Problem

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Office = Annotated[Caller, Depends(office)]
Code = Annotated[str | None, Query(pattern=r"^\d{12}$")]
Year = Annotated[int, Query(ge=2000, le=2100)]


def place_held(who: Caller, township: str | None, village: str | None) -> tuple[str, str, str]:
    """(county, township, village) of the ledger asked for, inside the caller's place:
    a village's key reads its village, a township's its own or one of its villages."""
    level = within_callers_place(who, "reads no ledger", township=township, village=village)
    place = who.binding.place_code
    county = place[:6] + "000000"
    if level is Level.VILLAGE:
        return county, place[:9] + "000", place
    if level is Level.TOWNSHIP:
        return county, place, village or ""
    return county, township or (village[:9] + "000" if village else ""), village or ""


def router(engine: Engine, files_dir: Path, programmes: dict[str, Programme]) -> APIRouter:
    r = APIRouter()
    folder = files_dir / "ledgers"

    @r.get("/v1/coverage", tags=["reading"])
    async def coverage_now(
        who: Office,
        programme: Annotated[str, Query(pattern=r"^[a-z][a-z0-9-]{1,39}$")],
        season: Annotated[str, Query(pattern=r"^\d{4}(-[a-z]{1,16})?$")],
        village: Code = None,
    ) -> dict[str, Any]:
        """应补尽补: per village at the caller's place, the registered-poor students the
        programme is for (by the newest enrolment snapshot), how many applied this
        season, how many were paid, and who has not applied (masked)."""
        county, township_code, village_code = place_held(who, None, village)
        known = programmes.get(programme)
        if known is None:
            raise Problem(404, f"no programme {programme}")
        key = SeasonKey.parse(season)
        try:
            definition = known.for_round(key.round)
        except ValueError as e:
            raise Problem(422, f"season: {e}") from None
        found = await run_in_threadpool(
            coverage, engine, definition, key.year, county, village_code=village_code
        )
        villages = [
            v
            for v in found.villages
            if not township_code or v.village_code[:9] == township_code[:9]
        ]
        return {
            "programme": programme,
            "season": season,
            "county": county,
            "as_of": found.as_of.isoformat() if found.as_of else None,
            "eligible": sum(v.eligible for v in villages),
            "applied": sum(v.applied for v in villages),
            "paid": sum(v.paid for v in villages),
            "villages": [
                {
                    "village_code": v.village_code,
                    "village_name": v.village_name,
                    "eligible": v.eligible,
                    "applied": v.applied,
                    "paid": v.paid,
                    "not_applied": [{"id_masked": m, "name": n} for m, n in v.not_applied],
                }
                for v in villages
            ],
        }

    @r.post("/v1/ledgers", tags=["reading"], status_code=201)
    async def ledger_now(
        who: Office, year: Year, township: Code = None, village: Code = None
    ) -> dict[str, Any]:
        """The year's ledger of every registered-poor student at the place, built now:
        what each received from every programme (paid, signed for, recorded), each line
        with its source; the workbook to download and the totals."""
        county, township_code, village_code = place_held(who, township, village)
        ledger = await run_in_threadpool(
            build_ledger,
            engine,
            year,
            county,
            township_code=township_code,
            village_code=village_code,
        )
        path = await run_in_threadpool(write_ledger, ledger, folder)
        return {
            "year": year,
            "place": village_code or township_code or county,
            "students": len(ledger.students),
            "lines": ledger.lines,
            "total_cny": ledger.total_cny,
            "xlsx": f"/v1/ledgers/files/{path.name}",
        }

    @r.get(
        "/v1/ledgers/files/{name}",
        tags=["reading"],
        response_class=FileResponse,
        responses={200: {"content": {XLSX: {}}}},
    )
    async def ledger_file(name: str, who: Office) -> FileResponse:
        """A ledger's workbook, by the name its build gave, at the caller's place only."""
        parts = name.removesuffix(".xlsx").split("-")
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[2]) != 12:
            raise Problem(404, f"no ledger {name}")
        code = parts[2]
        within_callers_place(who, "reads no ledger", place=code)
        if name != ledger_file_name(int(parts[1]), code):
            raise Problem(404, f"no ledger {name}")
        try:
            path = inside(folder, name)
        except ValueError:
            raise Problem(404, f"no ledger {name}") from None
        if not path.is_file():
            raise Problem(404, f"no ledger {name}: build it first (POST /v1/ledgers)")
        return FileResponse(path, media_type=XLSX, filename=name)

    return r
