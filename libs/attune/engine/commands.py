"""What the state machine asks the coordinator to do, and the keys that name task runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import WorkflowStateError

__all__ = [
    "CancelTask",
    "CancelTimer",
    "Command",
    "FinishWorkflow",
    "SetTimer",
    "StartTask",
    "Step",
    "TaskEnded",
    "TaskRunKey",
    "command_from_dict",
]


@dataclass(frozen=True)
class TaskRunKey:
    """Names one child execution of a workflow: task, run (1-based), item index, attempt (1-based).

    ``as_str()`` gives ``"<task>/<run>/<item or ->/<attempt>"``, e.g. ``deploy/1/-/1``.
    """

    task: str
    run: int
    item: int | None
    attempt: int

    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        item = "-" if self.item is None else str(self.item)
        object.__setattr__(self, "_text", f"{self.task}/{self.run}/{item}/{self.attempt}")

    def as_str(self) -> str:
        """Stable string form, unique within one workflow execution."""
        return self._text

    @classmethod
    def parse(cls, text: str) -> TaskRunKey:
        """Inverse of ``as_str``."""
        try:
            task, run, item, attempt = text.rsplit("/", 3)
            return cls(task, int(run), None if item == "-" else int(item), int(attempt))
        except ValueError as err:
            raise WorkflowStateError(f"malformed task run key {text!r}") from err

    def __str__(self) -> str:
        return self.as_str()


@dataclass(frozen=True)
class TaskEnded:
    """Event: a child execution reached a terminal state.

    ``error`` is why it did not succeed, as the child execution says (``exit code 1: …``, a
    nested workflow's error, or why it was never started); the workflow's error quotes it for a
    failure no transition handles.
    """

    key: TaskRunKey
    state: str  # succeeded | failed | timeout | cancelled | abandoned
    result: dict[str, Any] | list[Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class StartTask:
    """Request a child execution of ``action_ref`` with ``input``."""

    key: TaskRunKey
    action_ref: str
    input: dict[str, Any]
    timeout: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "start_task",
            "key": self.key.as_str(),
            "action_ref": self.action_ref,
            "input": self.input,
            "timeout": self.timeout,
        }


@dataclass(frozen=True)
class CancelTask:
    """Cancel a running child execution."""

    key: TaskRunKey

    def to_dict(self) -> dict[str, Any]:
        return {"type": "cancel_task", "key": self.key.as_str()}


@dataclass(frozen=True)
class SetTimer:
    """Call ``timer_fired(timer_id)`` at ``fire_at``; purpose is delay | retry | workflow_timeout."""

    timer_id: str
    fire_at: float
    purpose: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "set_timer", "timer_id": self.timer_id, "fire_at": self.fire_at, "purpose": self.purpose}


@dataclass(frozen=True)
class CancelTimer:
    """Forget a timer set earlier (firing it anyway is harmless: the engine ignores it)."""

    timer_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "cancel_timer", "timer_id": self.timer_id}


@dataclass(frozen=True)
class FinishWorkflow:
    """The workflow ended; submit ``result`` with ``status`` to the completion service."""

    status: str  # succeeded | failed | cancelled | timeout
    result: dict[str, Any]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": "finish_workflow", "status": self.status, "result": self.result, "error": self.error}


Command = StartTask | CancelTask | SetTimer | CancelTimer | FinishWorkflow


def command_from_dict(d: dict[str, Any]) -> Command:
    """Inverse of ``Command.to_dict()``."""
    kind = d.get("type")
    if kind == "start_task":
        return StartTask(TaskRunKey.parse(d["key"]), d["action_ref"], d["input"], d["timeout"])
    if kind == "cancel_task":
        return CancelTask(TaskRunKey.parse(d["key"]))
    if kind == "set_timer":
        return SetTimer(d["timer_id"], d["fire_at"], d["purpose"])
    if kind == "cancel_timer":
        return CancelTimer(d["timer_id"])
    if kind == "finish_workflow":
        return FinishWorkflow(d["status"], d["result"], d["error"])
    raise WorkflowStateError(f"unknown command type {kind!r}")


@dataclass
class Step:
    """What one event did: changed state entries (None = deleted) and commands to carry out."""

    changed: dict[str, Any] = field(default_factory=dict)
    commands: list[Command] = field(default_factory=list)
