"""``aidflow simulate``: the simulated season keeps every workflow on one consistent time.

The proof: with officials who act the moment a step opens (``--officials-delay 0``)
and nobody objecting or returning anything, every application's recorded instants
are the plan's (``aidflow plan``): the notices are posted and end exactly when the
plan says, each review opens when the notice before it ends, the fixed dates are
missed by exactly the plan's margin, and the funds arrive in every application at
the instant the season recorded. Each of these instants comes from a different
workflow's clock (the application's timers, the season's update, the payout
batch's signals), so a clock out of step would show here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select
from temporalio import workflow

from models.calendar import SHANGHAI, WorkingCalendar
from models.planner import plan_season
from models.programmes import COUNTY_SUBSIDY
from store.db import make_engine
from store.tables import AuditEntry
from workers.officials import SimulationStalled
from workers.settings import Settings
from workers.simulate import Scenario, office_instant, run_simulation
from workers.simulate.clocks import PAST_BY
from workers.simulate.server_load import parse

pytestmark = pytest.mark.devserver
ROOT = Path(__file__).parent.parent


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def test_simulated_season_matches_the_plan(tmp_path: Path, calendar: WorkingCalendar) -> None:
    scenario = Scenario(
        applications=8,
        season=2027,
        seed=3,
        officials_delay=0,
        objection_rate=0,
        return_rate=0,
        rejection_rate=0,
        bank_return_rate=0.125,  # one closed account: returned, corrected, re-paid
    )
    result = await run_simulation(scenario, Settings(data_dir=tmp_path), data_dir=tmp_path / "sim")
    assert result.outcomes == {"paid": 8}, result.outcomes
    assert result.bank_returns == 1 and result.batches == 2
    assert result.report_md and Path(result.report_md).exists()
    assert result.report_as_of == "season_end"  # the season closed and wrote its summary
    assert result.roster and Path(result.roster).exists()
    # The simulator's calendar cannot change under its workflows: each application
    # computed its notices and projections from the table in its input, and asked the
    # calendar nothing. Its local activities are the trail's writes, those that say a
    # word to a notice too (its joins of its notices, and its call of a posting whose
    # automatic time came: sealed signals answered by nothing, issue 20), and nothing else.
    cost = result.cost_per_paid_application
    assert {k for k in cost if k.startswith("local_activities:")} == {
        "local_activities:record_events",
        "local_activities:record_events_and_tell",
    }, cost
    # Two joins (village, township) and a call for each posting not made by its owner first.
    assert 2 <= cost["local_activities:record_events_and_tell"] <= 4, cost
    assert cost["workflow_tasks"] > 10 and cost["timers"] >= 4
    # Counted as bench.cost counts a baseline: bytes as protobuf, billable actions, and
    # none of the time-skipping server's own events (a fast-forward writes two).
    assert 0 < cost["billable_actions"] < cost["history_events"] < 200
    assert 100 * cost["history_events"] < cost["history_bytes"] < 1000 * cost["history_events"]
    assert "activities" not in cost, cost  # no activity of its own: no task for an answer
    # What its server did, from the server's own metrics: a fast-forward is an update of
    # the workflow's options (a restarted one is another); the persistence beneath it.
    # (The server reports its counters every second or so: the last moment's may be
    # missing from what was read.)
    load = result.server_load
    options_updates = load["frontend_calls"]["UpdateWorkflowExecutionOptions"]
    assert 0.9 * result.fast_forwards <= options_updates, (options_updates, result.fast_forwards)
    assert load["frontend_calls"]["StartWorkflowExecution"] >= 8
    assert load["persistence_operations"] > 0 and load["cpu_seconds"] > 0

    plan = {s.stage: s for s in plan_season(COUNTY_SUBSIDY, 2027, calendar).steps}
    engine = make_engine(f"sqlite:///{tmp_path / 'sim' / 'aidflow.db'}")
    with Session(engine) as session:
        rows = session.exec(
            select(AuditEntry).order_by(col(AuditEntry.workflow_id), col(AuditEntry.seq))
        ).all()
    engine.dispose()
    trails: dict[str, list[AuditEntry]] = {}
    for r in rows:
        trails.setdefault(r.workflow_id, []).append(r)
    assert len(trails) == 8
    # The simulator acts PAST_BY after each planned instant (workers/simulate/clocks.py),
    # and real time passes between simulated instants.
    slack = PAST_BY + timedelta(seconds=30)
    for wf, trail in trails.items():
        posted = [e for e in trail if e.kind == "notice_posted"]
        assert [e.stage for e in posted] == ["village_notice", "township_notice"], wf
        for e in posted:
            step = plan[e.stage]
            # The notice's own instants: equal to the plan's, to the microsecond.
            ends_at = datetime.fromisoformat(e.detail["ends_at"])
            assert ends_at == step.earliest_end, (wf, e.stage)
            assert [date.fromisoformat(d) for d in e.detail["counted_days"]] == list(
                step.counted_days
            )
            # Posted at the plan's instant, and said on its trail on the application's
            # clock: an owner's posting when it is told, an automatic one (the notice's
            # timer: the application is not woken for it) with the period's end.
            posted_at = datetime.fromisoformat(e.detail["posted_at"])
            assert abs(posted_at - step.earliest_start) < slack, (wf, e.stage, posted_at)
            said = step.earliest_end if e.detail["posting"] == "automatic" else posted_at
            assert abs(_aware(e.at) - said) < slack, (wf, e.stage, e.at)
        entered = {e.stage: _aware(e.at) for e in trail if e.kind == "stage_entered"}
        for stage in ("township_review", "county_approval", "awaiting_funds"):
            assert abs(entered[stage] - plan[stage].earliest_start) < slack, (wf, stage)
        # The season's funds arrival, recorded by the application at the season's instant.
        funds = next(e for e in trail if e.kind == "funds" and "arrived_at" in e.detail)
        assert abs(_aware(funds.at) - datetime.fromisoformat(funds.detail["arrived_at"])) < slack
        paid = next(e for e in trail if e.kind == "payment" and e.detail.get("status") == "paid")
        assert _aware(paid.at) >= _aware(funds.at)

    # The deadline statistics say what the plan says: the township notice cannot end by
    # 10 September 2027 nor the county approve by the 15th; both by exactly the plan's margin.
    misses = {m.key: m for m in result.misses}
    for key, stage in (("reviews_done", "township_notice"), ("county_approval", "county_approval")):
        planned_late = -plan[stage].slack.total_seconds() / 86400
        assert planned_late > 0
        assert misses[key].missed == 8
        assert all(abs(d - planned_late) < 0.01 for d in misses[key].late_days), (
            key,
            misses[key].late_days,
            planned_late,
        )


async def test_the_same_seed_gives_the_same_season(tmp_path: Path) -> None:
    """A what-if tool must answer the same question the same way: every applicant draws
    from its own seeded stream, so the order in which concurrent events finish (which
    varies from run to run) changes nothing."""
    scenario = Scenario(
        applications=16,
        seed=11,
        objection_rate=0.3,
        return_rate=0.3,
        rejection_rate=0.1,
        bank_return_rate=0.125,
    )

    retries: list[dict[str, int]] = []  # each run's: a difference below may follow one

    async def season(run: str) -> tuple[tuple[object, ...], list[float]]:
        r = await run_simulation(scenario, Settings(data_dir=tmp_path), data_dir=tmp_path / run)
        misses = [(m.key, m.missed, m.by_stage, m.never_done) for m in r.misses]
        late = [d for m in r.misses for d in m.late_days]
        # The report shown is the season summary, written when the season closed: it
        # counts the payments made after the payout date too (here, most of them).
        assert r.report_as_of == "season_end" and r.report_md, r.report_md
        paid = r.outcomes.get("paid", 0)
        assert f"paid: **{paid}** ({paid * 3000:,} CNY)" in Path(r.report_md).read_text("utf-8")
        # Applicant by applicant, not only in total.
        assert len(r.by_applicant) == 16 and len(r.outcome_digest) == 16
        # No application's clock moved without the simulation (it would do all late).
        assert not r.clocks_ahead, r.clocks_ahead
        retries.append(r.retries)
        return (
            r.outcomes,
            r.by_applicant,
            r.objections,
            r.returns,
            r.bank_returns,
            r.batches,
            misses,
        ), late

    first, late_first = await season("first")
    assert first[2] and first[3] and first[4], first  # objections, returns, bank returns
    payout = next(m for m in first[6] if m[0] == "payout")  # type: ignore[attr-defined]
    assert payout[1] > 0, payout  # paid after the payout date: missing from that date's report
    second, late_second = await season("second")
    assert second == first
    # How late, in days: equal but for the seconds of real time between simulated instants.
    assert len(late_second) == len(late_first)
    differ = [
        (i, a, b)
        for i, (a, b) in enumerate(zip(late_first, late_second, strict=True))
        if abs(a - b) >= 0.01
    ]
    assert not differ, (differ, first[6], retries)


def test_office_instant(calendar: WorkingCalendar) -> None:
    import random

    friday_evening = datetime(2027, 9, 10, 19, 0, tzinfo=SHANGHAI)
    assert office_instant(
        calendar, friday_evening, 0, random.Random(1)
    ) == friday_evening + timedelta(seconds=1)
    rng = random.Random(5)
    for _ in range(200):
        at = office_instant(calendar, friday_evening, 2.0, rng)
        local = at.astimezone(SHANGHAI)
        assert at > friday_evening
        assert calendar.is_working_day(local.date()), local
        # Within office hours (08:30-17:30), or a little after a same-day arrival.
        assert (8, 30) <= (local.hour, local.minute) <= (17, 30), local


def test_simulate_refuses_bad_knobs_naming_each() -> None:
    aidflow = str(Path(sys.executable).parent / "aidflow")
    r = subprocess.run(
        [
            aidflow,
            "simulate",
            "--applications",
            "0",
            "--objection-rate",
            "1.5",
            "--officials-delay",
            "-1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    for name in ("--applications", "--objection-rate", "--officials-delay"):
        assert name in r.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) has stopped too.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux: /proc, prctl")
def test_the_simulators_server_dies_with_it() -> None:
    """A killed ``aidflow simulate`` (or test run) leaves no dev server behind: it did,
    after a SIGTERM, because the SDK starts that server and stops it only on shutdown."""
    script = (
        "import asyncio, os, sys\n"
        "from workers.embedded import child_pids\n"
        "from workers.simulate import start_time_skipping_server\n"
        "async def main():\n"
        "    env = await start_time_skipping_server()\n"
        "    servers = [p for p in child_pids()\n"
        "               if 'start-dev' in open(f'/proc/{p}/cmdline').read()]\n"
        "    print(*servers, flush=True)\n"
        "    await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    servers = [int(p) for p in proc.stdout.readline().split()]
    assert len(servers) == 1 and _alive(servers[0])
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 15
    while _alive(servers[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(servers[0]), "the dev server outlived the process that started it"


async def test_a_failed_event_ends_the_simulation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One event failing stops the season at once, with that failure, while decisions are
    in flight. The SDK reports a cancelled update call as an RPC timeout; the simulator
    retried those, so the in-flight decisions ignored their cancellation and a failed
    10,000 run sat idle instead of exiting (this test then hangs until pytest's timeout)."""
    from workers.officials.review import ReviewDesk

    decide = ReviewDesk.decide
    calls = 0

    async def failing_decide(
        self: ReviewDesk, season: Any, a: Any, at: datetime, attempt: int = 1
    ) -> None:
        nonlocal calls
        calls += 1
        if calls == 20:
            raise RuntimeError("injected: an official's system is down")
        await decide(self, season, a, at, attempt)

    monkeypatch.setattr(ReviewDesk, "decide", failing_decide)
    scenario = Scenario(applications=40, seed=5)
    with pytest.raises(RuntimeError, match="official's system is down"):
        await run_simulation(scenario, Settings(data_dir=tmp_path), data_dir=tmp_path / "sim")
    assert calls >= 20


async def test_a_new_student_aid_season_simulated(tmp_path: Path) -> None:
    """The simulated people act on the programme's steps: the school submits, the county
    reviews and resolves objections, students sign for their grants; some never come."""
    scenario = Scenario(
        programme="new-student-aid",
        applications=16,
        seed=3,
        objection_rate=0.2,
        return_rate=0.2,
        unclaimed_rate=0.2,
    )
    r = await run_simulation(scenario, Settings(data_dir=tmp_path), data_dir=tmp_path / "sim")
    received = r.outcomes.get("received", 0)
    unclaimed = r.outcomes.get("still in awaiting_receipt", 0)
    assert received and unclaimed and r.objections and r.returns, r.outcomes
    assert r.funds_requests == 0 and r.batches == 0  # paid by signature, not by the bank
    assert r.report_as_of == "season_end" and r.report_md
    report = Path(r.report_md).read_text("utf-8")
    assert "## Unclaimed grants / 未签领" in report and "## Signed receipts" in report
    assert [m.key for m in r.misses] == ["review_done", "handed_out"]
    handed_out = next(m for m in r.misses if m.key == "handed_out")
    assert handed_out.missed >= unclaimed and handed_out.by_stage.get("awaiting_receipt")


async def test_a_student_loan_year_simulated(tmp_path: Path) -> None:
    """The centre takes the loans on working days; each contract goes to the bank by
    itself; universities confirm receipts (some never do: overdue), the bank pays."""
    scenario = Scenario(programme="student-loan", applications=8, seed=5, unclaimed_rate=0.25)
    r = await run_simulation(scenario, Settings(data_dir=tmp_path), data_dir=tmp_path / "sim")
    lent = r.outcomes.get("lent", 0)
    silent = sum(v for k, v in r.outcomes.items() if k.startswith("still in "))
    assert lent and silent and lent + silent + r.outcomes.get("rejected", 0) == 8, r.outcomes
    assert r.funds_requests == 0 and r.batches == 0  # the bank lends: no payout of aidflow's
    outbox = tmp_path / "sim" / "bank" / "loans" / "outbox"
    assert len(list(outbox.glob("loan-*.csv"))) == 8
    missed = {m.key: m.missed for m in r.misses}
    assert (
        missed["contract_sent"] == 0 and missed["receipt_confirmed"] + missed["loan_paid"] >= silent
    )


async def test_a_pairing_year_simulated(tmp_path: Path) -> None:
    """A small pairing year (the plan's is 904 households of 67 departments): every case
    judged month by month and closed at the year's end; a few calls and visits missed."""
    from workers.simulate.cases import PairingScenario, run_pairing_simulation

    scenario = PairingScenario(households=6, departments=2, call_missed=0.1, visit_missed=0.2)
    r = await run_pairing_simulation(scenario, Settings(data_dir=tmp_path), data_dir=tmp_path / "p")
    assert r.cases == 6 and r.cadres == 18 and r.closed == {"year_ended": 6}
    # April to December: 9 months and 3 quarters (Q2 to Q4) and the year, per cadre.
    assert r.met["monthly_phone"] + r.missed.get("monthly_phone", 0) == 18 * 9
    assert r.met["quarterly_visit"] + r.missed.get("quarterly_visit", 0) == 18 * 3
    assert (
        r.missed.get("monthly_phone")
        and r.met["yearly_gift"] + r.missed.get("yearly_gift", 0) == 18
    )
    assert [d[0] for d in r.departments] == ["D001", "D002"]


async def test_a_freshman_grant_cohort_simulated(tmp_path: Path) -> None:
    """A roster programme's cohort: the county bureau enters the students, the
    civil-affairs bureau and the provincial Youth League give their word on each (some
    found ineligible), the Youth League's notice, then 10,000 CNY each by card."""
    scenario = Scenario(
        programme="freshman-grant",
        round="undergraduate",
        applications=8,
        seed=5,
        rejection_rate=0.25,
    )
    r = await run_simulation(scenario, Settings(data_dir=tmp_path), data_dir=tmp_path / "sim")
    assert r.outcomes.get("paid") and r.outcomes.get("rejected"), r.outcomes
    assert sum(r.outcomes.values()) == 8 and r.funds_requests >= 1 and r.batches >= 1
    report = Path(r.report_md or "").read_text("utf-8")
    assert "freshman-grant" in report and "2027-undergraduate" in report


async def test_a_rain_and_dew_year_simulated_round_by_round(tmp_path: Path) -> None:
    """Rain and Dew's year is two rounds, each simulated in turn (``aidflow simulate
    --programme rain-and-dew``): the registers pass most households by themselves, the
    leading group answers for the child missing from the vocational registry, the village
    posts its notice with a photograph, the finance bureau pays onto the card."""
    from models.programmes import REGISTRY
    from workers.simulate import rounds_to_run

    rounds = rounds_to_run(REGISTRY["rain-and-dew"], "")
    assert rounds == ["spring", "autumn"]
    for round_ in rounds:
        scenario = Scenario(programme="rain-and-dew", round=round_, applications=8, seed=7)
        r = await run_simulation(
            scenario, Settings(data_dir=tmp_path), data_dir=tmp_path / f"sim-{round_}"
        )
        assert sum(r.outcomes.values()) == 8 and r.outcomes.get("paid"), r.outcomes
        assert r.funds_requests >= 1 and r.batches >= 1
        report = Path(r.report_md or "").read_text("utf-8")
        assert f"2027-{round_}" in report and "rain-and-dew" in report


class _FakeNoticeSeason:
    """What the notice desk's posting asks of its season."""

    def __init__(self) -> None:
        from collections import Counter
        from types import SimpleNamespace

        self.counts: Counter[str] = Counter()
        self.clocks = SimpleNamespace(past_by=PAST_BY)

    async def diagnose(self, workflow_id: str, context: str) -> str:
        return f"{workflow_id}: {context}"


def _notice_status(pending: dict[str, datetime], posting: list[str], posted_at: datetime) -> Any:
    """A notice's status: its waiting members (joined when), its one posting."""
    from types import SimpleNamespace

    return SimpleNamespace(
        pending=[SimpleNamespace(workflow_id=w, joined_at=t) for w, t in pending.items()],
        postings=[SimpleNamespace(members=posting, posted_at=posted_at)],
    )


def _township_notice() -> tuple[Any, Any]:
    from models.steps import NoticeStep
    from workers.officials import NoticePlan, desk_for, people

    step = next(
        s
        for s in COUNTY_SUBSIDY.steps
        if isinstance(s, NoticeStep) and s.stage == "township_notice"
    )
    desk = desk_for(step, COUNTY_SUBSIDY)
    plan = NoticePlan("notice/x", step, people.county_office(step.owner, "341225000000"))
    plan.postings = 1
    return desk, plan


async def test_a_planned_member_the_notice_left_for_its_next_posting_waits_for_that_one() -> None:
    """The notice decides who is on a posting (their join before its instant); the
    simulator's plan follows it instead of waiting for a member never to be told."""
    from types import SimpleNamespace

    desk, plan = _township_notice()
    at = datetime(2027, 9, 10, 8, 0, tzinfo=UTC)
    posted_at = at + PAST_BY
    on, late = SimpleNamespace(workflow_id="wf-on"), SimpleNamespace(workflow_id="wf-late")
    season = _FakeNoticeSeason()
    status = _notice_status({"wf-late": posted_at + timedelta(seconds=2)}, ["wf-on"], posted_at)
    told = desk._on_posting(season, plan, [on, late], status)
    assert told == [on]
    # Ready no earlier than the posting that left it (not planned for its instant again).
    assert plan.pending == [(late, posted_at)]
    assert season.counts["notice members left for a later posting"] == 1


async def test_the_owner_posts_after_a_join_that_came_a_moment_late() -> None:
    from types import SimpleNamespace

    desk, plan = _township_notice()
    at = datetime(2027, 9, 10, 8, 0, tzinfo=UTC)
    member = SimpleNamespace(workflow_id="wf-1")

    def joined(at_: datetime) -> Any:
        return _notice_status({"wf-1": at_}, [], at)

    season = _FakeNoticeSeason()
    # Joined before the owner's clock reaches the posting (at + PAST_BY): as planned.
    assert await desk._after_joins(season, plan, [member], at, joined(at + PAST_BY / 2)) == at
    # A moment after it: the posting waits for the join.
    late = joined(at + PAST_BY + timedelta(seconds=4))
    moved = await desk._after_joins(season, plan, [member], at, late)
    assert moved + PAST_BY == at + PAST_BY + timedelta(seconds=5)
    assert season.counts["notice postings moved after a late join"] == 1
    # Hours after it: a clock ahead of the simulation, said, not absorbed.
    with pytest.raises(SimulationStalled, match="past the posting"):
        await desk._after_joins(season, plan, [member], at, joined(at + timedelta(hours=8)))


def test_a_large_season_gets_a_county_of_more_villages(tmp_path: Path) -> None:
    """The sample county's seven villages carry up to 1,050 applicants (1,000 simulate the
    same season as before); 3,000 (or 10,000) get villages of their own townships, none carrying
    more than APPLICANTS_PER_VILLAGE, and the county imports as an office's would."""
    from collections import Counter

    from store.db import upgrade
    from store.sealing import Keys
    from workers.synthetic import (
        APPLICANTS_PER_VILLAGE,
        VILLAGES_PER_TOWNSHIP,
        applicants,
        county_places_csv,
        load_sample_county,
        sample_villages,
    )

    assert county_places_csv(1000) == county_places_csv(0)
    assert len(sample_villages(1050)) == 7 and len(sample_villages(1051)) == 8

    assert len(sample_villages(10_000)) == 67  # 7 + 60 in 6 townships
    forms = applicants(3000, 2027, 1)
    per_village = Counter(f.places.village_code for f in forms)
    assert len(per_village) == 20 and max(per_village.values()) <= APPLICANTS_PER_VILLAGE
    townships = Counter(v.places.township_code for v in sample_villages(3000))
    assert sorted(townships.values()) == [2, 2, 3, 3, VILLAGES_PER_TOWNSHIP]
    url = f"sqlite:///{tmp_path / 'county.db'}"
    upgrade(url)
    load_sample_county(make_engine(url), forms, 2027, Keys(b"k" * 32).hash_id, tmp_path)
    with Session(make_engine(url)) as s:
        from store.tables import Place

        assert len(s.exec(select(Place)).all()) == 1 + 5 + 20
    # Forms drawn for a larger county than the ones loaded: refused, not half-imported.
    with pytest.raises(ValueError, match="villages not in the county"):
        load_sample_county(make_engine(url), forms[7:8], 2027, Keys(b"k" * 32).hash_id)


async def test_a_busy_servers_timeout_is_asked_again_not_the_end_of_the_season() -> None:
    """A call past its timeout comes back CANCELLED, "Timeout expired": one ended a
    10,000-application simulation while 67 village notices posted at once (most likely a
    notice's status query). The desk's checks ask again (counted); any other failure
    still ends the run."""
    from temporalio.service import RPCError, RPCStatusCode

    from workers.officials.notice import _within

    season: Any = _FakeNoticeSeason()
    answers: list[Any] = [RPCError("Timeout expired", RPCStatusCode.CANCELLED, b""), True]

    async def check() -> bool:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return bool(answer)

    assert await _within(season, check)
    assert season.counts["notice checks asked again on a busy server"] == 1
    answers[:] = [RPCError("gone", RPCStatusCode.NOT_FOUND, b"")]
    with pytest.raises(RPCError):
        await _within(season, check)


async def test_a_notice_check_slows_down_and_waits_while_things_move(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The desk's checks come at once, then ever less often (at 10,000 applications
    hundreds of them, ten a second each, took the cores the joins needed); and the run
    stops only after ``NOTICE_WITHIN_SECONDS`` in which nothing moved, not while the
    members are still joining. On a clock of its own: no test waits minutes."""
    from types import SimpleNamespace

    from workers.officials import base, notice

    clock = [0.0]
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock[0] += seconds

    # The poller the notice desk shares with the season's read-model wait (base.py).
    monkeypatch.setattr(base, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(base, "asyncio", SimpleNamespace(sleep=sleep))
    season: Any = _FakeNoticeSeason()

    async def never() -> bool:
        return False

    assert not await notice._within(season, never)
    assert pauses[0] == notice.FIRST_CHECK_AFTER
    assert pauses == sorted(pauses)
    assert max(pauses) == notice.CHECKS_AT_MOST_EVERY
    assert notice.NOTICE_WITHIN_SECONDS <= clock[0] < notice.NOTICE_WITHIN_SECONDS + 2.5
    assert notice.CHECKS_AT_MOST_EVERY >= 1.0 and len(pauses) < 200  # not 3,000 in 300 s

    # Members joining for ten minutes, then none: it waits the ten minutes and 300 s more.
    clock[0] = 0.0
    assert not await notice._within(season, never, lambda: min(clock[0], 600.0) // 10)
    assert (
        600.0 + notice.NOTICE_WITHIN_SECONDS <= clock[0] < 600.0 + notice.NOTICE_WITHIN_SECONDS + 15
    )


async def test_a_question_that_timed_out_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """``again``: a request refused for a timeout, or a busy server's RPC failure of a
    question (a notice's status, which no client call turns into a refusal), is sent
    again after a pause, counted; another failure is raised."""
    from collections import Counter
    from types import SimpleNamespace

    from temporalio.service import RPCError, RPCStatusCode

    from workers.client import Refused
    from workers.simulate.season import SeasonSimulation

    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr("workers.simulate.season.asyncio.sleep", pause)
    sim: Any = SimpleNamespace(counts=Counter())
    failures: list[Exception] = [
        Refused("county-subsidy/2027/341225/x: Timeout expired"),
        RPCError("Timeout expired", RPCStatusCode.CANCELLED, b""),
    ]

    async def status() -> str:
        if failures:
            raise failures.pop(0)
        return "shown"

    assert await SeasonSimulation.again(sim, status) == "shown"
    assert sim.counts["requests repeated after a timeout"] == 2
    assert pauses == [1.0, 2.0]  # each repeat after a pause, longer each time

    async def refused() -> str:
        raise RPCError("bad", RPCStatusCode.INVALID_ARGUMENT, b"")

    with pytest.raises(RPCError):
        await SeasonSimulation.again(sim, refused)


async def test_a_simulated_notices_clock_moves_only_when_the_driver_moves_it(
    ts_env: Any,
) -> None:
    """On this server a workflow started with time skipping on and no fast-forward skips
    to its next timer whenever nothing is in flight. A simulated notice that posted on a
    member's word before the driver moved it skipped over its posting's end and its
    quiet days and ended: the late members started a new notice, its postings counted
    from 1 again, and a 10,000-application season stopped at simulated 2 September. The
    simulator's notices start with skipping off: their clock keeps the wall clock's pace
    until the driver moves it, and stops skipping again when the move is over; the
    tests' keep the automatic skipping.
    A stand-in named NoticeWorkflow (the interceptor goes by the name): a join, then a
    month's wait."""
    import uuid as uuid_

    from temporalio.client import Client, WithStartWorkflowOperation, WorkflowExecutionStatus
    from temporalio.common import WorkflowIDConflictPolicy
    from temporalio.worker import Worker

    from workers.simulate.clocks import Clocks, NoticeClock, _StartAtSimulatedInstant

    queue = f"notice-clock-{uuid_.uuid4().hex[:8]}"

    async def started(skip_when_idle: bool) -> tuple[str, Client]:
        config = ts_env.client.config()
        config["interceptors"] = [NoticeClock(skip_when_idle=skip_when_idle)]
        client = Client(**config)
        wf_id = f"notice/{uuid_.uuid4().hex}"
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            "NoticeWorkflow",
            id=wf_id,
            task_queue=queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        assert (
            await client.execute_update_with_start_workflow(
                "join", start_workflow_operation=start, result_type=str
            )
            == "joined"
        )
        return wf_id, client

    async def clock_and_status(client: Client, wf_id: str) -> tuple[datetime, Any]:
        raw = (await client.get_workflow_handle(wf_id).describe()).raw_description
        clock = raw.workflow_extended_info.time_skipping_info.current_time.ToDatetime(tzinfo=UTC)
        return clock, raw.workflow_execution_info.status

    async with Worker(ts_env.client, task_queue=queue, workflows=[QuietNotice]):
        held, client = await started(skip_when_idle=False)
        skipping, skip_client = await started(skip_when_idle=True)
        deadline = time.monotonic() + 30
        while (await clock_and_status(skip_client, skipping))[1] != (
            WorkflowExecutionStatus.COMPLETED.value
        ):
            assert time.monotonic() < deadline, "the tests' notice did not skip its month"
            await asyncio.sleep(0.2)
        # The same month's timer, by now long skipped in the other: this one waits.
        await asyncio.sleep(1.0)
        clock, status = await clock_and_status(client, held)
        assert status == WorkflowExecutionStatus.RUNNING.value
        assert abs(clock - datetime.now(UTC)) < timedelta(minutes=1), clock
        # The driver moves it a day (not the month of its timer), and it stays there.
        clocks = Clocks(client, _StartAtSimulatedInstant())
        await clocks.track(held)
        assert await clocks.advance(held, clock + timedelta(days=1))
        await asyncio.sleep(1.0)
        moved, status = await clock_and_status(client, held)
        assert status == WorkflowExecutionStatus.RUNNING.value
        assert timedelta(days=1) < moved - clock < timedelta(days=1, minutes=1), moved
        with contextlib.suppress(Exception):
            await client.get_workflow_handle(held).terminate("test finished")


@workflow.defn(name="NoticeWorkflow", sandboxed=False)
class QuietNotice:
    """A stand-in for the notice: a join, then a month's wait."""

    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(timedelta(days=30))

    @workflow.update
    async def join(self) -> str:
        return "joined"


def test_the_servers_metrics_are_read_by_call_and_by_operation() -> None:
    text = (
        "# HELP service_requests service_requests counter\n"
        "# TYPE service_requests counter\n"
        'service_requests{namespace="default",operation="StartWorkflowExecution",'
        'service_name="frontend"} 3\n'
        'service_requests{namespace="default",operation="StartWorkflowExecution",'
        'service_name="history"} 3\n'
        'service_requests{namespace="x",operation="StartWorkflowExecution",'
        'service_name="frontend"} 2\n'
        "# HELP persistence_requests persistence_requests counter\n"
        "# TYPE persistence_requests counter\n"
        'persistence_requests{operation="GetCurrentExecution",service_name="history"} 4\n'
        'persistence_requests{operation="GetCurrentExecution",service_name="frontend"} 1\n'
        "# HELP persistence_latency persistence_latency histogram\n"
        "# TYPE persistence_latency histogram\n"
        'persistence_latency_bucket{operation="GetCurrentExecution",le="+Inf"} 5\n'
        'persistence_latency_sum{operation="GetCurrentExecution"} 0.25\n'
        'persistence_latency_count{operation="GetCurrentExecution"} 5\n'
    )
    load = parse(text).as_json()
    # The clients' calls are the frontend's (summed over namespaces); the history
    # service's own calls are not theirs.
    assert load["frontend_calls"] == {"StartWorkflowExecution": 5}
    assert load["persistence_operations"] == 5
    assert load["persistence_most_time"] == {
        "GetCurrentExecution": {"operations": 5, "seconds": 0.2}
    }


def test_only_workflows_of_one_run_are_named_by_their_run() -> None:
    """A fast-forward names the run of a workflow whose id never names another: an
    application. A season continues as new and a notice is started again under its id;
    a stale run named for them would move a closed run's clock, not the season's."""
    import inspect

    import workflows.application
    import workflows.notice
    import workflows.season
    from workers.simulate.clocks import ONE_RUN

    assert {workflows.application.ApplicationWorkflow.__name__} == ONE_RUN
    for module in (workflows.application,):
        assert "continue_as_new(" not in inspect.getsource(module)
    assert "continue_as_new(" in inspect.getsource(workflows.season)
    assert workflows.notice.NoticeWorkflow.__name__ not in ONE_RUN
