"""A paid grant cancelled (Rain and Dew's fraud rule, PROCESS.md §4.2): the amount goes
onto the recovery list (追回) until the county marks it recovered.

The application's workflow has ended paid; a ``RecoveryWorkflow`` (one per application,
``recovery/<application id>``) carries the cancellation and waits for the recovery. Both
are recorded in the application's audit chain, after its last event."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from models.application import Actor, CancellationRequest, Places
from models.domain import Role
from models.ids import recovery_workflow_id
from models.text import Line, RequestId


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecoveryInput(_Model):
    """What the gateway read of the paid application (its final status)."""

    application_id: str
    programme: str
    season: int
    round: str = ""
    places: Places
    applicant_name: str
    applicant_masked: str
    amount_cny: int
    # The programme's cancelling office (``Programme.cancelled_by``); None: none (refused).
    cancelled_by: Role | None = None

    @property
    def workflow_id(self) -> str:
        return recovery_workflow_id(self.application_id)


class RecoveredRequest(_Model):
    """The money is back: the amount recovered and the receipt's reference."""

    request_id: RequestId
    actor: Actor
    amount_cny: int = Field(ge=1)
    reference: Annotated[Line, Field(min_length=1, max_length=100)]


class RecoveryEvent(_Model):
    """An entry of the recovery in the application's audit chain, and its list row."""

    application_id: str
    kind: str  # "cancelled" | "recovered"
    at: datetime
    actor: Actor
    request_id: str
    summary: str
    detail: dict[str, str | int]


class RecoveryStatus(_Model):
    workflow_id: str
    application_id: str
    programme: str
    season: int
    round: str
    amount_cny: int
    cancellation: CancellationRequest | None
    cancelled_at: datetime | None
    recovered: RecoveredRequest | None
    recovered_at: datetime | None
    details_zh: str
    details_en: str


class RecoveryRecord(_Model):
    """What the recording activity writes: the event, with the application it is of."""

    inp: RecoveryInput
    event: RecoveryEvent
