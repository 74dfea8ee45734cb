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
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from models import search
from models.application import ObjectionRequest
from models.calendar import WorkingCalendar
from models.domain import Level
from models.notice import MemberChange, NoticeJoin, NoticeMember
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


def test_a_members_automatic_posting_follows_its_steps_rule(calendar: WorkingCalendar) -> None:
    """The member and the notice keep the same time by one function: the window's close
    for a member ready before it (village notice), else 08:00 of the first working day
    after the day it was ready (township notice); none where only the owner posts."""
    from models.calendar import OutsideTable
    from models.programmes import COUNTY_SUBSIDY, REGISTRY
    from models.steps import NoticeStep

    cal = calendar
    village, township = (
        COUNTY_SUBSIDY.step("village_notice"),
        COUNTY_SUBSIDY.step("township_notice"),
    )
    assert isinstance(village, NoticeStep) and isinstance(township, NoticeStep)
    closes = cst(9, 1)
    assert village.automatic_posting(cal, cst(8, 20, 15), closes) == closes
    assert village.automatic_posting(None, cst(8, 20, 15), closes) == closes  # no day asked
    # Ready after the window: the next working day's morning (Fri 3 Sep for Thu 2 Sep;
    # Mon 6 Sep for Fri 3 Sep, past the weekend).
    assert village.automatic_posting(cal, cst(9, 2, 10), closes) == cst(9, 3, 8)
    assert township.automatic_posting(cal, cst(9, 3, 7), closes) == cst(9, 6, 8)
    with pytest.raises(OutsideTable):
        township.automatic_posting(None, cst(9, 3, 7), closes)
    notice = REGISTRY["rain-and-dew"].step("village_notice")
    assert isinstance(notice, NoticeStep) and notice.evidence_required
    assert notice.automatic_posting(cal, cst(9, 2, 10), closes) is None


def test_the_notice_posts_at_its_earliest_members_time_and_takes_a_join_once() -> None:
    notice = village_notice()
    notice.publish = lambda: None  # type: ignore[method-assign]  # (no workflow here)
    assert notice.next_automatic() is None
    notice.join(NoticeJoin(member=member("b", cst(9, 2, 10), cst(9, 3, 8))))
    notice.join(NoticeJoin(member=member("a", cst(8, 20, 9), cst(9, 1))))
    assert notice.next_automatic() == cst(9, 1)
    # A join sent again (its local activity retried) changes nothing, nor does one of a
    # member already posted or gone.
    notice.join(NoticeJoin(member=member("a", cst(8, 21, 9), cst(9, 1))))
    assert notice.pending["a"].joined_at == cst(8, 20, 9) and len(notice.pending) == 2
    notice.posted.add("c")
    notice.join(NoticeJoin(member=member("c", cst(8, 20, 9), cst(9, 1))))
    assert "c" not in notice.pending
    # Its timer is set for the earliest time of a waiting member (a member never says
    # so: it knows the instant from its join).
    assert notice.by_time == {cst(9, 1): {"a"}, cst(9, 3, 8): {"b"}}
    notice.member_changed(MemberChange(workflow_id="a", left=True))
    assert notice.next_automatic() == cst(9, 3, 8)  # nobody waits for 1 September any more
    assert cst(9, 1) not in notice.by_time
    notice.join(NoticeJoin(member=member("a", cst(8, 20, 9), cst(9, 1))))
    assert "a" not in notice.pending  # it left: a late retry of its join does not bring it back


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


def member(wf: str, joined: datetime, auto: datetime | None = None) -> NoticeMember:
    return NoticeMember(
        workflow_id=wf,
        name="某某",
        village="村",
        school_or_level="大学",
        amount_cny=3000,
        joined_at=joined,
        auto_post_at=auto,
    )


@pytest.mark.devserver
async def test_the_notice_shows_its_members_end_and_open_objections(
    app_stack: AppStack, ts_env: WorkflowEnvironment
) -> None:
    api = app_stack.api
    a, b, c = [await submitted_case(api, ts_env) for _ in range(3)]
    for case in (a, b):
        await case.approve("village_review", village_official())
        # Its automatic posting and that posting's period, known from its join.
        st = await case.wait_for(lambda s: s.notice is not None, "its posting known")
        assert st.notice is not None and st.notice.posted_at == cst(9, 1)
        assert st.notice.ends_at == cst(9, 8) and st.waiting_until == cst(9, 8)
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
    # The notice runs on the workflows' queue; its members join it by the trail's write
    # of their decision (one marker in the decision's workflow task, for the events and
    # the join; no answer awaited: issue 20).
    assert described.task_queue == app_stack.worker.task_queue
    markers = [
        e.marker_recorded_event_attributes
        async for e in a.handle.fetch_history_events()
        if e.HasField("marker_recorded_event_attributes")
        and b"record_events_and_tell"
        in e.marker_recorded_event_attributes.details["data"].payloads[0].data
    ]
    scheduled = [
        e
        async for e in a.handle.fetch_history_events()
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert len(markers) == 1 and not scheduled
    assert attrs.get(search.VILLAGE) == VILLAGE and attrs.get(search.STAGE) == "village_notice"
    assert attrs.get(search.WAITING_FOR) == "village_committee"
    assert attrs.get(search.NEXT_DEADLINE) == cst(9, 1)

    # A third, reviewed on 2 September (its clock alone moved), misses the first posting
    # and waits for the next; the notice's timer posts the first when the window closes.
    await ts_env.fast_forward(c.handle, cst(9, 2, 10) - await c.now())
    await c.approve("village_review", village_official())
    await c.wait_for(lambda s: s.stage == "village_notice", "on the notice")
    await details_showing(notice, lambda t: c.wf in t, "the third waiting")
    for case in (a, b):
        await case.advance_to(cst(9, 2, 9))  # and the notice's clock with it
    # Neither member was woken for its posting nor told of it (issue 20: each was a
    # workflow task of each member's): no timer of theirs has fired.
    for case in (a, b):
        events = [e async for e in case.handle.fetch_history_events()]
        fired = [e for e in events if e.HasField("timer_fired_event_attributes")]
        signals = [
            e.workflow_execution_signaled_event_attributes.signal_name
            for e in events
            if e.HasField("workflow_execution_signaled_event_attributes")
        ]
        assert not fired and "notice_posted" not in signals, (fired, signals)
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
