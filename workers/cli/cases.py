"""Cases (PROCESS.md §5) from the command line, each with your own key (AIDFLOW_API_KEY):
open one from a JSON file, log a contact (with photographs), close one, read where it
stands, its handbook, the obligations and the ledger of a year."""

from __future__ import annotations

import base64
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from workers.cli.common import case_app, console, fail, gateway_call, gateway_response, refusal

MEDIA = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".pdf": "application/pdf",
}


def _upload(path: Path) -> dict[str, str]:
    media = MEDIA.get(path.suffix.lower())
    if media is None:
        raise fail(f"{path}: a photograph or scan is .jpg, .png or .pdf")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise fail(f"cannot read {path}: {e.strerror or e}") from None
    return {
        "filename": path.name,
        "media_type": media,
        "content_base64": base64.b64encode(data).decode(),
    }


@case_app.command("open")
def open_case(
    file: Annotated[
        Path,
        typer.Argument(help="JSON: programme, year, places, name, national_id, members[, note]"),
    ],
) -> None:
    """Your office opens a case with its group (each member a person with their own key)."""
    try:
        body = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise fail(f"cannot read {file}: {e}") from None
    answer = gateway_call("POST", "/v1/cases", body)
    console.print(f"opened / 已立案: {answer['workflow_id']}")


@case_app.command("contact")
def contact(
    case: Annotated[str, typer.Argument(help="the case's id")],
    member: Annotated[str, typer.Option(help="the member's id (yours, or your cadre's)")],
    on: Annotated[str, typer.Option(help="the day of the contact, YYYY-MM-DD")],
    kind: Annotated[str, typer.Option(help="phone, visit, meeting or help_session")],
    done: Annotated[str, typer.Option(help="what was done")],
    gift: Annotated[int, typer.Option(help="money or goods given, CNY")] = 0,
    problem: Annotated[str, typer.Option(help="the concrete problem solved")] = "",
    photo: Annotated[list[Path] | None, typer.Option(help="a photograph (repeatable)")] = None,
) -> None:
    """A contact with the family, logged by the member or their unit's liaison."""
    try:
        day = date.fromisoformat(on)
    except ValueError:
        raise fail(f"--on: {on!r} is not a date (YYYY-MM-DD)", 2) from None
    body: dict[str, Any] = {
        "member": member,
        "on": day.isoformat(),
        "kind": kind,
        "done": done,
        "gift_value_cny": gift,
        "problem_solved": problem,
        "photos": [_upload(p) for p in photo or []],
    }
    result = gateway_call("POST", f"/v1/cases/{case}/contacts", body)
    console.print(result["message"])


@case_app.command("close")
def close(
    case: Annotated[str, typer.Argument(help="the case's id")],
    outcome: Annotated[str, typer.Option(help="e.g. returned_to_school, exempted")],
    evidence: Annotated[str, typer.Option(help="the evidence's reference")] = "",
    evidence_file: Annotated[Path | None, typer.Option(help="the evidence's scan")] = None,
    note: Annotated[str, typer.Option()] = "",
) -> None:
    """Close a case on an outcome its programme allows, with its evidence."""
    body = {
        "outcome": outcome,
        "evidence_ref": evidence,
        "evidence": [_upload(evidence_file)] if evidence_file else [],
        "note": note,
    }
    result = gateway_call("POST", f"/v1/cases/{case}/closure", body)
    console.print(f"{result['stage']}: {result['message']}")


@case_app.command("status")
def status(case: Annotated[str, typer.Argument(help="the case's id")]) -> None:
    """Where a case stands: whom it waits for until when, its misses, its group."""
    st = gateway_call("GET", f"/v1/cases/{case}")
    console.print(f"[bold]{st['details_zh']}[/bold]\n{st['details_en']}")
    console.print(
        f"stage {st['stage']} · contacts {st['contacts']} · overdue {', '.join(st['overdue']) or '-'}"
    )
    for m in st["misses"]:
        console.print(f"  missed {m['obligation']} {m['period']} {m['member'] or '(group)'}")


@case_app.command("handbook")
def handbook(
    case: Annotated[str, typer.Argument(help="the case's id")],
    out: Annotated[Path | None, typer.Option(help="write it to this file")] = None,
) -> None:
    """The household's help handbook (帮扶手册), as Markdown."""
    r = gateway_response("GET", f"/v1/cases/{case}/handbook.md")
    if r.status_code >= 400:
        raise fail(f"refused: {refusal(r)}")
    if out is None:
        console.print(r.text, markup=False, highlight=False)
        return
    try:
        out.write_text(r.text, encoding="utf-8")
    except OSError as e:
        raise fail(f"cannot write {out}: {e.strerror or e}") from None
    console.print(f"帮扶手册 / handbook → {out}")


@case_app.command("report")
def report(
    programme: Annotated[str, typer.Option()] = "cadre-pairing",
    year: Annotated[int, typer.Option()] = 2027,
) -> None:
    """Each member's periods met and missed per obligation, by unit, in your county; and
    the ledger of cases per township."""
    params = {"programme": programme, "year": year}
    tallies = gateway_call("GET", "/v1/case-reports/obligations", params=params)
    table = Table("unit / 单位", "member / 帮扶人", "met / 完成", "missed / 未完成")
    for t in tallies:
        table.add_row(
            t["unit"],
            f"{t['name']} ({t['actor_id']})",
            ", ".join(f"{k} {v}" for k, v in sorted(t["met"].items())),
            ", ".join(f"{k} {v}" for k, v in sorted(t["missed"].items())),
        )
    console.print(table)
    summary = gateway_call("GET", "/v1/case-reports/departments", params=params)
    by_unit = Table(
        "unit / 单位",
        "cadres",
        "households",
        "contacts",
        "photos",
        "money or goods (CNY)",
        "problems solved",
        "periods met",
        "periods missed",
        title="部门年度总结 / each department's summary",
    )
    for u in summary:
        by_unit.add_row(
            u["unit"],
            str(u["cadres"]),
            str(u["households"]),
            str(u["contacts"]),
            str(u["photos"]),
            f"{u['gifts_cny']:,}",
            str(u["problems_solved"]),
            str(u["periods_met"]),
            str(u["periods_missed"]),
        )
    console.print(by_unit)
    ledger = gateway_call("GET", "/v1/case-reports/ledger", params=params)
    for row in ledger:
        rest = ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("township",))
        console.print(f"台账 / ledger {row['township']}: {rest}")


IMPORT_COLUMNS = (
    "national_id",
    "name",
    "village_code",
    "failed_courses",
    "helper_teacher_id",
    "helper_teacher_name",
    "peer_id",
    "peer_name",
    "guardian_contact",
)


@case_app.command("import")
def import_cases(
    file: Annotated[Path, typer.Argument(help=f"CSV: {', '.join(IMPORT_COLUMNS)}")],
    year: Annotated[int, typer.Option()],
    programme: Annotated[str, typer.Option()] = "academic-help",
) -> None:
    """The semester's students with failed courses after the make-up exams (courses
    separated by ';'), each with a helper teacher and a peer helper: a case each, opened
    by your office. Each row is answered; a refused row names why, the others open."""
    import csv

    try:
        rows = list(csv.DictReader(file.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as e:
        raise fail(f"cannot read {file}: {e}") from None
    if not rows or set(IMPORT_COLUMNS) - set(rows[0]):
        missing = sorted(set(IMPORT_COLUMNS) - set(rows[0] if rows else ()))
        raise fail(f"{file}: columns missing: {', '.join(missing)}", 2)
    refused = 0
    for n, row in enumerate(rows, start=2):
        village = row["village_code"].strip()
        body = {
            "programme": programme,
            "year": year,
            "places": {
                "county_code": village[:6] + "000000",
                "township_code": village[:9] + "000",
                "village_code": village,
            },
            "name": row["name"].strip(),
            "national_id": row["national_id"].strip(),
            "members": [
                {
                    "actor_id": row["helper_teacher_id"].strip(),
                    "name": row["helper_teacher_name"].strip(),
                    "role": "helper_teacher",
                },
                {
                    "actor_id": row["peer_id"].strip(),
                    "name": row["peer_name"].strip(),
                    "role": "peer_helper",
                },
            ],
            "failed_courses": [c.strip() for c in row["failed_courses"].split(";") if c.strip()],
            "guardian_contact": row["guardian_contact"].strip(),
        }
        r = gateway_response("POST", "/v1/cases", body)
        if r.status_code >= 400:
            refused += 1
            console.print(f"row {n}: refused: {refusal(r)}")
        else:
            console.print(f"row {n}: {r.json()['workflow_id']}")
    if refused:
        raise fail(f"{refused} of {len(rows)} row(s) refused")
