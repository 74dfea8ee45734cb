"""Every workflow type a worker registers."""

from workflows.application import ApplicationWorkflow
from workflows.case import CaseWorkflow
from workflows.notice import NoticeWorkflow
from workflows.payout import PayoutBatchWorkflow
from workflows.recovery import RecoveryWorkflow
from workflows.roster import RosterWorkflow
from workflows.season import SeasonWorkflow
from workflows.tasks import DatedTasksWorkflow

ALL_WORKFLOWS: list[type] = [
    ApplicationWorkflow,
    NoticeWorkflow,
    SeasonWorkflow,
    PayoutBatchWorkflow,
    RosterWorkflow,
    RecoveryWorkflow,
    DatedTasksWorkflow,
    CaseWorkflow,
]
