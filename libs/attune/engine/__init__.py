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
from .parse import parse_workflow, workflow_action_refs
from .spec import RetrySpec, TaskSpec, TransitionSpec, WorkflowSpec

__all__ = [
    "CompiledWorkflowError", "EngineError", "ExpressionError", "ExpressionSyntaxError",
    "SpecError", "WorkflowSpecError", "WorkflowStateError",
    "parse_workflow", "workflow_action_refs",
    "RetrySpec", "TaskSpec", "TransitionSpec", "WorkflowSpec",
]
