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


def demo_base(tmp_path: Path) -> Settings:
    """A demo's settings on its own ports and data directory."""
    return Settings(
        data_dir=tmp_path,
        grpc_port=free_port(),
        ui_port=free_port(),
        metrics_port=None,
        secret_key="cd" * 32,
    )


async def demo_season(tmp_path: Path, **knobs: Any) -> tuple[DemoResult, Path]:
    """A demo season on its own ports and data directory; its terminal output in a file."""
    base = demo_base(tmp_path)
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
    result, out = await demo_season(tmp_path, applicants_count=12, day_seconds=0.6)
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
    await dashboard_shows(result, tmp_path)


async def dashboard_shows(result: DemoResult, tmp_path: Path) -> None:
    """The county dashboard, rendered by a real headless browser, shows the demo's numbers."""
    import asyncio
    import re
    from datetime import timedelta

    from fastapi import FastAPI

    from store.db import make_engine
    from store.sealing import Keys
    from tests.browser import chromium, dump_dom
    from workers.gateway import dashboard, problems
    from workers.gateway.auth import Authenticator
    from workers.gateway.serving import serving_app

    chromium()  # skips, saying why, without a browser
    assert result.programme is not None and result.calendar is not None
    engine = make_engine(f"sqlite:///{tmp_path / 'demo' / 'aidflow.db'}")
    key = Keys(bytes.fromhex("cd" * 32)).authority
    app = FastAPI()
    problems.install(app)
    app.state.auth = Authenticator(engine, key)
    programmes = {result.programme.code: result.programme}
    app.include_router(dashboard.router(engine, key, programmes, result.calendar))
    try:
        async with serving_app(app) as url:
            link = dashboard.signed_link(
                url,
                key,
                county=result.county,
                programme=result.programme.code,
                season="2026",
                valid=timedelta(minutes=5),
            )
            dom = await asyncio.to_thread(dump_dom, link, tmp_path / "dashboard.png")
            forged_link = link[:-1] + ("1" if link.endswith("0") else "0")
            forged = await asyncio.to_thread(dump_dom, forged_link)
    finally:
        engine.dispose()

    def kpi(name: str) -> int:
        m = re.search(rf'id="{name}".*?<b>(\d+)</b>', dom, re.S)
        assert m, name
        return int(m.group(1))

    stages = list(result.statuses.values())
    assert "县级看板" in dom and "county dashboard" in dom
    assert kpi("total") == len(stages)
    assert kpi("done") == stages.count(result.programme.done_stage)
    assert kpi("rejected") == stages.count("rejected")
    total = re.search(r"data-stage=\"rejected\">(\d+)<", dom)
    assert total and int(total.group(1)) == stages.count("rejected")
    assert "<svg" in dom and 'data-series="done"' in dom
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    assert "not signed" in forged and "县级看板" not in forged


async def test_demo_of_the_new_student_aid(tmp_path: Path) -> None:
    """The same officials, acting on another programme's steps: the county reviews, the
    notice is up for five calendar days, students sign for their grants in person."""
    result, out = await demo_season(
        tmp_path, applicants_count=8, day_seconds=0.6, programme="new-student-aid"
    )
    assert result.report_md is not None
    assert set(result.statuses.values()) <= {"received", "rejected", "withdrawn"}
    assert list(result.statuses.values()).count("received") >= 4
    md = Path(result.report_md).read_text(encoding="utf-8")
    assert "new-student-aid-demo" in md and "## Signed receipts" in md
    assert "新生入学资助（演示）" in out.read_text(encoding="utf-8")


async def test_demo_of_a_pairing_year(tmp_path: Path) -> None:
    """A pairing year live (three households, a calendar day in 0.05 s): the cadres'
    contacts logged as their days come, the periods judged by the cases' timers on the
    compressed calendar, every case closed when the year ends."""
    from workers.demo_cases import run_case_demo

    out = tmp_path / "demo.out"
    with out.open("w") as f:
        result = await run_case_demo(
            demo_base(tmp_path),
            households=3,
            day_seconds=0.05,
            seed=3,
            exit_when_done=True,
            console=Console(file=f, width=140),
            data_dir=tmp_path / "demo",
        )
    assert set(result.statuses.values()) == {"year_ended"} and len(result.statuses) == 3
    shown = out.read_text(encoding="utf-8")
    assert "结对帮扶 2027" in shown and "visit" in shown
