"""Custom search attributes operators filter on in the Web UI.

The dev server accepts at most 10 Keyword attributes and 3 of each other
type; this set uses 7 Keyword, 1 Int, 2 Bool and 1 Datetime. Programmes share them
(no attribute per programme): a season is ``Season`` (the year) and ``Round`` ("" for
one round a year, else e.g. "spring").
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

PROGRAMME = SearchAttributeKey.for_keyword("Programme")
SEASON = SearchAttributeKey.for_int("Season")
ROUND = SearchAttributeKey.for_keyword("Round")
COUNTY = SearchAttributeKey.for_keyword("County")
TOWNSHIP = SearchAttributeKey.for_keyword("Township")
VILLAGE = SearchAttributeKey.for_keyword("Village")
STAGE = SearchAttributeKey.for_keyword("Stage")
WAITING_FOR = SearchAttributeKey.for_keyword("WaitingFor")  # role whose action is awaited
OVERDUE = SearchAttributeKey.for_bool("Overdue")
AT_RISK = SearchAttributeKey.for_bool("AtRisk")
NEXT_DEADLINE = SearchAttributeKey.for_datetime("NextDeadline")

ALL: tuple[SearchAttributeKey, ...] = (  # type: ignore[type-arg]
    PROGRAMME,
    SEASON,
    ROUND,
    COUNTY,
    TOWNSHIP,
    VILLAGE,
    STAGE,
    WAITING_FOR,
    OVERDUE,
    AT_RISK,
    NEXT_DEADLINE,
)

_TYPE_NAMES = {
    "KEYWORD": "Keyword",
    "INT": "Int",
    "BOOL": "Bool",
    "DATETIME": "Datetime",
    "TEXT": "Text",
    "FLOAT": "Double",
    "KEYWORD_LIST": "KeywordList",
}


def cli_type_name(key: SearchAttributeKey) -> str:  # type: ignore[type-arg]
    """The type name the ``temporal`` CLI and the operator API use."""
    return _TYPE_NAMES[key.indexed_value_type.name.removeprefix("SEARCH_ATTRIBUTE_TYPE_")]
