"""``aidflow demo --programme cadre-pairing``: a pairing year, live, on the compressed calendar.

The embedded stack (dev server with its Web UI, database, worker) and a handful of
households, each paired with three cadres of a department. The year starts when the
cadres claim their households (20 April); each cadre calls once a month and visits once a
quarter, on a day of their own, and now and then forgets: the period's end flags that
cadre's obligation (the cadre and the department's liaison are told), and the next
contact makes it up. Watch the cases in the Web UI (``Programme = "cadre-pairing"``,
``Overdue = true``); the terminal shows the month, the cases and the misses as they
happen. At the year's end every case closes by itself.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from models.application import Actor
from models.calendar import CompressedCalendar
from models.cases import CaseMember, CaseStatus, ContactKind
from models.domain import Role
from models.programmes import CASE_REGISTRY
from store.loans import Loans
from store.registry import RegistryReader
from workers.client import AidflowClient, Refused
from workers.client.cases import CaseClient
from workers.demo import DemoResult, demo_settings
from workers.embedded import embedded_stack
from workers.settings import Settings
from workers.synthetic import (
    SURNAMES,
    national_id,
    pairing_contact,
    pairing_group,
    sample_villages,
)

YEAR = 2027
OPENS = date(YEAR, 4, 20)  # the cadres claim their households
FORGETS = 0.08  # a cadre forgets a month's call this often (the demo shows misses)


def _plan(
    members: list[CaseMember], rng: random.Random
) -> list[tuple[date, CaseMember, ContactKind]]:
    """Each cadre's contacts of the year: a call a month, a visit in each quarter's last
    month (the Mid-Autumn one with money or goods), some forgotten."""
    out = []
    for month in range(OPENS.month, 13):
        first = max(date(YEAR, month, 1), OPENS)
        for m in members:
            if rng.random() < FORGETS:
                continue
            day = first + timedelta(days=rng.randrange((date(YEAR, month, 28) - first).days + 1))
            kind = ContactKind.VISIT if month in (6, 9, 12) else ContactKind.PHONE
            out.append((day, m, kind))
    return sorted(out, key=lambda x: (x[0], x[1].actor_id))


async def run_case_demo(
    base: Settings,
    *,
    households: int = 8,
    day_seconds: float = 0.5,
    seed: int = 7,
    console: Console | None = None,
    exit_when_done: bool = False,
    programme: str = "cadre-pairing",
    data_dir: Path | None = None,
) -> DemoResult:
    console = console or Console()
    settings = demo_settings(base, day_seconds, data_dir, first_day=OPENS)
    shutil.rmtree(settings.data_dir, ignore_errors=True)  # a demo starts from nothing
    rng = random.Random(seed)
    started = datetime.now(UTC)
    async with embedded_stack(settings) as stack:
        deps = stack.deps
        calendar = deps.calendar
        assert isinstance(calendar, CompressedCalendar)
        api = AidflowClient(
            stack.client,
            task_queue=settings.task_queue,
            keys=deps.keys,
            calendar=calendar,
            programmes={},
            lookup_member=RegistryReader(deps.engine).lookup,
            loans=Loans(deps.engine),
        )
        cases = CaseClient(api, CASE_REGISTRY)
        villages = sample_villages()
        county = villages[0].places.county_code
        bureau = Actor(
            id=f"county_education_bureau-{county}",
            name="县教育局",
            role=Role.COUNTY_EDUCATION_BUREAU,
            place_code=county,
        )
        # The demo's calendar starts on the day of the claims, a few seconds from now.
        await asyncio.sleep(
            max(0.0, (calendar.day_start(OPENS) - datetime.now(UTC)).total_seconds())
        )
        plans: dict[str, list[tuple[date, CaseMember, ContactKind]]] = {}
        for i in range(households):
            members = pairing_group(i, 3, 3, rng)  # three departments, three cadres
            wf = await cases.open_case(
                programme,
                YEAR,
                villages[i % len(villages)].places,
                name=f"{rng.choice(SURNAMES)}家",
                national_id=national_id(i + 1, YEAR - 12),
                members=members,
                opened_by=bureau,
            )
            plans[wf] = _plan(members, rng)
        log: list[str] = []
        statuses: dict[str, CaseStatus] = {}

        def view() -> Any:
            today = calendar.day_of(datetime.now(UTC))
            counts = Counter(s.stage for s in statuses.values())
            overdue = sum(1 for s in statuses.values() if s.overdue)
            table = Table(title=f"结对帮扶 {YEAR} · 演示日期 {today}")
            table.add_column("")
            table.add_column("cases")
            for stage, n in sorted(counts.items()):
                table.add_row(stage, str(n))
            table.add_row("overdue now / 当前逾期", str(overdue))
            misses = sum(len(s.misses) for s in statuses.values())
            table.add_row("periods missed / 累计未履职", str(misses))
            return Group(
                table,
                Panel(
                    "\n".join(["Web UI: http://localhost:8233", *log[-10:]]),
                    title="what is happening",
                ),
            )

        with Live(view(), console=console, refresh_per_second=2, transient=False) as live:
            while not stack.stop.is_set():
                today = calendar.day_of(datetime.now(UTC))
                for wf, plan in plans.items():
                    while plan and plan[0][0] <= today:
                        day, m, kind = plan.pop(0)
                        visit = kind is ContactKind.VISIT
                        req = pairing_contact(
                            wf,
                            m,
                            day,
                            kind,
                            "入户走访" if visit else "电话了解近况",
                            gift=300 if visit and day.month == 9 else 0,
                            problem="协助办理助学贷款" if visit and day.month == 6 else "",
                        )
                        try:
                            await cases.log_contact(wf, req)
                            log.append(f"{day} {m.name}（{m.unit}）{kind.value}")
                        except Refused as e:
                            log.append(f"{day} {m.name}: refused: {e}")
                for wf in plans:
                    st = await cases.status(wf)
                    before = statuses.get(wf)
                    if before is not None and len(st.misses) > len(before.misses):
                        for miss in st.misses[len(before.misses) :]:
                            log.append(
                                f"逾期 / overdue: {miss.member or 'group'} {miss.obligation} {miss.period}"
                            )
                    statuses[wf] = st
                live.update(view())
                # Over: the year ended for every case (the stack stays up until Ctrl-C).
                if exit_when_done and statuses and all(s.outcome for s in statuses.values()):
                    break
                await asyncio.sleep(min(day_seconds, 1.0))
    return DemoResult(
        statuses={wf: s.stage for wf, s in statuses.items()},
        roster=None,
        report_md=None,
        report_xlsx=None,
        seconds=(datetime.now(UTC) - started).total_seconds(),
    )
