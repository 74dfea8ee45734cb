"""One deployment, one database: the Temporal namespace records which database its
workers write, and a worker pointed at another one refuses to start (issue 16: such a
worker took the stack's tasks and wrote to the wrong database without a word).

The database's identity is made with it (migration 0006). The first worker to start
against a namespace records it in the namespace's data (``aidflow.database``); on a
cluster where workers may not update the namespace, an operator records it once:
``temporal operator namespace update -n NAMESPACE --data aidflow.database=ID``.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.api.namespace.v1 import UpdateNamespaceInfo
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, UpdateNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from store.tables import DeploymentRow

NAMESPACE_KEY = "aidflow.database"


class WrongDatabase(Exception):
    """The database is not the one the namespace's workers write."""


def database_id(engine: Engine) -> str:
    with Session(engine) as session:
        row = session.exec(select(DeploymentRow)).first()
    if row is None:
        raise WrongDatabase("the database has no identity: run `aidflow db upgrade`")
    return row.database_id


async def _recorded(client: Client) -> str | None:
    answer = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=client.namespace)
    )
    return answer.namespace_info.data.get(NAMESPACE_KEY)


async def check_database(client: Client, engine: Engine, shown_as: str) -> str:
    """The database's identity, once the namespace records it as its own (recording it if
    the namespace records none); :class:`WrongDatabase` if it records another."""
    mine = await asyncio.to_thread(database_id, engine)
    recorded = await _recorded(client)
    if recorded is None:
        try:
            await client.workflow_service.update_namespace(
                UpdateNamespaceRequest(
                    namespace=client.namespace,
                    update_info=UpdateNamespaceInfo(data={NAMESPACE_KEY: mine}),
                )
            )
        except RPCError as e:
            raise WrongDatabase(
                f"the namespace {client.namespace} records no database and this worker may not "
                f"record one ({e.message}): record it once with `temporal operator namespace "
                f"update -n {client.namespace} --data {NAMESPACE_KEY}={mine}`"
            ) from None
        recorded = await _recorded(client)  # two first workers at once: one wins
    if recorded != mine:
        raise WrongDatabase(
            f"the database {shown_as} ({mine}) is not the one the namespace "
            f"{client.namespace}'s workers write ({recorded}): point AIDFLOW_DATABASE_URL at "
            "that one (a worker here would write this season to the wrong database)"
        )
    return mine
