"""A definition as it travels in a workflow's input: without the fields at their defaults.

A programme's definition rides in every application's start event, kept for its life
(the history alone replays it). Most of its fields are at their defaults; sent as they
are, they were a third of the start event and about 1.4 KB of every paid
application's history (issue 20). Reading the input back restores them. A step's
``kind`` names its type in a tagged union, so it travels even when it is the default.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, PlainSerializer

_DISCRIMINATOR = "kind"


def without_defaults(model: BaseModel) -> dict[str, Any]:
    full = model.model_dump(mode="json")
    bare = model.model_dump(mode="json", exclude_defaults=True)
    kept: dict[str, Any] = _keep_discriminators(full, bare)
    return kept


def _keep_discriminators(full: Any, bare: Any) -> Any:
    if isinstance(full, dict) and isinstance(bare, dict):
        out = {k: _keep_discriminators(full.get(k), v) for k, v in bare.items()}
        if _DISCRIMINATOR in full and _DISCRIMINATOR not in out:
            out = {_DISCRIMINATOR: full[_DISCRIMINATOR], **out}
        return out
    if isinstance(full, list) and isinstance(bare, list) and len(full) == len(bare):
        return [_keep_discriminators(f, b) for f, b in zip(full, bare, strict=True)]
    return bare


M = TypeVar("M", bound=BaseModel)

# ``Compact[Programme]``: validated as the model, written to JSON without its defaults.
Compact = Annotated[M, PlainSerializer(without_defaults, when_used="json")]
