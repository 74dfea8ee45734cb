"""Notification texts, in Simplified Chinese. Never a full identity or account number (R9)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.domain import ROLE_NAME_ZH, Role
from models.programme import NotificationText
from models.text import clip

# What one message may hold: a value put into a text, the subject, the body.
PARAM_LIMIT = 200
SUBJECT_LIMIT = 120
BODY_LIMIT = 600

TEMPLATES: dict[str, tuple[str, str]] = {
    # key: (subject, body); {name}, {programme}, {season}, {app} are always available.
    "submitted": (
        "申请已受理",
        "{name}同学：您的{season}年{programme}申请已受理（编号 {app}），请留意后续审核和公示。",
    ),
    "work_waiting": (
        "待办：{stage}",
        "{office}：{programme}申请 {app}（{name}）已进入{stage}，请及时办理。{provisional_note}",
    ),
    "notice_scheduled": (
        "公示安排",
        "{name}同学：您的{programme}申请将于 {posted_at} 列入{notice}，公示至 {ends_at}{provisional_note}。",
    ),
    "notice_posted": (
        "公示已张贴",
        "{name}同学：您的{programme}申请已列入{notice}，公示至 {ends_at}{provisional_note}。",
    ),
    "rejected": ("申请未通过", "{name}同学：您的{programme}申请在{stage}未通过，原因：{reason}。"),
    "cancelled": (
        "资助已取消",
        "{name}同学：经核实，您的{programme}资助已取消，原因：{reason}。如已发放，须予追回。",
    ),
    "returned": (
        "申请退回更正",
        "{name}同学：您的{programme}申请在{stage}被退回更正，原因：{reason}。请更正后重新提交。",
    ),
    "objection_lodged": (
        "收到异议",
        "{office}：{notice}期间收到对申请 {app} 的异议 {objection_id}，请核实处理。",
    ),
    "objection_resolved": (
        "异议处理结果",
        "您对申请 {app} 提出的异议 {objection_id} 经核实{outcome}，理由：{reason}。",
    ),
    "overdue": (
        "逾期提醒",
        "{office}：申请 {app}（{name}）未能在{on}前完成“{date}”，目前处于{stage}。{provisional_note}",
    ),
    "at_risk": (
        "时间节点风险",
        "{office}：按工作日推算，申请 {app} 可能无法在{on}前完成“{date}”，请尽早安排。{provisional_note}",
    ),
    "paid": (
        "补贴已发放",
        "{name}同学：{programme}{amount}元已发放至您家庭的一卡通账户（{account}）。",
    ),
    "received": (
        "资助已签领",
        "{name}同学：您已签领{programme}{amount}元。",
    ),
    "round_opened": (
        "申报已开始",
        "{office}：{season}{programme}已于{national}在全国系统开放申报，本县即日起受理，截止{closes}，请通知各村。",
    ),
    "season_reminder": (
        "时间节点提醒",
        "{office}：{season}年{programme}“{date}”须于{on}前完成，请及时安排。",
    ),
    "task_reminder": (
        "工作任务提醒",
        "{office}：{season}年{programme}“{date}”须于{on}前完成，完成后请在系统中报告。",
    ),
    "task_overdue": (
        "工作任务逾期",
        "{office}：{season}年{programme}“{date}”应于{on}前完成，至今未报告完成，已标记逾期。",
    ),
    "coverage_reminder": (
        "应补尽补提醒",
        "{office}：{season}年{programme}申请期{closes}截止，本村尚有{count}名符合条件的建档立卡学生未申请：{students}。请及时告知并协助申请。",
    ),
    "funds_released": (
        "资金已到位",
        "{name}同学：您的{programme}资金已到位，将于{pay_by}前打卡发放到您的一卡通账户。",
    ),
    "payment_returned": (
        "发放被退回",
        "{name}同学：{programme}发放被银行退回（{reason}），请到村委会更正账户信息。",
    ),
}


def render(
    template: str,
    params: dict[str, Any],
    *,
    role: Role | None = None,
    texts: Mapping[str, NotificationText] | None = None,
) -> tuple[str, str]:
    """The subject and body; a programme's own text (``texts``) wins over the shared one."""
    own = (texts or {}).get(template)
    subject, body = (own.subject, own.body) if own else TEMPLATES[template]
    values = dict(params)
    values.setdefault("office", ROLE_NAME_ZH.get(role, "") if role else "")
    values["provisional_note"] = (
        "（依据暂定节假日安排推算，以国务院正式安排为准）" if values.get("provisional") else ""
    )
    # A value from elsewhere (a bank's reason, an official's) never makes a long message:
    # each is cut, and so is the body (an SMS is read on a phone).
    values = {k: clip(v, PARAM_LIMIT) for k, v in values.items()}
    return (
        str(clip(subject.format_map(_Default(values)), SUBJECT_LIMIT)),
        str(clip(body.format_map(_Default(values)), BODY_LIMIT, lines=True)),
    )


class _Default(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "—"
