"""What a run is asked to do (`RunRequest`), what came of it (`RunOutcome`), and why it could
not start (`ActionLaunchError` and its two kinds)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from attune.states import ExecutionState

from ._user import ActionUser

#: The error of a run that was cancelled: the state's name, as a plain string.
CANCELLED_ERROR: Final = ExecutionState.CANCELLED.value


class OutputSink(Protocol):
    """Where a run's output goes as it is read (the worker's live log, `services/worker/logs.py`)."""

    def write(self, stream: str, data: bytes) -> None:
        """Bytes the process wrote on "stdout" or "stderr", as read."""

    def hold_with(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        """How to stop and restart reading the process's pipes (back-pressure: the process then
        waits on its writes)."""

    def close(self) -> None:
        """The pipes are closed: no more output will come."""


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """One action execution as the worker received it from the scheduler."""

    execution_id: str
    action_ref: str
    runtime: str  # shell | python | nodejs | noop
    entry_point: Path | None  # absolute path of the script; None for noop
    working_dir: Path  # the pack's actions/ directory
    parameters: dict[str, Any]
    secret_names: frozenset[str] = frozenset()
    timeout_s: float | None = None
    kill_grace_s: float = 5.0  # SIGTERM -> grace -> SIGKILL
    output_limit_bytes: int = 1_048_576  # per stream; the excess is dropped and a marker appended
    output: OutputSink | None = None  # also sent there as it is read (live output)
    extra_env: Mapping[str, str] = field(default_factory=dict)  # ATTUNE_TRACEPARENT, workflow task run
    user: ActionUser | None = None  # who the process runs as; None: the worker's own user


@dataclass(frozen=True, kw_only=True)
class RunOutcome:
    """The terminal state of a run and its §4.13 result, ready for the completion service."""

    state: ExecutionState  # SUCCEEDED | FAILED | TIMEOUT | CANCELLED
    result: dict[str, Any]
    error: str | None
    exit_code: int | None  # negative: killed by that signal (subprocess convention)
    started_at: float  # time.time()
    finished_at: float


class ActionLaunchError(Exception):
    """The action could not be started; nothing was spawned."""


class RuntimeNotAvailable(ActionLaunchError):
    """The action's runtime has no interpreter on this worker."""

    def __init__(self, *, action_ref: str, runtime: str, available: Mapping[str, str]) -> None:
        self.action_ref = action_ref
        self.runtime = runtime
        self.available = tuple(sorted(available))
        super().__init__(
            f'action "{action_ref}": runtime "{runtime}" is not available on this worker '
            f"(available: {', '.join(self.available) or 'none'})"
        )


class EntryPointMissing(ActionLaunchError):
    """The action's script (or its working directory) is not where the request says."""

    def __init__(self, *, action_ref: str, path: Path | None, what: str = "entry point") -> None:
        self.action_ref = action_ref
        self.path = path
        where = "none given" if path is None else f"no file at {path}"
        super().__init__(f'action "{action_ref}": {what} missing ({where})')
