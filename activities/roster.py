"""A roster's side effects: a student's application joining its roster (the roster
started if it is not running), and the check against the civil-affairs rolls.

Joining is a sealed update-with-start as a notice's is (activities/sealing.py); a retry
is the same update id, so the roster answers it once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from activities.sealing import sealed_client
from models.notice import workflows_queue
from models.roster import RollsAnswer, RollsCheck, RosterJoin, RosterJoined, RosterJoinRequest
from store.rolls import check_rolls


class RosterActivities:
    def __init__(self, engine: Engine, client: Client | None, internal_key: bytes) -> None:
        self._engine = engine
        self._client = sealed_client(client, internal_key) if client is not None else None

    @activity.defn(name="join_roster")
    async def join_roster(self, req: RosterJoinRequest) -> RosterJoined:
        if self._client is None:
            raise RuntimeError("this worker has no Temporal client for rosters")
        roster = req.roster
        p = roster.programme
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            "RosterWorkflow",
            roster,
            id=roster.workflow_id,
            task_queue=workflows_queue(activity.info().task_queue),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"{roster.county_name or roster.county_code} {p.name_zh}名册 {roster.season} {p.round_key}",
        )
        joined: RosterJoined = await self._client.execute_update_with_start_workflow(
            "join",
            RosterJoin(member=req.member, attempt=req.attempt),
            start_workflow_operation=start,
            id=f"roster-join/{req.member.workflow_id}/{req.member.stage}/{req.attempt}",
            result_type=RosterJoined,
        )
        return joined

    @activity.defn(name="check_civil_affairs_rolls")
    def check_rolls(self, req: RollsCheck) -> RollsAnswer:
        snapshot, categories = check_rolls(
            self._engine, req.county_code, req.national_id_hashes, req.as_of
        )
        return RollsAnswer(snapshot=snapshot, categories=categories)
