"""Logs: workflow context on every line, no repeats during replay, no identity number anywhere (R9)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from integrations.notify import Channels, LogChannel, OutboxSender
from models.application import DecisionRequest, ObjectionRequest, ObjectionResolution
from models.calendar import SHANGHAI, WorkingCalendar
from models.domain import DecisionKind, ObjectionOutcome
from models.privacy import is_valid_national_id
from models.programmes import BUILTIN_PROGRAMMES
from models.records import TRAIL_WRITES
from store.db import make_engine, upgrade
from store.sealing import Keys
from store.tables import OutboxMessage
from tests.conftest import Registry, end_notices
from tests.support import IN_WINDOW_2027, form, make_national_id, public, village_official
from tests.test_application_workflow import Case
from workers.client import AidflowClient
from workers.logs import configure_logging
from workers.signing import SKIPPED_CLOCK_LIFETIME
from workers.simulate import NoticeClock
from workers.worker import Dependencies, build_worker

ID_LIKE = re.compile(r"(?<![0-9])[0-9]{17}[0-9X](?![0-9])")


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    yield stream
    configure_logging("console", "WARNING")


async def test_full_application_logs_carry_context_and_no_identity_number(
    ts_env: WorkflowEnvironment,
    keys: Keys,
    calendar: WorkingCalendar,
    registry: Registry,
    tmp_path: Path,
    captured_logs: io.StringIO,
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade(url)
    deps = Dependencies(
        engine=make_engine(url),
        calendar=calendar,
        keys=keys,
        files_dir=tmp_path / "files",
        bank_dir=tmp_path / "bank",
        statement_max_lifetime=SKIPPED_CLOCK_LIFETIME,
    )
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    # No workflow cache: every workflow task replays the whole history, so a log
    # line written again during replay would show up as a duplicate.
    config = ts_env.client.config()
    config["interceptors"] = [*config["interceptors"], NoticeClock()]
    worker = build_worker(Client(**config), queue, deps, max_cached_workflows=0)
    api = AidflowClient(
        ts_env.client,
        task_queue=queue,
        keys=keys,
        calendar=calendar,
        programmes=dict(BUILTIN_PROGRAMMES),
        lookup_member=registry.lookup,
        statement_lifetime=SKIPPED_CLOCK_LIFETIME,
    )
    secret_id = make_national_id(880)
    registry.add(880, form(880).places.village_code)
    async with worker:
        wf = await api.submit(form(880), now=IN_WINDOW_2027)
        handle = api.handle(wf)
        await api.decide(
            wf,
            DecisionRequest(
                request_id="d1",
                actor=village_official(),
                stage="village_review",
                decision=DecisionKind.APPROVE,
            ),
        )
        case = Case(api, ts_env, wf)
        await case.at_stage("village_notice")  # on the village's notice
        await case.advance_to(datetime(2027, 9, 2, 10, tzinfo=SHANGHAI))  # and it is up
        await api.lodge_objection(
            wf,
            ObjectionRequest(
                request_id="o1",
                actor=public(),
                text=f"此人身份证{secret_id}有误",
                contact="13911112222",
            ),
        )
        await api.resolve_objection(
            wf,
            ObjectionResolution(
                request_id="r1",
                actor=village_official(2),
                objection_id="obj-1",
                outcome=ObjectionOutcome.UPHELD,
                reason=f"核实身份证号 {secret_id} 与户籍不符",
            ),
        )
        final = await handle.result()
        assert final.stage == "rejected"
        await OutboxSender(deps.engine, Channels(log=LogChannel())).run_once()
        for (
            season
        ) in api.started_seasons():  # the next test's season must not find this one running
            await ts_env.client.get_workflow_handle(season).terminate("test finished")
        await end_notices(ts_env.client, api, queue)
    deps.engine.dispose()

    lines = [json.loads(x) for x in captured_logs.getvalue().splitlines() if x.strip()]
    text = captured_logs.getvalue()
    # R9: no valid identity number in any log line or notification.
    assert not [x for x in ID_LIKE.findall(text) if is_valid_national_id(x)]
    with Session(make_engine(url)) as s:
        bodies = " ".join(
            m.subject + m.body + m.recipient for m in s.exec(select(OutboxMessage)).all()
        )
    assert bodies and not [x for x in ID_LIKE.findall(bodies) if is_valid_national_id(x)]
    assert "341225********" in text  # the masked form is what shows

    workflow_lines = [x for x in lines if x.get("logger") == "temporalio.workflow"]
    assert workflow_lines
    for x in workflow_lines:
        assert (
            x["workflow_id"] == wf and x["run_id"] and x["workflow_type"] == "ApplicationWorkflow"
        )
    activity_lines = [x for x in lines if x.get("logger") == "temporalio.activity"]
    assert activity_lines and all(
        x["activity_type"] in TRAIL_WRITES and x["workflow_id"] == wf for x in activity_lines
    )
    # Each trail event is logged once, although every task replayed the history. (The
    # SDK repeats lines only of a workflow task that is run again because the server
    # refused its completion, e.g. the very first task when an update arrives with it:
    # that is a retry, not a replay, so the events of the first task are let off.)
    seqs = [x["seq"] for x in workflow_lines if "seq" in x]
    first_task = {1, 2}  # recorded in __init__
    later = [q for q in seqs if q not in first_task]
    assert len(later) == len(set(later)), sorted(later)
    assert set(seqs) == set(range(1, max(seqs) + 1))
    assert any(x.get("logger") == "aidflow.notify" for x in lines)
    await asyncio.sleep(0)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_tracebacks_are_masked_and_print_no_locals(fmt: str) -> None:
    """An exception logged anywhere (a simulator task, an activity) carries neither the
    identity number in its message nor those in the frames' local variables."""
    national_id = make_national_id(4242)
    account = "6230201200000000650"
    stream = io.StringIO()
    configure_logging(fmt, "INFO", stream=stream)
    try:
        applicant = {"national_id": national_id, "account_number": account}  # noqa: F841
        try:
            raise ValueError(f"no application for {national_id}")
        except ValueError:
            logging.getLogger("aidflow.test").exception("lookup failed")
    finally:
        configure_logging("console", "WARNING")
    out = stream.getvalue()
    assert "lookup failed" in out and "ValueError" in out
    assert national_id not in out and account not in out
    assert national_id[:6] in out  # masked, not dropped
