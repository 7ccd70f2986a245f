"""Attune's workflow engine: a pure library (no I/O, no clock it is not given).

parse (``parse_workflow``) → compile (``compile_workflow``) → evaluate (``start``,
``task_ended``, ``timer_fired``, ``cancel``), Orquesta style. See DESIGN §4.
"""

from .errors import (
    CompiledWorkflowError,
    EngineError,
    ExpressionError,
    ExpressionSyntaxError,
    SpecError,
    WorkflowSpecError,
    WorkflowStateError,
)
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
from .graph import CompiledWorkflow, compile_workflow
from .machine import WORKFLOW_TIMEOUT_TIMER, cancel, start, task_ended, timer_fired
from .parse import parse_workflow, workflow_action_refs
from .spec import RetrySpec, TaskSpec, TransitionSpec, WorkflowSpec
from .state import WorkflowState

__all__ = [
    "CompiledWorkflowError", "EngineError", "ExpressionError", "ExpressionSyntaxError",
    "SpecError", "WorkflowSpecError", "WorkflowStateError",
    "parse_workflow", "workflow_action_refs",
    "RetrySpec", "TaskSpec", "TransitionSpec", "WorkflowSpec",
    "CompiledWorkflow", "compile_workflow",
    "WorkflowState", "start", "task_ended", "timer_fired", "cancel", "WORKFLOW_TIMEOUT_TIMER",
    "TaskRunKey", "TaskEnded", "Step", "Command", "StartTask", "CancelTask", "SetTimer",
    "CancelTimer", "FinishWorkflow", "command_from_dict",
]
