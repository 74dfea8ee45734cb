"""Search attributes upserted only when they change: one helper for every workflow type
(each upsert is a history event and a visibility write)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey

_UNSET = object()


def upsert_changed(
    published: dict[str, Any], values: Iterable[tuple[SearchAttributeKey[Any], Any]]
) -> None:
    """Upsert the attributes whose value differs from ``published`` (by attribute name;
    ``None`` unsets one) and remember them there."""
    changed = [(key, value) for key, value in values if published.get(key.name, _UNSET) != value]
    if changed:
        workflow.upsert_search_attributes(
            [key.value_unset() if value is None else key.value_set(value) for key, value in changed]
        )
        published.update({key.name: value for key, value in changed})


def published_at_start() -> dict[str, Any]:
    """The attributes the workflow was started with (its starter set them): an upsert
    of the same values again is an event and bytes for nothing (issue 20). Outside a
    workflow (a unit test builds one), none."""
    if not workflow.in_workflow():
        return {}
    return {pair.key.name: pair.value for pair in workflow.info().typed_search_attributes}
