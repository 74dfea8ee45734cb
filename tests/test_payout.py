"""R7: funds request, funds arrival, card payout in batches, returns and re-payment, the season report.

Clocks: every workflow has its own virtual clock under per-workflow time
skipping. The tests keep them consistent the way the county's calendar does:
they move every application, and the season workflow, to the same instant
before the workflows talk to each other (payout batches inherit the season's).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.funds import FundsActivities, FundsRequestInput, PaymentResults
from activities.report import build_report, to_markdown
from models.application import Actor, DecisionRequest, WithdrawalRequest
from models.calendar import WorkingCalendar
from models.domain import DecisionKind, Role
from models.ids import season_workflow_id
from models.payout import FundsRequestSummary, PreparedBatch
from store.sealing import Keys
from store.status import read_status
from store.tables import ApplicationRow, OutboxMessage, Payment
from tests.conftest import AppStack, Registry, make_stack
from tests.support import (
    COUNTY,
    TOWNSHIP,
    VILLAGE,
    applicant,
    applicant_of,
    county_official,
    township_official,
    village_official,
)
from tests.test_application_workflow import Case, cst, rid, write_history
from workers.client import AidflowClient, Refused, query_when_ready
from workers.simulate import start_time_skipping_server
from workers.worker import Dependencies
from workflows.season import SeasonWorkflow

pytestmark = pytest.mark.devserver

FINANCE = Actor(id="finance-1", name="县财政局", role=Role.COUNTY_FINANCE, place_code=COUNTY)
BUREAU = county_official(7)


async def to_awaiting_funds(case: Case) -> None:
    await case.approve("village_review", village_official())
    await case.wait_for(
        lambda s: s.notice is not None and s.notice.posted_at == cst(9, 1),
        "village posting scheduled",
    )
    await case.advance_to(cst(9, 8, 0, 1))
    await case.at_stage("township_review")
    await case.approve("township_review", township_official())
    await case.wait_for(
        lambda s: s.stage == "township_notice" and s.waiting_until is not None, "township notice"
    )
    await case.advance_to(cst(9, 18, 0, 1))
    await case.at_stage("county_approval")
    await case.approve("county_approval", county_official())
    await case.at_stage("awaiting_funds")


async def season_handle(stack: AppStack) -> WorkflowHandle[Any, Any]:
    return stack.api.client.get_workflow_handle_for(
        SeasonWorkflow.run, season_workflow_id("county-subsidy", 2027, COUNTY)
    )


async def advance(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], to: datetime) -> None:
    delta = to - await env.get_current_time(handle)
    if delta > timedelta(0):
        await env.fast_forward(handle, delta)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, tries: int = 200) -> None:
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"never: {what}")


@pytest.fixture
def new_case(app_stack: AppStack, ts_env: WorkflowEnvironment) -> Callable[..., Awaitable[Case]]:
    from tests.support import IN_WINDOW_2027, form
    from tests.test_application_workflow import _SERIALS

    async def make(**overrides: Any) -> Case:
        serial = next(_SERIALS)
        wf = await app_stack.api.submit(form(serial, **overrides), now=IN_WINDOW_2027)
        case = Case(app_stack.api, ts_env, wf)

        async def first_task_done() -> bool:
            return read_status(app_stack.engine, wf) is not None

        # Its first workflow task's write is in the store before it is asked anything: a
        # query while that task runs splits it in two, and the recorded costs with it.
        await eventually(first_task_done, "the first workflow task")
        await case.wait_for(lambda s: s.waiting_for == "village_committee", "started")
        return case

    return make


async def test_full_season_paid_returned_repaid_and_reported(
    new_case: Callable[..., Awaitable[Case]],
    app_stack: AppStack,
    ts_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    api, engine = app_stack.api, app_stack.engine
    not_applied = enrol_one_who_does_not_apply(app_stack, tmp_path)
    good = [await new_case() for _ in range(2)]
    closed = await new_case()  # the bank will return its payment: a closed account
    rejected = await new_case()
    withdrawn = await new_case()
    for c in [*good, closed, withdrawn]:
        await to_awaiting_funds(c)
    await rejected.decide(
        "village_review", DecisionKind.REJECT, village_official(), reason="非全日制本科"
    )
    # Approved, not yet on a funds request (the store's roster says so): it may withdraw.
    await withdrawn.api.withdraw(
        withdrawn.wf,
        WithdrawalRequest(
            request_id=rid(), actor=applicant_of(withdrawn.wf), reason="已获其他资助"
        ),
    )
    await rejected.at_stage("rejected")
    await withdrawn.at_stage("withdrawn")

    with Session(engine) as s:
        row = s.get(ApplicationRow, closed.wf)
        assert row is not None
        closed_suffix = app_stack.deps.keys.open(row.account_sealed)[-5:]
    app_stack.bank.rules.closed_account_suffixes = (closed_suffix,)

    season = await season_handle(app_stack)
    await advance(ts_env, season, cst(9, 18, 0, 2))

    # The funds request takes the three county-approved applications, with the roster.
    summary = await api.request_funds("county-subsidy", 2027, COUNTY, BUREAU, request_id="fr-1")
    assert summary.count == 3 and summary.total_cny == 9000
    assert sorted(summary.workflow_ids) == sorted(c.wf for c in [*good, closed])
    from openpyxl import load_workbook

    ws = load_workbook(summary.roster_path).active
    assert ws is not None and ws.max_row == 5  # header, three rows, total
    assert "341225********" in str(ws.cell(2, 3).value) and "*" in str(ws.cell(2, 9).value)
    again = await api.request_funds("county-subsidy", 2027, COUNTY, BUREAU, request_id="fr-1")
    assert again == summary  # a repeat changes nothing
    # On the request, money is asked of finance for it: no longer withdrawn, by update or
    # by signal (the season told no application; the withdrawal looks the roster up).
    late = good[1]
    with pytest.raises(Refused, match="on funds request fr-1: it can no longer be withdrawn"):
        await api.withdraw(
            late.wf, WithdrawalRequest(request_id=rid(), actor=applicant_of(late.wf))
        )
    await late.handle.signal(
        "withdraw_signal", WithdrawalRequest(request_id=rid(), actor=applicant_of(late.wf))
    )
    refused = await late.wait_for_trail(lambda e: e.kind == "refused", "the signal refused")
    assert "on funds request fr-1" in refused.detail["reason"]
    await late.wait_for(lambda s: "fr-1" in s.details_en, "said on the funds request")

    # A wrong amount is refused with the difference; the right one releases the payout.
    with pytest.raises(
        Refused, match=r"does not match the request's 9000 CNY \(difference -3000 CNY\)"
    ):
        await api.funds_arrived(
            "county-subsidy", 2027, COUNTY, FINANCE, "fr-1", 6000, "CZ-2027-001"
        )
    arrival = await api.funds_arrived(
        "county-subsidy", 2027, COUNTY, FINANCE, "fr-1", 9000, "CZ-2027-001"
    )
    assert arrival.released == 3
    assert arrival.pay_by == cst(
        9, 21
    )  # ten days would be 29 Sep; the payout date (20 Sep) comes first

    for c in good:
        st = await c.at_stage("paid")
        assert st.waiting_for == ""
    st = await closed.wait_for(lambda s: s.stage == "awaiting_account_correction", "returned")
    assert st.waiting_for == "village_committee" and "account closed" in st.details_en

    # Only the village may correct the account; then it is re-paid in a later batch.
    with pytest.raises(Refused, match="needs village_committee"):
        await api.correct_account(
            closed.wf,
            applicant(),
            bank_name="阜南农商银行",
            account_number="6230201234567800999",
            account_holder="家长",
        )
    await api.correct_account(
        closed.wf,
        village_official(),
        bank_name="阜南农商银行",
        account_number="6230201234567800999",
        account_holder="家长",
    )
    await closed.wait_for(lambda s: s.stage == "awaiting_payment", "corrected")
    await advance(
        ts_env, season, cst(9, 18, 2)
    )  # the re-payment batch goes out after collecting corrections
    await closed.at_stage("paid")
    await closed.handle.result()
    await good[0].handle.result()
    await closed.save_history("returned_then_repaid")
    await good[0].save_history("paid")

    # Database and bank agree: every application paid once, exactly 3000, to the account on file.
    with Session(engine) as s:
        payments = s.exec(select(Payment).order_by(col(Payment.id))).all()
    paid = [p for p in payments if p.status == "paid"]
    assert sorted(p.workflow_id for p in paid) == sorted(c.wf for c in [*good, closed])
    assert all(p.amount_cny == 3000 for p in paid)
    returned = [p for p in payments if p.status == "returned"]
    assert [(p.workflow_id, p.attempt) for p in returned] == [(closed.wf, 1)]
    assert next(p for p in paid if p.workflow_id == closed.wf).account_masked.endswith("0999")
    ledger = app_stack.bank.ledger()
    assert len({x["idempotency_key"] for x in ledger}) == len(ledger) == 4
    assert app_stack.bank.paid_total() == 9000

    # The season report, against the outcome this test knows.
    report = build_report(engine, "county-subsidy", 2027, COUNTY)
    assert report.applications == 5
    assert report.by_stage == {"paid": 3, "rejected": 1, "withdrawn": 1}
    assert report.paid_count == 3 and report.paid_cny == 9000
    assert report.rejections_by_reason == {"非全日制本科": 1}
    assert len(report.returned_payments) == 1 and report.repaid == 1
    assert report.overdue_by_date == {"reviews_done": 4, "county_approval": 4}
    assert [x["name"] for x in report.roster] and len(report.roster) == 3
    md = to_markdown(report)
    assert "Returned: 1; re-paid since: 1." in md and "| 王家坝镇 | 5 | 3 | 9,000 | 1 |" in md

    # The season workflow wrote its reminders, and writes the report after the payout date.
    await advance(ts_env, season, cst(9, 21, 0, 5))
    await eventually(lambda: _report_ready(season), "season report")
    files = await season.query(SeasonWorkflow.report)
    assert files is not None and files.xlsx.endswith(".xlsx") and files.as_of == "payout_date"
    assert "at the payout date" in Path(files.markdown).read_text(encoding="utf-8")

    # Past the summary date, with everything paid, the season closes and writes its
    # summary as of then; the payout date's report stays as it was.
    await advance(ts_env, season, cst(10, 31, 0, 5))
    assert [b.paid for b in await asyncio.wait_for(season.result(), timeout=60)] == [2, 1]
    summary_files = await season.query(SeasonWorkflow.report)
    assert summary_files is not None and summary_files.as_of == "season_end"
    assert Path(summary_files.markdown).name.startswith("season-summary-")
    text = Path(summary_files.markdown).read_text(encoding="utf-8")
    assert "season summary / 工作总结" in text and "paid: **3** (9,000 CNY)" in text
    assert Path(files.markdown).exists() and files.markdown != summary_files.markdown
    # A closed season is not started afresh by a late request (its batches from b001).
    with pytest.raises(Refused, match="season of 341225000000 is closed"):
        await api.request_funds("county-subsidy", 2027, COUNTY, BUREAU, request_id="fr-late")
    if os.environ.get("AIDFLOW_RECORD_HISTORIES") == "1":
        write_history("season_with_two_batches", await season.fetch_history())
        batch = api.client.get_workflow_handle(f"payout/county-subsidy-2027-{COUNTY[:6]}-b001")
        write_history("payout_batch_with_a_return", await batch.fetch_history())
    with Session(engine) as s:
        reminders = s.exec(
            select(OutboxMessage).where(col(OutboxMessage.dedupe_key).contains("/reminder/"))
        ).all()
    assert {m.subject for m in reminders} == {"时间节点提醒"} and len(reminders) >= 3
    # The reviews' date is the townships' to keep: each township office is reminded at
    # its own place, not at the county's.
    townships = {m.recipient for m in reminders if "/reminder/reviews_done/0/" in m.dedupe_key}
    assert f"township_poverty_office@{TOWNSHIP}" in townships, townships
    assert f"township_poverty_office@{COUNTY}" not in {m.recipient for m in reminders}
    # 应补尽补: before the window closed, the village was told of its eligible student
    # who had not applied (masked), once.
    with Session(engine) as s:
        coverage = s.exec(
            select(OutboxMessage).where(col(OutboxMessage.dedupe_key).contains("/coverage/"))
        ).all()
    assert [(m.subject, m.recipient) for m in coverage] == [
        ("应补尽补提醒", f"village_committee@{VILLAGE}")
    ]
    assert not_applied[-4:] in coverage[0].body and not_applied not in coverage[0].body
    assert "尚有1名" in coverage[0].body


def enrol_one_who_does_not_apply(stack: AppStack, tmp_path: Path) -> str:
    """A registered-poor undergraduate of the village, in the database's registry and
    enrolment data, who never applies: the identity number."""
    from datetime import date

    from store.coverage import import_enrolment
    from store.importing import import_registry
    from tests.support import TOWNSHIP, make_national_id

    nid = make_national_id(880)
    registry = tmp_path / "registry.csv"
    registry.write_text(
        "household_no,head_name,member_ids,county_code,township_code,village_code,status,year\n"
        f"HH-880,户主,{nid},{COUNTY},{TOWNSHIP},{VILLAGE},active,2027\n",
        encoding="utf-8",
    )
    keys = stack.deps.keys
    assert import_registry(stack.engine, registry, keys.hash_id).imported == 1
    enrolment = tmp_path / "enrolment.csv"
    enrolment.write_text(
        "national_id,name,school,education_level,year_of_study\n"
        f"{nid},学生880,安徽大学,undergraduate_full_time,2\n",
        encoding="utf-8",
    )
    report = import_enrolment(stack.engine, enrolment, keys.hash_id, as_of=date(2027, 7, 31))
    assert report.imported == 1, report.problems
    return nid


async def _report_ready(season: WorkflowHandle[Any, Any]) -> bool:
    return await season.query(SeasonWorkflow.report) is not None


async def test_funds_arriving_late_marks_overdue(
    new_case: Callable[..., Awaitable[Case]], app_stack: AppStack, ts_env: WorkflowEnvironment
) -> None:
    case = await new_case()
    await to_awaiting_funds(case)
    await case.advance_to(cst(9, 21, 0, 5))  # the payout date passes with no funds
    st = await case.wait_for(lambda s: "payout" in s.overdue, "payout overdue")
    assert st.stage == "awaiting_funds"
    desc = await case.handle.describe()
    from models import search

    assert desc.typed_search_attributes.get(search.OVERDUE) is True


async def test_season_stays_open_while_requested_funds_have_not_arrived(
    keys: Keys, calendar: WorkingCalendar, registry: Registry, tmp_path: Path
) -> None:
    from tests.support import IN_WINDOW_2027, form
    from tests.test_application_workflow import _SERIALS

    # Its own server: this test closes the county's season, and a completed season is
    # not started again (by design), while the other tests share one server and county.
    env = await start_time_skipping_server()
    try:
        async with make_stack(env, keys, calendar, registry, tmp_path) as stack:
            case = Case(
                stack.api, env, await stack.api.submit(form(next(_SERIALS)), now=IN_WINDOW_2027)
            )
            await to_awaiting_funds(case)
            season = await season_handle(stack)
            await advance(env, season, cst(10, 28, 10))  # shortly before the summary date
            summary = await stack.api.request_funds(
                "county-subsidy", 2027, COUNTY, BUREAU, request_id="fr-before-summary"
            )
            await advance(env, season, cst(11, 2, 10))  # the summary date (30 Oct) has passed
            await eventually(lambda: _report_ready(season), "season report")
            desc = await season.describe()
            assert desc.status == WorkflowExecutionStatus.RUNNING
            assert "waiting for the funds of fr-before-summary" in (await season_details(season))

            await case.advance_to(cst(11, 2, 10))
            await stack.api.funds_arrived(
                "county-subsidy",
                2027,
                COUNTY,
                FINANCE,
                summary.request_id,
                summary.total_cny,
                "CZ-1102",
            )

            async def paid() -> bool:
                return (await case.status()).stage == "paid"

            await eventually(paid, "paid through the bank", tries=600)
            # Nothing is left open: the season closes by itself.
            batches = await asyncio.wait_for(season.result(), timeout=60)
            assert [b.paid for b in batches] == [1]
            if os.environ.get("AIDFLOW_RECORD_HISTORIES") == "1":
                write_history(
                    "season_open_until_requested_funds_arrive", await season.fetch_history()
                )
    finally:
        await env.shutdown()


class SlowFundsRequest(FundsActivities):
    """The funds request's roster is written slowly: held while ``held`` (as a worker
    killed mid-activity holds it until its start-to-close timeout)."""

    held = True

    @activity.defn(name="create_funds_request")
    def create_funds_request(self, req: FundsRequestInput) -> FundsRequestSummary:
        while self.held:
            time.sleep(0.05)
        return super().create_funds_request(req)


async def test_a_funds_request_under_way_at_the_summary_date_keeps_the_season_open(
    keys: Keys, calendar: WorkingCalendar, registry: Registry, tmp_path: Path
) -> None:
    """Found by the fault harness: a worker killed while a funds request was being
    written left its activity to be retried after its timeout; the summary date passed
    meanwhile, the season saw nothing open (the request was not yet on its books), closed
    once the request was written, and its applications waited for funds for good."""
    from tests.support import IN_WINDOW_2027, form
    from tests.test_application_workflow import _SERIALS

    slow: list[SlowFundsRequest] = []

    def replace(deps: Dependencies) -> list[Any]:
        slow.append(
            SlowFundsRequest(deps.engine, deps.keys, deps.calendar, deps.files_dir, deps.bank_dir)
        )
        return [slow[0].create_funds_request]

    env = await start_time_skipping_server()  # its own: the season may close
    try:
        async with make_stack(env, keys, calendar, registry, tmp_path, replace=replace) as stack:
            case = Case(
                stack.api, env, await stack.api.submit(form(next(_SERIALS)), now=IN_WINDOW_2027)
            )
            await to_awaiting_funds(case)
            season = await season_handle(stack)
            # Three seconds before the summary date (24:00 of 30 October); the season's
            # clock runs on with the wall clock while the request's roster is held.
            await advance(env, season, cst(10, 31) - timedelta(seconds=3))
            asking = asyncio.create_task(
                stack.api.request_funds(
                    "county-subsidy", 2027, COUNTY, BUREAU, request_id="fr-under-way"
                )
            )
            await eventually(lambda: _report_ready(season), "season report")
            await asyncio.sleep(4.0)  # the summary date passes while the request is written
            assert await env.get_current_time(season) > cst(10, 31)
            slow[0].held = False
            summary = await asyncio.wait_for(asking, 60)
            assert summary.count == 1
            for _ in range(50):  # (closing writes the summary first: give it time to)
                desc = await season.describe()
                assert desc.status == WorkflowExecutionStatus.RUNNING, (
                    "the season closed under a funds request"
                )
                await asyncio.sleep(0.1)
            assert "waiting for the funds of fr-under-way" in (await season_details(season))
    finally:
        await env.shutdown()


async def test_a_season_past_its_summary_date_stays_open_for_an_application_still_on_its_way(
    keys: Keys, calendar: WorkingCalendar, registry: Registry, tmp_path: Path
) -> None:
    """Found by the fault harness (2026-12-03, 1,000 applications on a loaded machine):
    the summary date passed while 945 applications were still in their notices; the
    season, with nothing requested, closed; their funds requests were refused ("closed")
    and they waited for funds for good. A season is over only once no application is still
    on its way to its funds; until then it says why it stays open, and takes the funds
    request."""
    from tests.support import IN_WINDOW_2027, form
    from tests.test_application_workflow import _SERIALS

    env = await start_time_skipping_server()  # its own: the season closes
    try:
        async with make_stack(env, keys, calendar, registry, tmp_path) as stack:
            api = stack.api
            case = Case(api, env, await api.submit(form(next(_SERIALS)), now=IN_WINDOW_2027))
            await case.approve("village_review", village_official())
            await case.wait_for(
                lambda s: s.notice is not None and s.notice.posted_at == cst(9, 1),
                "village posting",
            )
            await case.advance_to(cst(9, 8, 0, 1))
            await case.approve("township_review", township_official())
            await case.wait_for(
                lambda s: s.stage == "township_notice" and s.waiting_until is not None, "notice"
            )
            await case.advance_to(cst(9, 18, 0, 1))
            await case.at_stage("county_approval")  # and there it stays past the summary date
            season = await season_handle(stack)
            await advance(env, season, cst(10, 31, 0, 1))

            async def kept_open() -> bool:
                return "1 application(s) on their way to the funds keep the season open" in (
                    await season_details(season)
                )

            await eventually(kept_open, "the season says why it stays open")
            assert (await season.describe()).status == WorkflowExecutionStatus.RUNNING
            await case.approve("county_approval", county_official())
            await case.at_stage("awaiting_funds")
            summary = await api.request_funds("county-subsidy", 2027, COUNTY, BUREAU)
            assert summary.workflow_ids == [case.wf]
            await api.funds_arrived(
                "county-subsidy", 2027, COUNTY, FINANCE, summary.request_id, 3000, "CZ-LATE-1"
            )
            await case.at_stage("paid")
            await case.handle.result()
            # Every application has ended, and the season with it (at once, or when it
            # looks again a day on, if the paid row was saved after the batch ended).
            with contextlib.suppress(RPCError):
                await advance(env, season, await env.get_current_time(season) + timedelta(days=1))
            await asyncio.wait_for(season.result(), 60)
    finally:
        await env.shutdown()


async def test_a_long_season_continues_as_new_and_pays_in_capped_batches(
    keys: Keys, calendar: WorkingCalendar, registry: Registry, tmp_path: Path
) -> None:
    """A county's season outgrows one run's history: it hands its state to a new run
    (requests, arrivals, the unpaid, batches, the report) and carries on; a large
    release is split into disbursement files of at most payout_batch_size payments."""
    from tests.support import IN_WINDOW_2027, form
    from tests.test_application_workflow import _SERIALS

    env = await start_time_skipping_server()  # its own: this season is configured and closed
    try:
        async with make_stack(env, keys, calendar, registry, tmp_path) as stack:
            api = stack.api
            api.payout_batch_size = 2
            api.season_continue_after_events = 30
            cases = [
                Case(api, env, await api.submit(form(next(_SERIALS)), now=IN_WINDOW_2027))
                for _ in range(3)
            ]
            for c in cases:
                await to_awaiting_funds(c)
            season = await season_handle(stack)
            first_run = (await season.describe()).run_id
            await advance(env, season, cst(9, 18, 0, 2))
            summary = await api.request_funds(
                "county-subsidy", 2027, COUNTY, BUREAU, request_id="fr-long"
            )
            assert summary.count == 3
            arrival = await api.funds_arrived(
                "county-subsidy", 2027, COUNTY, FINANCE, "fr-long", 9000, "CZ-LONG"
            )
            assert arrival.batch_ids == [arrival.batch_id, arrival.batch_id[:-1] + "2"]

            async def all_paid() -> bool:
                return [(await c.status()).stage for c in cases] == ["paid"] * 3

            await eventually(all_paid, "all three paid", tries=600)

            async def handed_over() -> bool:
                if (await season.describe()).run_id == first_run:
                    return False
                return "of the season (continued as new)" in await season_details(season)

            await eventually(handed_over, "the season continued as new, and says so")
            # The new run knows what the old one did: repeats answer as before, from the
            # hand-over (the arrival) and from the file (the request's roster).
            again = await api.funds_arrived(
                "county-subsidy", 2027, COUNTY, FINANCE, "fr-long", 9000, "CZ-LONG"
            )
            assert again == arrival
            repeat = await api.request_funds(
                "county-subsidy", 2027, COUNTY, BUREAU, request_id="fr-long"
            )
            assert sorted(repeat.workflow_ids) == sorted(summary.workflow_ids)
            assert repeat.total_cny == 9000 and repeat.created
            assert sorted(
                (b.batch_id, b.paid) for b in await query_when_ready(season, SeasonWorkflow.batches)
            ) == [
                (arrival.batch_ids[0], 2),
                (arrival.batch_ids[1], 1),
            ]
            with Session(stack.engine) as s:
                paid = s.exec(select(Payment).where(Payment.status == "paid")).all()
            assert sorted(p.workflow_id for p in paid) == sorted(c.wf for c in cases)
            assert stack.bank.paid_total() == 9000  # nothing paid twice across the runs

            # The season still writes its report and closes by itself, with every batch.
            await advance(env, season, cst(11, 2, 10))
            batches = await asyncio.wait_for(season.result(), timeout=60)
            assert sorted(b.paid for b in batches) == [1, 2]
            runs = [
                w.status async for w in env.client.list_workflows(f"WorkflowId = '{season.id}'")
            ]
            assert runs.count(WorkflowExecutionStatus.CONTINUED_AS_NEW) >= 1, runs
            if os.environ.get("AIDFLOW_RECORD_HISTORIES") == "1":
                write_history("season_continued_as_new", await season.fetch_history())
                old = env.client.get_workflow_handle(season.id, run_id=first_run)
                write_history("season_before_continuing_as_new", await old.fetch_history())
    finally:
        await env.shutdown()


async def sent_to_the_bank(stack: AppStack, wf: str) -> Payment:
    """The application's payment, once its batch's file is in the bank's outbox (the
    application itself hears of it only with the bank's word)."""
    found: list[Payment] = []

    async def sent() -> bool:
        with Session(stack.engine) as s:
            found[:] = s.exec(select(Payment).where(Payment.workflow_id == wf)).all()
        return bool(found) and (stack.bank.bank.outbox / f"{found[-1].batch_id}.csv").exists()

    await eventually(sent, "sent to the bank")
    return found[-1]


async def season_details(season: WorkflowHandle[Any, Any]) -> str:
    meta = await query_when_ready(season, "__temporal_workflow_metadata")
    return str(meta.current_details)


async def test_payment_limit_passing_marks_overdue(
    new_case: Callable[..., Awaitable[Case]], app_stack: AppStack, ts_env: WorkflowEnvironment
) -> None:
    case = await new_case()
    await to_awaiting_funds(case)
    app_stack.bank.rules.delay_seconds = 10_000  # the bank does not answer in time
    season = await season_handle(app_stack)
    await advance(ts_env, season, cst(9, 18, 0, 2))
    summary = await app_stack.api.request_funds(
        "county-subsidy", 2027, COUNTY, BUREAU, request_id="fr-late-bank"
    )
    arrival = await app_stack.api.funds_arrived(
        "county-subsidy", 2027, COUNTY, FINANCE, summary.request_id, summary.total_cny, "CZ-late"
    )
    assert arrival.pay_by == cst(9, 21)
    await case.at_stage("awaiting_payment")
    await sent_to_the_bank(app_stack, case.wf)
    await case.advance_to(cst(9, 21, 0, 5))
    # Its limit is the payout date itself (the funds came less than ten days before it):
    # the miss is said once, by the date's watcher, to everyone the limit would tell.
    st = await case.wait_for(lambda s: "payout" in s.overdue, "payout date overdue")
    assert "payment_limit" not in st.overdue and "card payout done" in st.details_en
    overdue = [e for e in await case.api.trail(case.wf) if e.kind == "overdue"]
    assert [e.detail["fixed_date"] for e in overdue][-1] == "payout"

    async def county_told() -> bool:
        with Session(app_stack.engine) as s:
            msgs = s.exec(select(OutboxMessage).where(OutboxMessage.workflow_id == case.wf)).all()
        return any("打卡发放完成" in m.body and "暂定" in m.body for m in msgs)

    await eventually(county_told, "the county told, with the provisional note")


def test_a_payment_limit_before_the_payout_date_has_its_own_watch(
    calendar: WorkingCalendar,
) -> None:
    """The limit's own timer is left out only where the payout date's watcher says the
    same miss at the same instant to everyone the limit tells."""
    from types import SimpleNamespace

    from models.programmes import BUILTIN_PROGRAMMES
    from models.schedule import SeasonSchedules
    from models.steps import PayoutStep
    from workflows.steps.payout import PayoutRunner

    programme = BUILTIN_PROGRAMMES["county-subsidy"]
    schedule = SeasonSchedules(calendar).of(programme, 2027)
    step = programme.find_step(PayoutStep)
    assert step is not None
    app: Any = SimpleNamespace(programme=programme, schedule=schedule)
    runner = PayoutRunner(app, step)
    payout_due = schedule.due_at(step.due)
    assert runner._said_by_the_payout_date(payout_due)
    assert not runner._said_by_the_payout_date(payout_due - timedelta(days=3))
    # A limit whose miss tells an office the date's watcher does not: its own timer.
    other = step.model_copy(update={"told_when_late": (Role.COUNTY_FINANCE,)})
    assert not PayoutRunner(app, other)._said_by_the_payout_date(payout_due)


async def test_wrong_actor_cannot_request_or_release_funds(app_stack: AppStack) -> None:
    with pytest.raises(Refused, match="needs county_education_bureau"):
        await app_stack.api.request_funds("county-subsidy", 2027, COUNTY, village_official())
    with pytest.raises(Refused, match="no funds request nope"):
        await app_stack.api.funds_arrived("county-subsidy", 2027, COUNTY, FINANCE, "nope", 1, "X")


class CrashingFunds(FundsActivities):
    """Dies once right after handing the file to the bank, and once right after recording
    the results: the steps a crashed worker leaves unrecorded, so Temporal runs them again."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.crashed = {"send": 0, "record": 0}

    @activity.defn(name="send_batch")
    def send_batch(self, prepared: PreparedBatch) -> str:
        path = super().send_batch(prepared)
        if self.crashed["send"] == 0:
            self.crashed["send"] += 1
            raise RuntimeError("worker died after sending the batch")
        return path

    @activity.defn(name="record_payment_results")
    def record_payment_results(self, results: PaymentResults) -> None:
        super().record_payment_results(results)
        if self.crashed["record"] == 0:
            self.crashed["record"] += 1
            raise RuntimeError("worker died after recording the results")


async def test_crash_between_sending_and_recording_pays_once(
    ts_env: WorkflowEnvironment,
    keys: Keys,
    calendar: WorkingCalendar,
    registry: Registry,
    tmp_path: Path,
) -> None:
    from tests.support import IN_WINDOW_2027, form
    from tests.test_application_workflow import _SERIALS

    crashing: list[CrashingFunds] = []

    def faults(deps: Dependencies) -> list[Any]:
        crashing.append(
            CrashingFunds(deps.engine, deps.keys, deps.calendar, deps.files_dir, deps.bank_dir)
        )
        return [crashing[0].send_batch, crashing[0].record_payment_results]

    async with make_stack(ts_env, keys, calendar, registry, tmp_path, replace=faults) as stack:
        api = stack.api
        case = Case(api, ts_env, await api.submit(form(next(_SERIALS)), now=IN_WINDOW_2027))
        await to_awaiting_funds(case)
        season = await season_handle(stack)
        await advance(ts_env, season, cst(9, 18, 0, 2))
        summary = await api.request_funds(
            "county-subsidy", 2027, COUNTY, BUREAU, request_id=f"fr-{case.wf[-6:]}"
        )
        await api.funds_arrived(
            "county-subsidy",
            2027,
            COUNTY,
            FINANCE,
            summary.request_id,
            summary.total_cny,
            f"CZ-{case.wf[-6:]}",
        )
        await case.at_stage("paid")
        assert crashing[0].crashed == {"send": 1, "record": 1}
        with Session(stack.engine) as s:
            payments = s.exec(select(Payment).where(Payment.workflow_id == case.wf)).all()
        assert [(p.status, p.attempt, p.amount_cny) for p in payments] == [("paid", 1, 3000)]
        ledger = stack.bank.ledger()
        assert (
            len(ledger) == 1 and ledger[0]["status"] == "paid" and ledger[0]["amount_cny"] == 3000
        )
        assert (await case.kinds()).count("payment") == 1  # paid, once (what was sent with it)


async def test_the_simulators_diagnosis_names_clock_tasks_and_last_events(
    new_case: Callable[..., Awaitable[Case]], app_stack: AppStack, tmp_path: Path
) -> None:
    """What `aidflow simulate` prints when it gives up on a workflow (a stalled clock)."""
    from workers.simulate import diagnose

    case = await new_case()
    text = await diagnose(app_stack.api.client, case.wf, "clock stalled")
    import re

    assert re.fullmatch(
        rf"  {re.escape(case.wf)}: clock stalled; status 1, clock \d{{4}}-\S+, "
        r"fast-forward \S+, pending workflow task (none|attempt \d+), "
        r"pending activities none, last events( \d+:[A-Z_]+){1,8}",
        text,
    ), text
    gone = await diagnose(app_stack.api.client, "no-such-workflow", "clock stalled")
    assert "describe failed" in gone
    # Kept: the whole history, to read after the run's server is gone.
    kept = await diagnose(app_stack.api.client, case.wf, "clock stalled", tmp_path / "stalled")
    path = tmp_path / "stalled" / f"{case.wf.replace('/', '_')}.json"
    assert kept.endswith(f", history in {path}")
    from temporalio.client import WorkflowHistory

    history = WorkflowHistory.from_json(case.wf, path.read_text())
    assert history.events[0].HasField("workflow_execution_started_event_attributes")


async def test_a_query_is_asked_again_while_the_workflow_cannot_answer() -> None:
    """A just-continued run with no task yet, or a task that failed on the 2 s deadlock
    limit, is a moment's state: asked again; any other failure is not."""
    from temporalio.client import WorkflowQueryFailedError

    class Flaky:
        def __init__(self, failures: list[Exception]) -> None:
            self.failures, self.asked = failures, 0

        async def query(self, _query: Any) -> str:
            self.asked += 1
            if self.failures:
                raise self.failures.pop(0)
            return "answer"

    passing = Flaky(
        [
            RPCError("Workflow task is not scheduled yet.", RPCStatusCode.FAILED_PRECONDITION, b""),
            WorkflowQueryFailedError("[TMPRL1101] Potential deadlock detected"),
        ]
    )
    assert await query_when_ready(passing, "batches") == "answer"  # type: ignore[arg-type]
    assert passing.asked == 3
    failing = Flaky([WorkflowQueryFailedError("unknown queryType nope")])
    with pytest.raises(WorkflowQueryFailedError, match="unknown queryType"):
        await query_when_ready(failing, "nope")  # type: ignore[arg-type]
    assert failing.asked == 1


async def test_a_cancelled_request_stays_cancelled() -> None:
    """The SDK turns a cancelled update call into the error of an RPC timeout; the client
    must not answer a cancelled caller with a refusal (a "try again" to a retry loop)."""
    from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

    class SlowHandle:
        async def execute_update(self, *_: Any, **__: Any) -> Any:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError as e:  # what the SDK does
                raise WorkflowUpdateRPCTimeoutOrCancelledError() from e

        async def describe(self) -> Any:
            raise RPCError("not found", RPCStatusCode.NOT_FOUND, b"")

    api = AidflowClient.__new__(AidflowClient)
    api.handle = lambda _id: SlowHandle()  # type: ignore[method-assign,assignment,return-value]
    req = DecisionRequest(
        request_id="d-1",
        actor=village_official(),
        stage="village_review",
        decision=DecisionKind.APPROVE,
    )
    call = asyncio.create_task(api.decide("wf", req))
    await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
