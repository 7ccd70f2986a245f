"""The worker's action-execution layer: runs one action as a child process and reports its outcome.

Pure asyncio, no gRPC: the worker service turns assignments into `RunRequest`s, reports "running"
once `ActionProcess.start()` returns, and sends the `RunOutcome` to the completion service.
Parameters travel on stdin as JSON, never on argv; the result follows docs/workflows.md, Semantic rules 13.
The process sees none of the worker's environment and, under a root worker, runs as an unprivileged
user (`_user`). Every process it starts ends with the run (`_scope`, `_contain`).
"""

from ._contain import containment_mode, open_containment
from ._launch import detect_runtimes
from ._model import (
    CANCELLED_ERROR,
    ActionLaunchError,
    EntryPointMissing,
    RunOutcome,
    RunRequest,
    RuntimeNotAvailable,
)
from ._process import ActionProcess, run_action
from ._scope import Containment, ContainmentError
from ._user import ActionUser, ActionUserError, action_user

__all__ = [
    "CANCELLED_ERROR",
    "ActionLaunchError",
    "ActionProcess",
    "ActionUser",
    "ActionUserError",
    "Containment",
    "ContainmentError",
    "EntryPointMissing",
    "RunOutcome",
    "RunRequest",
    "RuntimeNotAvailable",
    "action_user",
    "containment_mode",
    "detect_runtimes",
    "open_containment",
    "run_action",
]
