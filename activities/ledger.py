"""The yearly aid ledger's workbook (学生资助台账): a summary per student and every line with
its source, Chinese first with English beside it; masked identity numbers only (R9)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from models.ledger import AID_KIND_ZH, Ledger
from store.cells import WORKBOOK_OPTIONS, row


def ledger_file_name(year: int, place_code: str) -> str:
    return f"ledger-{year}-{place_code}.xlsx"


def write_ledger(ledger: Ledger, out_dir: Path) -> Path:
    import xlsxwriter

    place = ledger.village_code or ledger.township_code or ledger.county_code
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ledger_file_name(ledger.year, place)
    # Written aside and moved into place: a download meanwhile gets the whole old one.
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    wb = xlsxwriter.Workbook(str(partial), WORKBOOK_OPTIONS)
    try:
        bold = wb.add_format({"bold": True})
        money = wb.add_format({"num_format": "#,##0"})
        title = (
            f"{ledger.year}年度学生资助台账 / yearly aid ledger {ledger.year} — {place}；"
            f"生成于 / built {ledger.built_at:%Y-%m-%d %H:%M} UTC"
        )
        programmes = sorted(
            {(x.programme, x.programme_name_zh) for s in ledger.students for x in s.lines}
        )

        summary = wb.add_worksheet("汇总 Summary")
        summary.write_row(0, 0, row([title]), bold)
        summary.write_row(
            1,
            0,
            row(
                [
                    "村 village",
                    "姓名 name",
                    "身份证号 ID (masked)",
                    *(f"{zh} {code}" for code, zh in programmes),
                    "合计 total (CNY)",
                ]
            ),
            bold,
        )
        for i, s in enumerate(ledger.students, start=2):
            by_programme = {code: 0 for code, _ in programmes}
            for line in s.lines:
                by_programme[line.programme] += line.amount_cny
            summary.write_row(
                i, 0, row([s.village_name or s.village_code, s.name, s.national_id_masked])
            )
            summary.write_row(i, 3, [*by_programme.values(), s.total_cny], money)
        total_row = len(ledger.students) + 2
        summary.write_row(
            total_row, 0, row(["合计 total", f"{len(ledger.students)} 人 students"]), bold
        )
        summary.write(total_row, 3 + len(programmes), ledger.total_cny, money)
        summary.set_column(0, 2, 18)
        summary.set_column(3, 3 + len(programmes), 16)

        lines = wb.add_worksheet("明细 Lines")
        lines.write_row(0, 0, row([title]), bold)
        lines.write_row(
            1,
            0,
            row(
                [
                    "村 village",
                    "姓名 name",
                    "身份证号 ID (masked)",
                    "项目 programme",
                    "类别 kind",
                    "金额 amount (CNY)",
                    "日期 date",
                    "来源 source",
                ]
            ),
            bold,
        )
        n = 2
        for s in ledger.students:
            for line in s.lines:
                lines.write_row(
                    n,
                    0,
                    row(
                        [
                            s.village_name or s.village_code,
                            s.name,
                            s.national_id_masked,
                            f"{line.programme_name_zh} {line.programme}",
                            f"{AID_KIND_ZH[line.kind]} {line.kind.value}",
                        ]
                    ),
                )
                lines.write(n, 5, line.amount_cny, money)
                lines.write_row(n, 6, row([line.on.isoformat() if line.on else "", line.source]))
                n += 1
        lines.set_column(0, 4, 18)
        lines.set_column(7, 7, 60)
    finally:
        wb.close()
    os.replace(partial, path)
    return path
