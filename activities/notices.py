"""A notice's side effects: an application joining it (the notice started if it is not
running), a member's word to it, and the posted list printed for the notice board.

Joining is a signal, sealed with aidflow's internal key (activities/sealing.py;
workflows/authority.py refuses a notice started, or joined, without the seal), sent by
the application's trail write that records it (``record_events_and_tell``: the events
saved, then the words sent, one local activity and one marker): the notice answers
nothing (the member keeps its own posting time), so the join costs the member no
workflow task and no marker of its own. The call of a posting at the member's time goes
the same way. Where the notice is not running, the join starts it (a workflow cannot
start another that outlives it and that many others share). A retry sends the same
words again, which the notice takes once.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.sealing import sealed_client
from models.domain import ROLE_NAME_ZH
from models.notice import (
    JoinRequest,
    ListFile,
    MemberMessage,
    NoticeListRequest,
)
from models.records import ChainHead, EventBatch
from store import cells
from store.cells import WORKBOOK_OPTIONS

_CST = timezone(timedelta(hours=8), "CST")
# The first instant of a workbook's properties: the file's bytes depend on its rows only.
_FIXED_CREATED = datetime(2000, 1, 1, tzinfo=UTC)


class NoticeActivities:
    def __init__(
        self,
        client: Client | None,
        internal_key: bytes,
        files_dir: Path,
        record_events: Callable[[EventBatch], ChainHead] | None = None,
    ) -> None:
        """``record_events``: the trail's write (``RecordActivities.record_events``), for
        the write that also says its words to the notice."""
        self._client = sealed_client(client, internal_key) if client is not None else None
        self._files = files_dir
        self._record_events = record_events

    @activity.defn(name="record_events_and_tell")
    async def record_events_and_tell(self, batch: EventBatch) -> ChainHead:
        """``record_events``, then the batch's words to its notice. A retry writes
        nothing twice and says the words again (the notice takes each once); a word that
        cannot be sent fails the write's attempt, as a failed write does, and is tried
        with it."""
        if self._record_events is None:
            raise RuntimeError("this worker has no trail store for notices' members")
        head = await asyncio.to_thread(self._record_events, batch)
        for word in batch.tell:
            if isinstance(word, JoinRequest):
                await self._join(word)
            else:
                await self._say(word)
        return head

    async def _join(self, req: JoinRequest) -> None:
        if self._client is None:
            raise RuntimeError("this worker has no Temporal client for notices")
        notice = req.notice
        handle = self._client.get_workflow_handle(notice.workflow_id)
        try:
            await handle.signal("join", req.join)
            return
        except RPCError as e:
            if e.status is not RPCStatusCode.NOT_FOUND:
                raise
        # Not running (the first member, or one after the notice ended for quiet): started,
        # or the run another member started meanwhile used, and joined.
        await self._client.start_workflow(
            "NoticeWorkflow",
            notice,
            id=notice.workflow_id,
            task_queue=activity.info().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=(
                f"{notice.place_name or notice.place_code} "
                f"{notice.programme_name_zh} {notice.step.label_zh}"
            ),
        )
        await handle.signal("join", req.join)

    @activity.defn(name="tell_notice")
    async def tell_notice(self, msg: MemberMessage) -> bool:
        """A member's word to its notice, sealed as the member's (a local activity of the
        member: a retry sends the same word, which the notice takes as often as it
        comes). False when the notice has ended: nothing left to hear it."""
        return await self._say(msg)

    async def _say(self, msg: MemberMessage) -> bool:
        if self._client is None:
            raise RuntimeError("this worker has no Temporal client for notices")
        try:
            await self._client.get_workflow_handle(msg.notice_id).signal(msg.signal, msg.body)
        except RPCError as e:
            if e.status is RPCStatusCode.NOT_FOUND:  # ended (or never was): passed over
                return False
            raise
        return True

    @activity.defn(name="write_notice_list")
    def write_notice_list(self, req: NoticeListRequest) -> list[ListFile]:
        """The posting's list for the notice board, as XLSX and as a printable page; the
        same request writes the same bytes (a retry changes nothing)."""
        out = self._files / "notices" / req.notice.workflow_id.replace("/", "_")
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"posting-{req.number}"
        title, period, header, rows = _list_content(req)
        xlsx = stem.with_suffix(".xlsx")
        _write_xlsx(xlsx, title, period, header, rows)
        page = stem.with_suffix(".html")
        page.write_text(_page(title, period, header, rows), encoding="utf-8")
        return [
            ListFile(kind="xlsx", path=str(xlsx), sha256=_sha256(xlsx)),
            ListFile(kind="html", path=str(page), sha256=_sha256(page)),
        ]


def _list_content(req: NoticeListRequest) -> tuple[str, str, list[str], list[list[Any]]]:
    """R9's notice rule: name, village, school or level, amount; nothing else."""
    n = req.notice
    title = (
        f"{n.place_name or n.place_code} {n.programme_name_zh}{n.step.label_zh}"
        f"（第{req.number}批） / {n.step.label_en}, posting {req.number}"
    )
    owner = ROLE_NAME_ZH.get(n.step.owner, n.step.owner.value)
    period = (
        f"公示期：{_cst(req.posted_at)} 至 {_cst(req.ends_at)}。公示期内如有异议，请向{owner}反映。"
        f" / Up from {_cst(req.posted_at)} until {_cst(req.ends_at)}; objections to the "
        f"{n.step.owner.value.replace('_', ' ')}."
    )
    header = ["序号 No.", "姓名 Name", "村 Village", "学校或层次 School or level", "金额（元） CNY"]
    rows = [
        [i, m.name, m.village, m.school_or_level, m.amount_cny]
        for i, m in enumerate(sorted(req.members, key=lambda m: (m.village, m.name)), start=1)
    ]
    return title, period, header, rows


def _write_xlsx(
    path: Path, title: str, period: str, header: list[str], rows: list[list[Any]]
) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path), WORKBOOK_OPTIONS)
    wb.set_properties({"title": title, "created": _FIXED_CREATED})
    bold = wb.add_format({"bold": True})
    ws = wb.add_worksheet("公示 notice")
    ws.write(0, 0, cells.cell(title), bold)
    ws.write(1, 0, cells.cell(period))
    ws.write_row(3, 0, header, bold)
    for i, row in enumerate(rows, start=4):
        ws.write_row(i, 0, cells.row(row))
    ws.set_column(0, 0, 8)
    ws.set_column(1, len(header), 22)
    wb.close()


def _page(title: str, period: str, header: list[str], rows: list[list[Any]]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(str(cells.cell(v)))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #333;padding:4px 10px}"
        "@media print{button{display:none}}</style></head><body>"
        f"<h1>{esc(title)}</h1><p>{esc(period)}</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        "</body></html>\n"
    )


def _cst(at: datetime) -> str:
    return at.astimezone(_CST).strftime("%Y-%m-%d %H:%M")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
