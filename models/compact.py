"""A definition as it travels in a workflow's input: without the fields at their defaults.

A programme's definition rides in every application's start event, kept for its life
(the history alone replays it). Most of its fields are at their defaults; sent as they
are, they were a third of the start event and about 1.4 KB of every paid
application's history (issue 20). Reading the input back restores them. A step's
``kind`` names its type in a tagged union, so it travels even when it is the default.

Read back, one definition is one object: every application of a programme carried its
own copy, about 25 KiB of a cached workflow's 90 KiB of Python objects (issue 20, the
worker's memory). The models are frozen, so the copies are shared.
"""

from __future__ import annotations

import json
import threading
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, PlainSerializer, ValidatorFunctionWrapHandler, WrapValidator

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


# Definitions read back, by their JSON; bounded (there are a few dozen at most: the
# programmes, their variants and their revisions), so that a run of odd inputs cannot
# grow it without end.
_SHARED: dict[str, Any] = {}
_SHARED_MAX = 256
_LOCK = threading.Lock()


def _shared(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    if not isinstance(value, dict):
        return handler(value)
    key = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    found = _SHARED.get(key)
    if found is None:
        found = handler(value)
        with _LOCK:
            if len(_SHARED) < _SHARED_MAX:
                found = _SHARED.setdefault(key, found)
    return found


M = TypeVar("M", bound=BaseModel)

# ``Compact[Programme]``: validated as the model, written to JSON without its defaults,
# and one object for every input that carries the same definition (it must be frozen).
Compact = Annotated[M, PlainSerializer(without_defaults, when_used="json"), WrapValidator(_shared)]
