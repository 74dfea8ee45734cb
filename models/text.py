"""Bounded text for everything a request carries (issue 16: values the validators did not
check broke persistence, notifications and payloads later).

Every field at the boundary has a stated limit, and no control characters: NUL (which
PostgreSQL refuses), ESC (terminal escapes) and the bidirectional overrides (which make a
name read as another) are refused, naming the field. Long texts may hold line breaks.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

# C0 and C1 controls, DEL, and the bidirectional embeddings, overrides and isolates.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")
_CONTROL_BUT_LINES = re.compile(
    r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]"
)


def _no_controls(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control or bidirectional-override characters")
    return value


def _no_controls_but_lines(value: str) -> str:
    if _CONTROL_BUT_LINES.search(value):
        raise ValueError("must not contain control or bidirectional-override characters")
    return value


def _normalised_id(value: object) -> object:
    """Ids compare as people read them: NFKC, no surrounding space (four eyes compared
    'village-1' and 'village-1 ' as two people)."""
    if isinstance(value, str):
        return unicodedata.normalize("NFKC", value).strip()
    return value


def clip(value: object, limit: int = 200, *, lines: bool = False) -> object:
    """Text from another system (a bank's result file): control characters dropped (line
    breaks kept with ``lines``) and cut at ``limit`` with an ellipsis. Refusing it would
    leave a payment's result unread."""
    if not isinstance(value, str):
        return value
    value = (_CONTROL_BUT_LINES if lines else _CONTROL).sub("", value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


# A name, an office, a bank, a university: one line.
Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_controls)]
Line = Annotated[str, Field(max_length=200), AfterValidator(_no_controls)]
# A reason, an objection's text, a note: lines allowed, 2,000 characters at most.
LongText = Annotated[str, Field(max_length=2000), AfterValidator(_no_controls_but_lines)]
# An id someone chose (an actor, a request): printable, no spaces inside.
ActorId = Annotated[
    str,
    BeforeValidator(_normalised_id),
    Field(min_length=1, max_length=100, pattern=r"^[^\s\x00-\x1f\x7f]+$"),
]
RequestId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:@/-]+$")]
PlaceCode = Annotated[str, Field(max_length=32, pattern=r"^[0-9A-Za-z-]*$")]
StageName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]

# A line another system wrote (the bank's reason for a return, its reference): clipped,
# never refused.
ForeignLine = Annotated[str, BeforeValidator(clip)]
