"""structlog configuration: JSON lines in production, readable console in development.

Workflows and activities log through the SDK's ``workflow.logger`` /
``activity.logger`` (stdlib adapters): they attach the workflow id, run id and
type to every record and drop workflow records during replay. The formatter
below flattens that context into each line and masks identity and account
numbers (R9) in every line, whoever wrote it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from temporalio import activity, workflow

from models.privacy import mask_sensitive_text

_WORKFLOW_KEYS = ("workflow_id", "run_id", "workflow_type", "namespace", "task_queue")
_ACTIVITY_KEYS = ("activity_id", "activity_type", "workflow_id", "workflow_run_id", "workflow_type")


def _flatten_temporal_context(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    wf = event_dict.pop("temporal_workflow", None)
    if isinstance(wf, dict):
        for key in _WORKFLOW_KEYS:
            if key in wf:
                event_dict.setdefault(key, wf[key])
    act = event_dict.pop("temporal_activity", None)
    if isinstance(act, dict):
        for key in _ACTIVITY_KEYS:
            if key in act:
                out = "run_id" if key == "workflow_run_id" else key
                event_dict.setdefault(out, act[key])
    return event_dict


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_sensitive_text(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask(v) for v in value)
    return value


def mask_sensitive(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """R9: no full identity or account number in any log line."""
    for key, value in list(event_dict.items()):
        if not key.startswith("_"):
            event_dict[key] = _mask(value)
    return event_dict


def configure_logging(fmt: str = "console", level: str = "INFO", stream: Any = None) -> None:
    # The context goes into structured keys, not into the message text.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=(stream or sys.stderr).isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            # Tracebacks become text before masking (R9 holds for them too), without
            # the locals of each frame that a rich console traceback would print.
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _flatten_temporal_context,
            structlog.processors.format_exc_info,
            mask_sensitive,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDK core's own chatter stays at WARNING unless asked for.
    logging.getLogger("temporalio").setLevel(level if level == "DEBUG" else "WARNING")
    logging.getLogger("temporalio.workflow").setLevel(level)
    logging.getLogger("temporalio.activity").setLevel(level)
    logging.getLogger("alembic").setLevel("WARNING")


def get_logger(name: str = "aidflow") -> Any:
    return structlog.get_logger(name)
