"""`aidflow demo`, shortened: a whole season on the embedded stack with the compressed calendar."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from rich.console import Console

from tests.support import free_port
from workers.demo import DemoResult, run_demo
from workers.settings import Settings


async def demo_season(tmp_path: Path, **knobs: Any) -> tuple[DemoResult, Path]:
    """A demo season on its own ports and data directory; its terminal output in a file."""
    base = Settings(
        data_dir=tmp_path,
        grpc_port=free_port(),
        ui_port=free_port(),
        metrics_port=None,
        secret_key="cd" * 32,
    )
    out = tmp_path / "demo.out"
    with out.open("w") as f:
        result = await run_demo(
            base,
            seed=3,
            exit_when_done=True,
            console=Console(file=f, width=140),
            data_dir=tmp_path / "demo",
            **knobs,
        )
    return result, out


async def test_demo_runs_a_whole_season(tmp_path: Path) -> None:
    result, out = await demo_season(tmp_path, applicants_count=12, day_seconds=1.5)
    assert (
        result.report_md is not None
        and result.report_xlsx is not None
        and result.roster is not None
    )
    assert set(result.statuses.values()) <= {"paid", "rejected", "withdrawn"}
    assert list(result.statuses.values()).count("paid") >= 6
    md = Path(result.report_md).read_text(encoding="utf-8")
    assert "阜南县" in md and f"Applications: **{len(result.statuses)}**" in md
    roster = load_workbook(result.roster).active
    assert roster is not None and roster.max_row >= 2
    assert "demo finished" in out.read_text(encoding="utf-8")
    assert not os.environ.get("AIDFLOW_DATA_DIR")


async def test_demo_of_the_new_student_aid(tmp_path: Path) -> None:
    """The same officials, acting on another programme's steps: the county reviews, the
    notice is up for five calendar days, students sign for their grants in person."""
    result, out = await demo_season(
        tmp_path, applicants_count=8, day_seconds=1.0, programme="new-student-aid"
    )
    assert result.report_md is not None
    assert set(result.statuses.values()) <= {"received", "rejected", "withdrawn"}
    assert list(result.statuses.values()).count("received") >= 4
    md = Path(result.report_md).read_text(encoding="utf-8")
    assert "new-student-aid-demo" in md and "## Signed receipts" in md
    assert "新生入学资助（演示）" in out.read_text(encoding="utf-8")
