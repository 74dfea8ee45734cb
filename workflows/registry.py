"""Every workflow type a worker registers."""

from workflows.application import ApplicationWorkflow
from workflows.notice import NoticeWorkflow
from workflows.payout import PayoutBatchWorkflow
from workflows.season import SeasonWorkflow

ALL_WORKFLOWS: list[type] = [
    ApplicationWorkflow,
    NoticeWorkflow,
    SeasonWorkflow,
    PayoutBatchWorkflow,
]
