"""The typed client API for services (and the CLI): submit, decide, object, post, list.

Every request is checked twice: here (intake rules R5 need the registry) and in
the workflow's update validators (stage, role, place, four eyes). A refusal
raises :class:`Refused` with a one-line reason naming every failing field.

``api`` is the client itself (:class:`AidflowClient`), ``errors`` the refusal,
``queries`` the helpers for asking workflows.
"""

from workers.client.api import AidflowClient, Listed
from workers.client.errors import Refused
from workers.client.queries import QUERY_READY_TRIES, query_when_ready, quote, update_id

__all__ = [
    "QUERY_READY_TRIES",
    "AidflowClient",
    "Listed",
    "Refused",
    "query_when_ready",
    "quote",
    "update_id",
]
