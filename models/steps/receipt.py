"""Payout by signature (签领): the student signs the receipt sheet in person.

The office hands the grant out and checks the original documents named here (a copy
is kept); the receipt, not a bank file, ends the application. An unclaimed grant stays
open, is marked overdue at its date and is reported.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from models.domain import DocumentKind, Level, Role
from models.steps.base import StepBase


class ReceiptStep(StepBase):
    kind: Literal["receipt"] = "receipt"
    stage: str = "awaiting_receipt"
    label_zh: str = "等待本人签领"
    label_en: str = "awaiting the signed receipt"
    handed_out_by: Role = Role.COUNTY_EDUCATION_BUREAU
    level: Level = Level.COUNTY
    documents_checked: tuple[DocumentKind, ...] = (DocumentKind.ADMISSION_LETTER,)
    # Where the money of a payment may come from (recorded with every receipt).
    funding_sources: tuple[str, ...] = ("programme",)
    withdrawable: ClassVar[bool] = False
    done_stage: ClassVar[str] = "received"

    @property
    def actor_role(self) -> Role:
        return self.handed_out_by

    @property
    def actor_level(self) -> Level:
        return self.level
