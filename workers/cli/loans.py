"""The origin-place student loan (PROCESS.md §4.4): the county student-aid centre's queue,
and the receipt of acceptance's verification code, which a university checks and
answers on (each with its own key: AIDFLOW_API_KEY)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from workers.cli.common import console, gateway_call, loan_app


@loan_app.command("check-in")
def check_in(
    national_id: Annotated[str, typer.Option(help="the student's identity number")],
    name: Annotated[str, typer.Option(help="the student's name")],
) -> None:
    """A family arrives at the centre (the education bureau's key): its ticket and place
    in the queue (registered-poor students are served first)."""
    answer = gateway_call("POST", "/v1/loans/queue", {"national_id": national_id, "name": name})
    first = "，建档立卡优先 / registered-poor, served first" if answer["registered_poor"] else ""
    console.print(
        f"{answer['student']}：{answer['ticket']} 号，排第 {answer['position']} 位{first} / "
        f"ticket {answer['ticket']}, position {answer['position']}"
    )


@loan_app.command("queue")
def show_queue() -> None:
    """Who waits at the centre, in the order they are served."""
    waiting = gateway_call("GET", "/v1/loans/queue")
    table = Table(title="生源地信用助学贷款受理排队 / the centre's queue")
    for col in (
        "#",
        "号 / ticket",
        "学生 / student",
        "建档立卡 / registered poor",
        "到达 / arrived",
    ):
        table.add_column(col)
    for i, e in enumerate(waiting, 1):
        table.add_row(
            str(i),
            str(e["ticket"]),
            e["student"],
            "是 yes" if e["registered_poor"] else "",
            e["arrived_at"][:16],
        )
    console.print(table)


@loan_app.command("verify")
def verify(
    code: Annotated[str, typer.Argument(help="the receipt's code, e.g. ABCD-EFGH-JKLM-NPQR")],
) -> None:
    """A university checks a receipt's code (its own key): the student (masked), the
    year and the amount; nothing more. A wrong code, or another university's, is refused."""
    seen = gateway_call("GET", f"/v1/loans/receipts/{code.strip()}")
    console.print(
        f"有效 / valid: {seen['student']} · {seen['university']} ({seen['university_code']}) · "
        f"{seen['year']} · {seen['amount_cny']:,} 元 CNY · 受理 / accepted {seen['accepted_on']}"
    )


@loan_app.command("confirm")
def confirm(
    code: Annotated[str, typer.Argument(help="the receipt's code")],
    reference: Annotated[str, typer.Option(help="the university's reference (回执编号)")],
    not_enrolled: Annotated[
        bool, typer.Option("--not-enrolled", help="the student never enrolled: the loan ends")
    ] = False,
    reason: Annotated[str, typer.Option(help="why, when --not-enrolled")] = "",
) -> None:
    """The university's word on a receipt: the student brought it (回执确认), or never
    enrolled (with --reason)."""
    result = gateway_call(
        "POST",
        f"/v1/loans/receipts/{code.strip()}/confirmation",
        {"enrolled": not not_enrolled, "reference": reference, "reason": reason},
    )
    console.print(f"{result['stage']}: {result['message']}")
