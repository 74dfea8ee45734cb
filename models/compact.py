"""A definition as it travels in a workflow's input: without the fields at their defaults.

A programme's definition rides in every application's start event, kept for its life
(the history alone replays it). Most of its fields are at their defaults; sent as they
are, they were a third of the start event and about 1.4 KB of every paid
application's history (issue 20). Reading the input back restores them. A step's
``kind`` names its type in a tagged union, so it travels even when it is the default.

Read back, one definition is one object: every application of a programme carried its
own copy, about 25 KiB of a cached workflow's 90 KiB of Python objects (issue 20, the
worker's memory). The models are frozen, so the copies are shared.

A **released** definition travels as its name alone: ``{"released": "county-subsidy@…"}``,
the programme's code and the digest of its JSON, which names a file of
``models/programmes/released/`` (2.8 KB of every county subsidy's start event, issue 20).
A released file is never edited nor deleted: a history names it for as long as the
history is kept; a changed definition is a new file beside it
(``aidflow release-programmes`` writes the files of the definitions in force). A
definition that is not released (a test's, a site's own) travels whole, as before.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    PlainSerializer,
    SerializationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

_DISCRIMINATOR = "kind"
_RELEASED = "released"
RELEASED_DIR = Path(__file__).with_name("programmes") / "released"


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


def release_key(bare: dict[str, Any]) -> str:
    """A definition's released name, from its JSON without defaults: its code and the
    digest of that JSON."""
    canonical = json.dumps(bare, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{bare.get('code', 'definition')}@{hashlib.sha256(canonical.encode()).hexdigest()[:20]}"


def _load_released() -> dict[str, dict[str, Any]]:
    """The released definitions, read once at import (never in a workflow)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(RELEASED_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        key = release_key(data)
        if key != path.stem:
            raise ValueError(
                f"{path}: its definition is {key}; a released definition is never edited "
                "(a changed one is a new file: aidflow release-programmes)"
            )
        found[key] = data
    return found


RELEASED: dict[str, dict[str, Any]] = _load_released()


# The serialization context of what a signature covers (``models.authority.body_digest``):
# a definition by its name (a digest of its content) whether or not this process has its
# released file, so that a gateway and a worker of two releases, one of which has the
# file and one not, agree on a body's digest.
_SIGNED = "signed"
SIGNED_CONTEXT = {_SIGNED: True}


def released_name(model: BaseModel) -> str:
    """The name a definition is (or would be) released under."""
    return release_key(without_defaults(model))


def compact_or_released(model: BaseModel, signed: bool = False) -> dict[str, Any]:
    """What travels: a released definition's name, or the definition without defaults
    (``signed``: by its name whether or not it is released here)."""
    bare = without_defaults(model)
    key = release_key(bare)
    return {_RELEASED: key} if signed or key in RELEASED else bare


def _serialize(model: BaseModel, info: SerializationInfo) -> dict[str, Any]:
    return compact_or_released(model, signed=bool(info.context and info.context.get(_SIGNED)))


# Definitions read back, by their JSON; bounded (there are a few dozen at most: the
# programmes, their variants and their revisions), so that a run of odd inputs cannot
# grow it without end.
_SHARED: dict[str, Any] = {}
_SHARED_MAX = 256
_LOCK = threading.Lock()


def _shared(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    if not isinstance(value, dict):
        return handler(value)
    if value.keys() == {_RELEASED}:
        name = value[_RELEASED]
        released = RELEASED.get(name) if isinstance(name, str) else None
        if released is None:
            raise ValueError(
                f"the definition {str(name)[:100]!r} is not among the released ones "
                "(models/programmes/released/): it was deleted, or this worker is older than it"
            )
        value = released
    key = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    found = _SHARED.get(key)
    if found is None:
        found = handler(value)
        with _LOCK:
            if len(_SHARED) < _SHARED_MAX:
                found = _SHARED.setdefault(key, found)
    return found


M = TypeVar("M", bound=BaseModel)

# ``Compact[Programme]``: validated as the model, written to JSON by its released name or
# without its defaults, and one object for every input that carries the same definition
# (it must be frozen).
Compact = Annotated[M, PlainSerializer(_serialize, when_used="json"), WrapValidator(_shared)]
