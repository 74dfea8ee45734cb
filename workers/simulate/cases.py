"""``aidflow simulate --programme cadre-pairing``: a pairing year at the plan's size.

The plan (PROCESS.md §5.1): 67 departments pair their cadres with 904 households, three
cadres a household. Each household's case opens when its cadres claim it (by 20 April);
month by month each cadre calls (a few forget), visits once a quarter (a few do not),
gives money or goods at the Mid-Autumn visit and solves a problem at the summer one. The
periods are judged by the cases' own timers, on the real calendar, time skipped: each
case's clock is moved to the last evening of a month, the month's contacts are logged
(dated within it), and the next move passes the period's end. At the year's end every
case closes by itself; the report counts each obligation's periods met and missed, per
department and per cadre, from the database as the county would read it.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

from models.application import Actor
from models.calendar import SHANGHAI
from models.cases import CaseMember, CaseStatus, Contact, ContactKind
from models.domain import Role
from models.programmes import CASE_REGISTRY
from store.cases import obligations_report
from store.loans import Loans
from store.registry import RegistryReader
from workers.client import AidflowClient
from workers.client.cases import CaseClient
from workers.settings import Settings
from workers.signing import SKIPPED_CLOCK_LIFETIME
from workers.simulate.stack import simulation_stack
from workers.synthetic import (
    SURNAMES,
    national_id,
    pairing_contact,
    pairing_group,
    sample_villages,
)


@dataclass(frozen=True)
class PairingScenario:
    departments: int = 67
    households: int = 904
    cadres_per_household: int = 3
    year: int = 2027
    seed: int = 1
    # A cadre forgets a month's call, or a quarter's visit, this often.
    call_missed: float = 0.03
    visit_missed: float = 0.05
    concurrency: int = 24


@dataclass
class PairingResult:
    scenario: PairingScenario
    wall_seconds: float
    cases: int
    cadres: int
    contacts: int
    fast_forwards: int
    # Obligation: periods met and missed, over every cadre.
    met: dict[str, int] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)
    # Department: its cadres, periods met, periods missed.
    departments: list[tuple[str, int, int, int]] = field(default_factory=list)
    closed: dict[str, int] = field(default_factory=dict)


def _evening(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 20, 0, tzinfo=SHANGHAI)


def _month_last(year: int, month: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return nxt - timedelta(days=1)


async def run_pairing_simulation(
    scenario: PairingScenario,
    base: Settings,
    *,
    data_dir: Path,
    progress: Callable[[str, int, int], None] | None = None,
) -> PairingResult:
    shutil.rmtree(data_dir, ignore_errors=True)  # every run starts from nothing
    data_dir.mkdir(parents=True)  # noqa: ASYNC240 (before the stack: nothing else runs yet)
    settings = base.model_copy(update={"calendar": "state-council", "data_dir": data_dir})
    started = time.monotonic()
    year, rng = scenario.year, random.Random(scenario.seed)
    villages = sample_villages()
    opened = datetime(year, 4, 20, 9, 0, tzinfo=SHANGHAI)  # claimed by 20 April
    async with simulation_stack(data_dir, settings, [], scenario.households) as (
        client,
        clocks,
        deps,
        _,
    ):
        api = AidflowClient(
            client,
            task_queue=settings.task_queue,
            keys=deps.keys,
            calendar=settings.build_calendar(),
            calendar_is_fixed=deps.calendar_is_fixed,
            statement_lifetime=SKIPPED_CLOCK_LIFETIME,
            programmes={},
            lookup_member=RegistryReader(deps.engine).lookup,
            loans=Loans(deps.engine),
        )
        cases = CaseClient(api, CASE_REGISTRY)
        county = villages[0].places.county_code
        bureau = Actor(
            id=f"county_education_bureau-{county}",
            name="县教育局",
            role=Role.COUNTY_EDUCATION_BUREAU,
            place_code=county,
        )
        gate = asyncio.Semaphore(scenario.concurrency)
        groups: dict[str, list[CaseMember]] = {}

        async def open_one(i: int) -> None:
            v = villages[i % len(villages)]
            members = pairing_group(i, scenario.departments, scenario.cadres_per_household, rng)
            async with gate:
                wf = await cases.open_case(
                    "cadre-pairing",
                    year,
                    v.places,
                    name=f"{rng.choice(SURNAMES)}家",
                    national_id=national_id(i + 1, year - 12),
                    members=members,
                    opened_by=bureau,
                    now=opened,
                    start_at=opened,
                )
                await clocks.started(wf, opened)
            groups[wf] = members

        await asyncio.gather(*(open_one(i) for i in range(scenario.households)))
        contacts = 0

        async def month_of(wf: str, month: int) -> None:
            nonlocal contacts
            last = _month_last(year, month)
            first = max(date(year, month, 1), opened.date())
            draw = random.Random(f"{scenario.seed}/{wf}/{month}")
            logged: list[Contact] = []
            for m in groups[wf]:
                day = first + timedelta(days=draw.randrange((last - first).days + 1))
                quarter_end = month in (6, 9, 12)
                if quarter_end and draw.random() >= scenario.visit_missed:
                    logged.append(
                        pairing_contact(
                            wf,
                            m,
                            day,
                            ContactKind.VISIT,
                            "入户走访，了解学习生活情况",
                            gift=draw.choice((200, 300, 500)) if month == 9 else 0,
                            problem="协助办理助学贷款" if month == 6 else "",
                        )
                    )
                elif draw.random() >= scenario.call_missed:
                    logged.append(pairing_contact(wf, m, day, ContactKind.PHONE, "电话了解近况"))
            async with gate:
                await clocks.advance(wf, _evening(last))
                for c in logged:
                    await cases.log_contact(wf, c)
            contacts += len(logged)

        for month in range(opened.month, 13):
            if progress:
                progress(f"{year}-{month:02d}", month - opened.month, 13 - opened.month)
            await asyncio.gather(*(month_of(wf, month) for wf in groups))
        # The year ends: every case closes by itself, after the last periods' judging.
        year_end = datetime(year + 1, 1, 1, 0, 30, tzinfo=SHANGHAI)

        async def close(wf: str) -> str:
            async with gate:
                await clocks.advance(wf, year_end)
                handle: WorkflowHandle[Any, CaseStatus] = client.get_workflow_handle(
                    wf, result_type=CaseStatus
                )
                return (await handle.result()).outcome

        closed = Counter(await asyncio.gather(*(close(wf) for wf in groups)))
        tallies = await asyncio.to_thread(
            obligations_report, deps.engine, "cadre-pairing", year, county
        )
    met: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    by_unit: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for t in tallies:
        met.update(t.met)
        missed.update(t.missed)
        row = by_unit[t.unit]
        row[0] += 1
        row[1] += sum(t.met.values())
        row[2] += sum(t.missed.values())
    return PairingResult(
        scenario=scenario,
        wall_seconds=time.monotonic() - started,
        cases=len(groups),
        cadres=len(tallies),
        contacts=contacts,
        fast_forwards=clocks.fast_forwards,
        met=dict(met),
        missed=dict(missed),
        departments=sorted((u, *v) for u, v in by_unit.items()),  # type: ignore[misc]
        closed=dict(closed),
    )
