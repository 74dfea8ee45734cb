"""Bounds at the boundary (issue 16): every request field has a limit and a character
class, and a request id stands for one request."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError
from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter

from models.application import (
    Actor,
    ApplicantRecord,
    CorrectionRequest,
    DecisionRequest,
    ObjectionRequest,
)
from models.domain import DecisionKind, Role
from models.payout import AccountCorrection, PaymentOutcome, PaymentSent
from models.privacy import mask_account
from models.records import ApplicationSnapshot
from tests.conftest import AppStack
from tests.support import public, village_official
from tests.test_application_workflow import Case
from tests.test_application_workflow import new_case as new_case  # the fixture
from workers.client import Refused


def _fields(error: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in error.errors()}


def test_actor_ids_are_normalised_and_text_has_no_controls() -> None:
    a = Actor(id=" village-1 ", name="村干部", role=Role.VILLAGE_COMMITTEE)
    assert a.id == "village-1"
    assert Actor(id="ｖｉｌｌａｇｅ-1", name="x", role=Role.PUBLIC).id == "village-1"  # NFKC
    with pytest.raises(ValidationError) as e:
        Actor(id="a b", name="张\u202e三", role=Role.PUBLIC, place_code="x' OR 1")
    assert _fields(e.value) == {"id", "name", "place_code"}
    with pytest.raises(ValidationError, match="control"):
        DecisionRequest(
            request_id="r1",
            actor=public(),
            stage="village_review",
            decision=DecisionKind.REJECT,
            reason="不符合\x00条件",
        )


def test_sizes_are_stated_limits() -> None:
    with pytest.raises(ValidationError, match="at most 2000 characters") as e:
        ObjectionRequest(request_id="r1", actor=public(), text="异" * 1_500_000, contact="1" * 200)
    assert _fields(e.value) == {"text", "contact"}
    with pytest.raises(ValidationError) as e:
        DecisionRequest(
            request_id="r" * 101, actor=public(), stage="x" * 1_000_000, decision="approve"
        )
    assert _fields(e.value) == {"request_id", "stage"}


def test_a_correction_names_every_wrong_field() -> None:
    with pytest.raises(ValidationError) as e:
        CorrectionRequest.model_validate(
            {
                "request_id": "r1",
                "actor": public().model_dump(),
                "changes": {"name": None, "university": 12345, "nope": 1},
            }
        )
    assert {"changes.university", "changes.nope"} <= _fields(e.value)
    with pytest.raises(ValidationError, match="name: null is not a correction"):
        CorrectionRequest.model_validate(
            {"request_id": "r1", "actor": public().model_dump(), "changes": {"name": None}}
        )
    ok = CorrectionRequest(request_id="r1", actor=public(), changes={"university": "安徽大学"})
    assert ok.changes.given() == {"university": "安徽大学"}
    # Through Temporal's converter and back, as a workflow receives it (only what was given).
    for req in (ok, CorrectionRequest(request_id="r2", actor=public(), note="已补交")):
        payloads = pydantic_data_converter.payload_converter.to_payloads([req])
        assert json.loads(payloads[0].data)["changes"] == req.changes.given()
        back = pydantic_data_converter.payload_converter.from_payloads(
            payloads, [CorrectionRequest]
        )
        assert back == [req]


def test_an_account_correction_carries_a_masked_number_and_a_sealed_one() -> None:
    with pytest.raises(ValidationError) as e:
        AccountCorrection(
            request_id="r1",
            actor=village_official(),
            bank_name="阜南农商银行",
            account_masked="6230201234567800012",  # the full number (R9)
            account_sealed="not-a-fernet-token",
            account_holder="户主",
        )
    assert _fields(e.value) == {"account_masked", "account_sealed"}


@pytest.mark.parametrize(
    "model", [ApplicantRecord, PaymentSent, PaymentOutcome, ApplicationSnapshot]
)
def test_a_full_account_number_is_refused_wherever_a_masked_one_goes(
    model: type[BaseModel],
) -> None:
    """The applicant in an application's input, what a batch sends an application, and
    the read model's row: a masked account only, as ``mask_account`` writes it (R9), so
    no slip upstream puts the full number into a history, a trail event or a
    notification."""
    field = model.model_fields["account_masked"]
    annotation: Any = field.annotation
    if field.metadata:  # the constraints pydantic took out of the Annotated type
        annotation = Annotated[annotation, *field.metadata]
    adapter: TypeAdapter[str] = TypeAdapter(annotation)
    full = "6230201234567800012"
    for masked in (mask_account(full), mask_account("1234"), "623020******1234"):
        assert adapter.validate_python(masked) == masked
    for wrong in (full, "6230 2012 3456 7800 012", "6230201234", "尾号0012"):
        with pytest.raises(ValidationError):
            adapter.validate_python(wrong)


async def test_four_eyes_and_request_ids_compare_what_they_stand_for(
    new_case: Callable[..., Awaitable[Case]],
) -> None:
    case = await new_case()
    first = await case.decide(
        "village_review", DecisionKind.APPROVE, village_official(), request_id="same-id"
    )
    assert first.accepted
    # The same id for another kind of request (an objection) is refused, naming the first.
    with pytest.raises(Refused, match="request id same-id was already used for another request"):
        await case.api.lodge_objection(
            case.wf, ObjectionRequest(request_id="same-id", actor=public(), text="x")
        )
    # A repeat of the same request still gets the first answer.
    again = await case.decide(
        "village_review", DecisionKind.APPROVE, village_official(), request_id="same-id"
    )
    assert again == first


def test_text_in_files_is_never_a_formula(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    from activities.funds import FundsActivities
    from integrations.bank import FileExchangeBank
    from store import cells
    from store.tables import ApplicationRow

    assert cells.row(['=HYPERLINK("http://x")', "+1", "张三", 3000, "a\x00b"]) == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "张三",
        3000,
        "ab",
    ]
    row = ApplicationRow(
        workflow_id="wf/1",
        programme="county-subsidy",
        season=2027,
        county_code="341225000000",
        township_code="341225100000",
        village_code="341225100201",
        applicant_name='=HYPERLINK("http://evil","点击")',
        national_id_masked="341225********1234",
        national_id_hash="h",
        stage="awaiting_funds",
        amount_cny=3000,
    )
    roster = tmp_path / "roster.xlsx"
    FundsActivities._write_roster(roster, [row], {})
    sheet = load_workbook(roster).active
    assert sheet is not None
    name = sheet["B2"]
    assert name.data_type == "s" and str(name.value).startswith("'=HYPERLINK")
    # The bank's disbursement file holds full account numbers: the owner alone reads it.
    sent = FileExchangeBank(tmp_path / "bank").send("b001", "batch_id\nb001\n")
    assert sent.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "workflow_type", ["ApplicationWorkflow", "SeasonWorkflow", "PayoutBatchWorkflow"]
)
async def test_a_malformed_start_fails_at_once(app_stack: AppStack, workflow_type: str) -> None:
    """`temporal workflow start --type ApplicationWorkflow --input '{}'` stayed running with
    a failing workflow task; it now fails, naming what is wrong."""
    client = app_stack.api.client
    handle = await client.start_workflow(
        workflow_type,
        {"workflow_id": "x"},
        id=f"malformed-{workflow_type}-{uuid.uuid4().hex[:6]}",
        task_queue=app_stack.api.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), 30)
    assert "validation error" in str(failed.value.cause)


def test_a_banks_reason_is_clipped_and_makes_a_short_message(tmp_path: Path) -> None:
    """Issue 16: a 1.8 MB return reason became a 600,043-character SMS. What the bank's
    file says is cut and cleaned where it is read, and every message has a length."""
    from integrations.bank import RESULT_COLUMNS, FileExchangeBank
    from models.notifications import BODY_LIMIT, render

    bank = FileExchangeBank(tmp_path)
    bank.inbox.mkdir(parents=True)
    long = "账户已销户\x1b[2J\u202e" + "很" * 100_000  # csv reads fields up to 128 KB
    rows = [
        ",".join(RESULT_COLUMNS),
        f"b001,1,k-1,returned,{long},REF\x00-1",
    ]
    (bank.inbox / "b001.result.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (row,) = bank.result("b001") or []
    assert len(row.reason) == 200 and row.reason.startswith("账户已销户[2J很")
    assert row.reason.endswith("…") and row.bank_reference == "REF-1"
    huge = "\x1b\u202e" + "很" * 1_800_000
    _, body = render("payment_returned", {"reason": huge, "name": "张三"})
    assert len(body) <= BODY_LIMIT and "\x1b" not in body and "\u202e" not in body
    assert len(render("payment_returned", {"reason": row.reason})[1]) < 300
    # A field over what csv reads: the file is refused by name (the bank sends it again),
    # not read in part.
    (bank.inbox / "b002.result.csv").write_text(
        ",".join(RESULT_COLUMNS) + f"\nb002,1,k-2,returned,{huge},R\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"b002\.result\.csv cannot be read"):
        bank.result("b002")
