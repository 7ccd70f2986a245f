"""Attune's workflow engine: a pure library (no I/O, no clock it is not given).

parse (``parse_workflow``) → compile (``compile_workflow``) → evaluate (``start``,
``task_ended``, ``timer_fired``, ``cancel``), Orquesta style. The language: docs/workflows.md.
"""

from ._bounds import TemplateLimits
from ._rerun import seed_entries, start_from
from ._runs import ITEM_RUN_PREFIX, item_counts
from .commands import (
    CancelTask,
    CancelTimer,
    Command,
    FinishWorkflow,
    SetTimer,
    StartTask,
    Step,
    TaskEnded,
    TaskRunKey,
    command_from_dict,
)
from .errors import (
    CompiledWorkflowError,
    EngineError,
    ExpressionError,
    ExpressionSyntaxError,
    SpecError,
    WorkflowSpecError,
    WorkflowStateError,
)
from .graph import CompiledWorkflow, compile_workflow
from .machine import WORKFLOW_TIMEOUT_TIMER, cancel, child_paused, pause, resume, start, task_ended, timer_fired
from .parse import parse_workflow, readable_tasks, workflow_action_refs
from .spec import RetrySpec, TaskSpec, TransitionSpec, WorkflowSpec
from .state import WorkflowState

__all__ = [
    "ITEM_RUN_PREFIX",
    "WORKFLOW_TIMEOUT_TIMER",
    "CancelTask",
    "CancelTimer",
    "Command",
    "CompiledWorkflow",
    "CompiledWorkflowError",
    "EngineError",
    "ExpressionError",
    "ExpressionSyntaxError",
    "FinishWorkflow",
    "RetrySpec",
    "SetTimer",
    "SpecError",
    "StartTask",
    "Step",
    "TaskEnded",
    "TaskRunKey",
    "TaskSpec",
    "TemplateLimits",
    "TransitionSpec",
    "WorkflowSpec",
    "WorkflowSpecError",
    "WorkflowState",
    "WorkflowStateError",
    "cancel",
    "child_paused",
    "command_from_dict",
    "compile_workflow",
    "item_counts",
    "parse_workflow",
    "pause",
    "readable_tasks",
    "resume",
    "seed_entries",
    "start",
    "start_from",
    "task_ended",
    "timer_fired",
    "workflow_action_refs",
]
