"""What the operator sees of a public notice in the Web UI (issue 15): its members, each
posting's end, its open objections, in its current details; and its search attributes.

County subsidy 2027 (provisional calendar): the village notice is posted when the
window closes (00:00 on Wed 1 September) and ends at 00:00 on Wed 8 September.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from models import search
from models.application import ObjectionRequest
from models.domain import Level
from models.notice import NoticeMember, PostingDue, notice_joins_queue
from tests.conftest import AppStack
from tests.support import VILLAGE, public, village_official
from tests.test_application_workflow import cst, rid, submitted_case
from workers.client import query_when_ready
from workflows.notice import LISTED, NoticeWorkflow, listed


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """The details the Web UI shows (the SDK answers them to this built-in query)."""
    meta = await query_when_ready(handle, "__temporal_workflow_metadata")
    return str(meta.current_details)


async def details_showing(
    handle: WorkflowHandle[Any, Any], check: Callable[[str], bool], what: str
) -> str:
    text = ""
    for _ in range(100):
        text = await current_details(handle)
        if check(text):
            return text
        await asyncio.sleep(0.1)
    pytest.fail(f"the notice's details never showed {what}: {text}")


def test_a_long_list_is_cut_and_the_rest_counted() -> None:
    ids = [f"county-subsidy/2027/341225/{n:04d}" for n in range(LISTED + 5)]
    zh, en = listed(ids)
    assert en.endswith(f"{ids[LISTED - 1]} (+5 more)") and ids[LISTED] not in en
    assert zh.endswith("及另 5 件") and zh.count("、") == LISTED - 1
    assert listed(ids[:2]) == (f"{ids[0]}、{ids[1]}", f"{ids[0]}, {ids[1]}")


async def test_a_member_that_claims_an_old_time_is_told_the_new_one() -> None:
    """Found at 1,000 applications under the fault harness: members whose word of the
    notice's new time went astray claimed the old one, and each claim was dropped; the
    posting waited for a claim that never came (a member asks again a day later).
    A member on the coming posting that claims an earlier time is told the new one; a
    claim at or after it posts; one ready after it is told only after that posting."""
    notice = village_notice()
    retold: list[set[str]] = []

    async def reschedule() -> None:
        assert notice.auto_post_at is not None
        retold.append(set(notice._moved(notice.auto_post_at)))

    notice._reschedule = reschedule  # type: ignore[method-assign]

    on_it, later = member("a", cst(8, 20, 9)), member("b", cst(8, 22, 9))
    notice.pending = {"a": on_it, "b": later}
    notice.auto_post_at = cst(8, 21, 8)
    notice.told_auto = {"a": cst(8, 21, 8), "b": cst(8, 21, 8)}
    claim(notice, "b", cst(8, 21, 8))  # ready after the time: waits for the next posting
    claim(notice, "a", cst(8, 19, 8))  # an old time
    assert not notice.due
    assert notice.retelling is not None
    await notice.retelling
    assert retold == [{"a"}]
    claim(notice, "a", cst(8, 21, 8))  # the time it was told again
    assert notice.due


def test_a_member_ready_after_the_coming_posting_keeps_its_own_time() -> None:
    """Found at 1,000 applications under the fault harness: a member ready after the
    coming posting's instant was told that posting's time, passed it at once, said so,
    was passed over and told the next time after the posting; four such turns a member
    on a loaded stack. It is told its own time when it joins (``_join``), not told again
    when the coming posting's time moves, and its word that its time came is kept for
    the posting it is on."""
    notice = village_notice()
    on_it, later = member("a", cst(8, 20, 9)), member("b", cst(8, 22, 9))
    notice.pending = {"a": on_it, "b": later}
    notice.auto_post_at = cst(8, 21, 8)
    notice.told_auto = {"a": cst(8, 19, 8), "b": cst(8, 23, 8)}
    assert notice._moved(cst(8, 21, 8)) == ["a"]  # b keeps its own time
    claim(notice, "b", cst(8, 23, 8))  # b's clock reached its own time first
    assert not notice.due and notice.claims == {"b": cst(8, 23, 8)}
    # a's posting is done; b's is next, at the time b was told and has reached.
    notice.pending, notice.auto_post_at = {"b": later}, cst(8, 23, 8)
    notice._judge_claims()
    assert notice.due and notice.claims == {"b": cst(8, 23, 8)}  # kept until it is posted


async def test_a_member_left_alone_after_the_coming_posting_is_not_left_waiting() -> None:
    """Review of issue 16's notice change: the members on the coming posting all left
    (withdrawn, say) while a member ready after it waited with its own time, and its
    word that the time came was parked for a posting that would never come. The time is
    worked out again from the first member still waiting, and its word judged."""
    from models.notice import MemberChange
    from models.records import PostingTime

    notice = village_notice()
    told: list[set[str]] = []

    async def reschedule() -> None:
        assert notice.auto_post_at is not None
        told.append(set(notice._moved(notice.auto_post_at)))

    notice._reschedule = reschedule  # type: ignore[method-assign]
    notice.publish = lambda: None  # type: ignore[method-assign]  # (the Web UI's: a workflow's)
    notice.pending = {"a": member("a", cst(9, 6, 9)), "b": member("b", cst(9, 8, 9))}
    notice.auto_post_at, notice.first_joined_at = cst(9, 7, 8), cst(9, 6, 9)
    notice.told_auto = {"a": cst(9, 7, 8), "b": cst(9, 9, 8)}
    # The calendar's answer for b's day, known already (no activity outside a workflow).
    notice.posting_times = [
        PostingTime(at=cst(9, 9, 8), day_starts_at=cst(9, 8), day_ends_at=cst(9, 9))
    ]  # (after the window: the next working day's 08:00)
    claim(notice, "b", cst(9, 9, 8))
    assert notice.claims == {"b": cst(9, 9, 8)} and notice.retiming is None
    notice.member_changed(MemberChange(workflow_id="a", open_objections=0, left=True))
    assert notice.retiming is not None
    await notice.retiming
    assert notice.auto_post_at == cst(9, 9, 8) and notice.due
    assert told == [set()]  # b was told that time when it joined


def test_a_members_word_stands_when_the_time_moves_before_its_posting() -> None:
    """Found by the fault harness at 1,000 (its second run this session): q said its
    posting's time had come; a late join moved the automatic time earlier, and the
    earlier posting (x's) took the word with it. q, told its time already and having
    said so, waited for good. Its word stands until it is posted."""
    notice = village_notice()
    notice.pending = {"q": member("q", cst(9, 6, 10)), "x": member("x", cst(9, 5, 10))}
    notice.auto_post_at = cst(9, 7, 8)
    claim(notice, "q", cst(9, 7, 8))
    assert notice.due
    # x's late join moves the time to its own, earlier: due once x says so.
    notice.auto_post_at = cst(9, 6, 8)
    notice._judge_claims()
    assert not notice.due
    claim(notice, "x", cst(9, 6, 8))
    assert notice.due
    # That posting takes x; q's posting is next, and due at once on q's word.
    del notice.pending["x"], notice.claims["x"]
    notice.auto_post_at = cst(9, 7, 8)
    notice._judge_claims()
    assert notice.due


async def test_one_member_keeps_a_postings_time_and_hands_it_on_when_it_leaves() -> None:
    """Issue 20: every member's clock woke it at the automatic time to say so, a workflow
    task and a signal each, hundreds for a township's posting. The first ready keeps the
    time; the others are told to wait a grace longer (their timers are cancelled by the
    posting). One ready after the posting keeps its own. The timekeeper leaving (withdrawn)
    hands the time on, unchanged, to the next first ready."""
    from models.notice import MemberChange

    notice = village_notice()
    notice.publish = lambda: None  # type: ignore[method-assign]  # (the Web UI's: a workflow's)
    notice.pending = {
        "b": member("b", cst(8, 20, 10)),
        "a": member("a", cst(8, 20, 9)),
        "later": member("later", cst(8, 22, 9)),
    }
    notice.auto_post_at, notice.first_joined_at = cst(8, 21, 8), cst(8, 20, 9)
    notice.told_auto = {"later": cst(8, 23, 8)}
    told = {wf: (j.auto_post_at, j.keeps_time) for wf, j in notice._retold()}
    assert told == {"a": (cst(8, 21, 8), True), "b": (cst(8, 21, 8), False)}
    assert notice.timekeepers == {"a"} and notice._retold() == []  # told once

    retold: list[dict[str, tuple[datetime, bool]]] = []

    async def reschedule() -> None:
        retold.append({wf: (j.auto_post_at, j.keeps_time) for wf, j in notice._retold()})

    notice._reschedule = reschedule  # type: ignore[method-assign]
    notice.member_changed(MemberChange(workflow_id="b", open_objections=0, left=True))
    assert notice.retelling is None  # b did not keep the time: nothing to hand on
    notice.pending["b"] = member("b", cst(8, 20, 10))
    notice.member_changed(MemberChange(workflow_id="a", open_objections=0, left=True))
    assert notice.retelling is not None
    await notice.retelling
    assert retold == [{"b": (cst(8, 21, 8), True)}]  # the same time, now b's to keep
    assert notice.timekeepers == {"b"}


def test_only_a_waiting_members_word_makes_the_posting_due() -> None:
    """``due`` reads the claims (few) rather than the members (a county's thousands):
    a word from a member no longer waiting, or ready after the posting, or of an earlier
    time, does not make it due; a waiting member's on it does."""
    notice = village_notice()
    notice.pending = {"a": member("a", cst(9, 6, 9)), "late": member("late", cst(9, 8, 9))}
    notice.auto_post_at = cst(9, 7, 8)
    notice.claims = {"gone": cst(9, 7, 8), "late": cst(9, 9, 8), "a": cst(9, 6, 8)}
    assert not notice.due
    notice.claims["a"] = cst(9, 7, 8)
    assert notice.due
    notice.auto_post_at = None
    assert not notice.due


async def test_a_failed_join_leaves_no_unretrieved_failure() -> None:
    """A join cancelled (its heartbeat missed under load) or refused leaves its failure
    on the update-with-start's handle too; asyncio logged each one, never retrieved,
    dozens of times in the 10,000-application season. ``_settle`` marks it seen; if the
    SDK renames the handle's future, this fails rather than the logs filling again."""
    from temporalio.client import WithStartWorkflowOperation
    from temporalio.common import WorkflowIDConflictPolicy

    from activities.notices import _settle

    start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        "NoticeWorkflow",
        id="n",
        task_queue="q",
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    handle = start._workflow_handle
    assert isinstance(handle, asyncio.Future)
    handle.set_exception(RuntimeError("cancelled"))
    assert handle._log_traceback  # asyncio would log it when collected
    _settle(start)
    assert not handle._log_traceback


async def test_joins_in_flight_are_capped_per_notice_and_per_process() -> None:
    """A village's committee decides its list at once: joins of one notice go a few at a
    time (the server refuses more than 10 updates in flight per workflow), and joins of
    all notices a bounded number at a time (67 notices at 4 each timed out in hundreds
    behind the worker's task slots); the rest wait their turn, and all are answered."""
    from temporalio.testing import ActivityEnvironment

    from activities import notices
    from activities.notices import NoticeActivities
    from models.notice import JoinRequest, NoticeJoin, NoticeJoined

    class CountingClient:
        def __init__(self) -> None:
            self.now: dict[str, int] = {}
            self.most: dict[str, int] = {}
            self.all_now = self.all_most = 0

        async def execute_update_with_start_workflow(
            self, _name: str, join: NoticeJoin, **_: Any
        ) -> NoticeJoined:
            notice = join.member.workflow_id.split("-")[1]  # its village
            self.now[notice] = self.now.get(notice, 0) + 1
            self.most[notice] = max(self.most.get(notice, 0), self.now[notice])
            self.all_now += 1
            self.all_most = max(self.all_most, self.all_now)
            await asyncio.sleep(0.01)
            self.now[notice] -= 1
            self.all_now -= 1
            return NoticeJoined(
                notice_id=notice, posting=1, auto_post_at=cst(9, 1), rule_zh="", rule_en=""
            )

    acts = NoticeActivities(None, b"k" * 32, Path("."))
    client = CountingClient()
    acts._client = client  # type: ignore[assignment]
    places = [f"{VILLAGE[:9]}{200 + i:03d}" for i in range(8)]
    requests = [
        JoinRequest(
            notice=village_notice(place).inp,
            join=NoticeJoin(member=member(f"app-{place}-{n}", cst(8, 20))),
        )
        for place in places
        for n in range(12)
    ]
    env = ActivityEnvironment()
    answers = await asyncio.gather(*(env.run(acts.join_notice, r) for r in requests))
    assert len(answers) == len(requests)
    assert set(client.most) == set(places)
    assert max(client.most.values()) == notices.JOINS_IN_FLIGHT
    assert client.all_most == notices.JOINS_IN_PROCESS < len(places) * notices.JOINS_IN_FLIGHT


async def posting_timer_fired(handle: WorkflowHandle[Any, Any], auto_at: str) -> bool:
    """Whether the member's timer for the automatic posting at ``auto_at`` fired (it said
    the posting was due) or was cancelled (the posting came first)."""
    summaries: dict[str, str] = {}
    outcome: dict[str, bool] = {}
    async for e in handle.fetch_history_events():
        if e.HasField("timer_started_event_attributes"):
            summaries[e.timer_started_event_attributes.timer_id] = (
                e.user_metadata.summary.data.decode()
            )
        elif e.HasField("timer_fired_event_attributes"):
            outcome[e.timer_fired_event_attributes.timer_id] = True
        elif e.HasField("timer_canceled_event_attributes"):
            outcome[e.timer_canceled_event_attributes.timer_id] = False
    ids = [t for t, s in summaries.items() if f"posted (automatically {auto_at})" in s]
    assert len(ids) == 1 and ids[0] in outcome, (summaries, outcome)
    return outcome[ids[0]]


def claim(notice: NoticeWorkflow, wf: str, at: datetime) -> None:
    """A member's word that its clock reached ``at``, the time it was told."""
    notice.posting_due(PostingDue(workflow_id=wf, auto_post_at=at))


def village_notice(place: str = VILLAGE) -> NoticeWorkflow:
    from models.notice import NoticeInput
    from models.programmes import COUNTY_SUBSIDY
    from models.steps import NoticeStep

    step = COUNTY_SUBSIDY.step("village_notice")
    assert isinstance(step, NoticeStep)
    return NoticeWorkflow(
        NoticeInput(
            programme="county-subsidy",
            programme_name_zh="县助学补贴",
            season=2027,
            county_code="341225000000",
            place_code=place,
            step=step,
            window_closes_at=cst(9, 1),
        )
    )


def member(wf: str, joined: datetime) -> NoticeMember:
    return NoticeMember(
        workflow_id=wf,
        name="某某",
        village="村",
        school_or_level="大学",
        amount_cny=3000,
        joined_at=joined,
    )


@pytest.mark.devserver
async def test_the_notice_shows_its_members_end_and_open_objections(
    app_stack: AppStack, ts_env: WorkflowEnvironment
) -> None:
    api = app_stack.api
    a, b, c = [await submitted_case(api, ts_env) for _ in range(3)]
    for case in (a, b):
        await case.approve("village_review", village_official())
        await case.wait_for(lambda s: s.waiting_until == cst(9, 1), "waiting for the posting")
    notice = api.client.get_workflow_handle(
        api.notice_id("county-subsidy", 2027, Level.VILLAGE, VILLAGE)
    )

    # Waiting for its owner: who waits, and until when it posts itself.
    text = await details_showing(notice, lambda t: a.wf in t and b.wf in t, "both waiting")
    assert f"2 件申请待村委会张贴，最迟 2027-09-01 00:00 自动张贴：{a.wf}、{b.wf}" in text
    assert (
        "2 application(s) waiting for the village committee to post; automatic posting "
        f"2027-09-01 00:00: {a.wf}, {b.wf}"
    ) in text
    described = await notice.describe()
    attrs = described.typed_search_attributes
    assert attrs.get(search.PROGRAMME) == "county-subsidy" and attrs.get(search.SEASON) == 2027
    # The notice runs on the workflows' queue; its members' joins, which wait for its
    # answer, on a queue of their own (a join must never hold the slot the notice's own
    # activity needs to answer it: models/notice.notice_joins_queue).
    assert described.task_queue == app_stack.worker.task_queue
    joins = [
        e.activity_task_scheduled_event_attributes
        async for e in a.handle.fetch_history_events()
        if e.activity_task_scheduled_event_attributes.activity_type.name == "join_notice"
    ]
    assert joins and {j.task_queue.name for j in joins} == {
        notice_joins_queue(app_stack.worker.task_queue)
    }
    assert attrs.get(search.VILLAGE) == VILLAGE and attrs.get(search.STAGE) == "village_notice"
    assert attrs.get(search.WAITING_FOR) == "village_committee"
    assert attrs.get(search.NEXT_DEADLINE) == cst(9, 1)

    # A third, reviewed on 2 September (its clock alone moved), misses the first posting
    # and waits for the next; the first goes up when the window closes. (On this server
    # a notice's clock runs ahead when it has nothing to wait for but a timer: the one
    # that waits keeps the first posting up while the test looks.)
    await ts_env.fast_forward(c.handle, cst(9, 2, 10) - await c.now())
    await c.approve("village_review", village_official())
    await c.wait_for(lambda s: s.stage == "village_notice", "on the notice")
    for case in (a, b):
        await case.advance_to(cst(9, 2, 9))
        await case.wait_for(lambda s: s.notice is not None, "posted")
    # One of them kept the posting's time and said it was due; the other's timer, a
    # grace later, was cancelled by the posting without waking it (issue 20).
    woke = [await posting_timer_fired(case.handle, "2027-09-01 00:00") for case in (a, b)]
    assert sorted(woke) == [False, True], woke
    text = await details_showing(notice, lambda t: "posting 1" in t, "the posting")
    assert f"第1批 2 件公示中，至 2027-09-08 00:00：{a.wf}、{b.wf}" in text
    assert f"posting 1: 2 up until 2027-09-08 00:00: {a.wf}, {b.wf}" in text
    assert f"1 件申请待村委会张贴，最迟 2027-09-03 08:00 自动张贴：{c.wf}" in text

    # An objection against one member: the notice names it.
    await api.lodge_objection(
        a.wf, ObjectionRequest(request_id=rid(), actor=public(), text="家庭条件较好")
    )
    text = await details_showing(notice, lambda t: "open objection" in t, "the objection")
    assert f"待处理异议 1 件，涉及：{a.wf}" in text and f"1 open objection(s), on: {a.wf}" in text
    assert "posting 1: 2 up until" in text
    attrs = (await notice.describe()).typed_search_attributes
    assert attrs.get(search.WAITING_FOR) == "village_committee"
    assert attrs.get(search.NEXT_DEADLINE) == cst(9, 3, 8)  # the next posting's

    # R9: members by workflow id only, never a name or an identity number.
    assert "学生" not in text  # the test applicants' names
    assert not re.search(r"(?<![0-9a-f])[0-9]{17}[0-9X](?![0-9a-f])", text)
