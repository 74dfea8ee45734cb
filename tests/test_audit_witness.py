"""The audit log's witness (issue 16): each application's history keeps its chain head,
so a chain shortened or rewritten in the database is named, on a real workflow."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from store.audit import verify
from store.tables import ApplicationRow, AuditEntry
from tests.conftest import AppStack
from tests.support import IN_WINDOW_2027, form, village_official
from tests.test_application_workflow import _SERIALS, Case
from workers.witness import chain_head

pytestmark = pytest.mark.devserver


async def test_a_chain_shortened_in_the_database_is_named_by_the_history(
    app_stack: AppStack, ts_env: WorkflowEnvironment
) -> None:
    api = app_stack.api
    wf = await api.submit(form(next(_SERIALS)), now=IN_WINDOW_2027)
    case = Case(api, ts_env, wf)
    await case.approve("village_review", village_official())
    await case.at_stage("village_notice")
    key = app_stack.deps.keys.audit
    for _ in range(100):  # the last batch is recorded a moment after the stage changes
        head = await chain_head(case.handle)
        with Session(app_stack.engine) as s:
            row = s.get(ApplicationRow, wf)
        if head is not None and row is not None and head.seq == row.last_seq >= 4:
            break
        await asyncio.sleep(0.1)
    assert head is not None and row is not None and head.seq == row.last_seq
    assert verify(app_stack.engine, key, witness={wf: head}).ok
    with Session(app_stack.engine) as s, s.begin():
        last = s.exec(
            select(AuditEntry).where(AuditEntry.workflow_id == wf, AuditEntry.seq == head.seq)
        ).one()
        s.delete(last)
        row = s.get(ApplicationRow, wf)
        assert row is not None
        row.last_seq = head.seq - 1
        s.add(row)
    # The chain alone cannot tell; the lowered last_seq breaks the row's MAC (issue 16).
    [row_edit] = verify(app_stack.engine, key).breaks
    assert row_edit.table == "applications" and "row_mac does not match" in row_edit.problem
    [b] = [
        b
        for b in verify(app_stack.engine, key, witness={wf: head}).breaks
        if b.table == "audit_log"
    ]
    assert b.workflow_id == wf and "deleted at the end" in b.problem
