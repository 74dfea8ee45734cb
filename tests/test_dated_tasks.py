"""A programme's dated tasks of a year (the freshman grant's plan: implementing rules by
15 May, publicity by 30 June), through the gateway on the dev server: reminded a week
before, overdue after the date, done late and kept late, done by the right office only."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlmodel import Session, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from models import search
from models.domain import Role
from models.ids import tasks_workflow_id
from store.tables import OutboxMessage
from tests.conftest import AppStack
from tests.support import COUNTY, office_tokens
from tests.test_application_workflow import cst, write_history
from workers.gateway import create_app
from workers.gateway.serving import serving_app

pytestmark = pytest.mark.devserver

FG = "freshman-grant"
OFFICES = {
    "league": ("league-1", Role.COUNTY_YOUTH_LEAGUE, COUNTY),
    "bureau": ("county-1", Role.COUNTY_EDUCATION_BUREAU, COUNTY),
}


@pytest_asyncio.fixture
async def http(app_stack: AppStack) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    tokens = office_tokens(app_stack.engine, app_stack.deps.keys.authority, OFFICES)
    app = create_app(app_stack.api, app_stack.engine, app_stack.deps.keys, app_stack.deps.files_dir)
    async with serving_app(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        yield client, {k: f"Bearer {v}" for k, v in tokens.items()}


def outbox(stack: AppStack, kind: str) -> list[OutboxMessage]:
    with Session(stack.engine) as s:
        rows = s.exec(select(OutboxMessage)).all()
    return [r for r in rows if f"/{kind}/" in r.dedupe_key and r.dedupe_key.startswith("tasks/")]


async def eventually(check: Any, what: str) -> Any:
    for _ in range(100):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    pytest.fail(f"never: {what}")


async def test_dated_tasks_are_reminded_overdue_and_done_late(
    app_stack: AppStack,
    ts_env: WorkflowEnvironment,
    http: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, auth = http
    url = f"/v1/tasks/{FG}/2027/{COUNTY}"
    opened = await client.post(url, headers={"Authorization": auth["league"]})
    assert opened.status_code == 201, opened.text
    wf = opened.json()["tasks_workflow_id"]
    assert wf == tasks_workflow_id(FG, 2027, COUNTY)
    again = await client.post(url, headers={"Authorization": auth["league"]})
    assert again.json()["tasks_workflow_id"] == wf  # opening again changes nothing
    handle = app_stack.api.client.get_workflow_handle(wf)

    async def attrs() -> Any:
        return (await handle.describe()).typed_search_attributes

    async def move_to(at: Any) -> None:
        delta = at - await ts_env.get_current_time(handle)
        if delta > timedelta(0):
            await ts_env.fast_forward(handle, delta)

    await eventually(
        lambda: _with(attrs, lambda a: a.get(search.STAGE) == "rules_issued"), "first task open"
    )
    a = await attrs()
    assert a.get(search.WAITING_FOR) == "county_youth_league"
    assert a.get(search.NEXT_DEADLINE) == cst(5, 16) and not a.get(search.OVERDUE)

    # A week before: the Youth League (and the offices always told) are reminded, once.
    await move_to(cst(5, 8, 9, 1))
    reminders = await eventually(lambda: _rows(app_stack, "reminder"), "reminder sent")
    assert {r.recipient for r in reminders} == {f"county_youth_league@{COUNTY}"}
    assert "制定印发实施细则" in reminders[0].body and "5月15日" in reminders[0].body

    # Only the responsible office reports it done; a key the programme has not is refused.
    wrong = await client.post(
        f"{url}/rules_issued/done", json={"note": "x"}, headers={"Authorization": auth["bureau"]}
    )
    assert wrong.status_code == 403 and "needs county_youth_league" in wrong.json()["detail"]
    unknown = await client.post(
        f"{url}/rules_made/done", json={}, headers={"Authorization": auth["league"]}
    )
    assert unknown.status_code == 409 and "no task 'rules_made'" in unknown.json()["detail"]

    # Past its date undone: overdue, and the offices are told.
    await move_to(cst(5, 16, 0, 5))
    await eventually(lambda: _with(attrs, lambda a: a.get(search.OVERDUE) is True), "overdue")
    overdue = await eventually(lambda: _rows(app_stack, "overdue"), "overdue notice sent")
    assert "已标记逾期" in overdue[0].body

    # Done late: taken, and kept late; a repeat of the request gives the same answer.
    body = {"request_id": "rules-1", "note": "肃团发〔2027〕5号", "evidence_ref": "FG-2027-05"}
    done = await client.post(
        f"{url}/rules_issued/done", json=body, headers={"Authorization": auth["league"]}
    )
    assert done.status_code == 200, done.text
    state = done.json()
    assert state["overdue"] is True and state["done_by"]["id"] == "league-1"
    repeat = await client.post(
        f"{url}/rules_issued/done", json=body, headers={"Authorization": auth["league"]}
    )
    assert repeat.json() == state
    await eventually(
        lambda: _with(attrs, lambda a: a.get(search.STAGE) == "publicity_done"), "next task"
    )
    assert not (await attrs()).get(search.OVERDUE)

    # The second, in time: every task done, the workflow ends.
    done = await client.post(
        f"{url}/publicity_done/done", json={}, headers={"Authorization": auth["league"]}
    )
    assert done.status_code == 200 and done.json()["overdue"] is False
    states = await handle.result()
    assert [(s["key"], s["overdue"]) for s in states] == [
        ("rules_issued", True),
        ("publicity_done", False),
    ]
    desc = await handle.describe()
    assert desc.status is WorkflowExecutionStatus.COMPLETED
    assert desc.typed_search_attributes.get(search.STAGE) == "tasks_done"
    if os.environ.get("AIDFLOW_RECORD_HISTORIES") == "1":
        # The dated tasks' replay fixture: reminded, overdue, done late, done in time.
        write_history("dated_tasks_done_late", await handle.fetch_history())


async def _with(read: Any, check: Any) -> Any:
    value = await read()
    return value if check(value) else None


async def _rows(stack: AppStack, kind: str) -> list[OutboxMessage] | None:
    return outbox(stack, kind) or None
