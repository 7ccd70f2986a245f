"""Assignments becoming runs: pack files, a RunRequest, the process, and its ExecutionResult.

Each assignment is one task: make sure the pack's files are cached, start the process (then a
Started notice goes to the scheduler), wait for its outcome, and hand the result to the sender;
its output goes to the scheduler as it is written (`logs.py`).
Anything that stops the process from starting — files not fetchable, entry point missing, runtime
not installed — becomes a FAILED result naming the cause, never a silent drop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from attune.common.v1 import common_pb2
from attune.config import Settings
from attune.grpcutil.convert import dumps, execution_state_from_proto, execution_state_to_proto, loads
from attune.internal.completion.v1 import completion_pb2
from attune.internal.worker.v1 import worker_pb2
from attune.security.masking import SecretValues
from attune.states import ExecutionState
from attune.telemetry import ERROR_STATES, messaging_attributes, start_span, tracer
from attune_services.worker.logs import LogShipper, RunLog
from attune_services.worker.packs import PackCache, PackFetchError
from attune_services.worker.runtimes import (
    CANCELLED_ERROR,
    ActionLaunchError,
    ActionProcess,
    ActionUser,
    Containment,
    RunOutcome,
    RunRequest,
)

log = logging.getLogger(__name__)
_tracer = tracer(__name__)
_ASSIGNMENT_MESSAGE = messaging_attributes("process", "attune.internal.worker.v1.WorkerService/Connect")

NOOP = "noop"
#: The error of a run the worker cancelled because it was shutting down (not asked by anyone):
#: the execution ends `cancelled` with it, so nobody mistakes it for a user's cancel.
SHUTDOWN_ERROR = "worker shut down"


@dataclass(eq=False)
class Run:
    """One accepted assignment until its result is produced."""

    assignment: worker_pb2.Assignment
    span: trace.Span
    traceparent: str  # the run span's, handed to the process and to the result
    process: ActionProcess | None = None
    started_at: float = 0.0  # once the process is running
    cancel_requested: bool = False
    # The error its result carries when it ends cancelled: the first reason it was cancelled for.
    cancel_error: str = CANCELLED_ERROR
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    log: RunLog | None = None  # its live output, once its process is about to start


class ExecutionRunner:
    """Runs assignments concurrently; reports starts and results through callbacks."""

    def __init__(
        self,
        settings: Settings,
        *,
        worker_id: str,
        interpreters: Mapping[str, str],
        packs: PackCache,
        on_started: Callable[[str, float], None],
        on_result: Callable[[completion_pb2.ExecutionResult], None],
        containment: Containment,
        user: ActionUser | None = None,
        logs: LogShipper | None = None,
    ) -> None:
        self._settings = settings
        self._logs = logs
        self._user = user
        self._containment = containment
        self._worker_id = worker_id
        self._interpreters = interpreters
        self._packs = packs
        self._on_started = on_started
        self._on_result = on_result
        self._runs: dict[str, Run] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        # Once set (`shut_down`), every run, including one accepted later, is cancelled with it.
        self._shutdown_error: str | None = None

    def running_ids(self) -> Sequence[str]:
        """Executions accepted whose result is not yet produced."""
        return list(self._runs)

    def started(self) -> list[worker_pb2.StartedExecution]:
        """Start notices of the processes running now."""
        return [
            worker_pb2.StartedExecution(execution_id=i, started_at=r.started_at)
            for i, r in self._runs.items()
            if r.started_at
        ]

    def accept(self, assignments: Sequence[worker_pb2.Assignment], *, is_held: Callable[[str], bool]) -> None:
        """Starts a run per assignment; one already running or held (a re-sent one) is ignored."""
        for assignment in assignments:
            execution_id = assignment.execution_id
            if execution_id in self._runs or is_held(execution_id):
                log.debug("assignment %s already held; ignored", execution_id)
                continue
            # Processing an assignment message from the scheduler's stream: a CONSUMER span.
            span, traceparent = start_span(
                _tracer,
                "execution.run",
                assignment.trace.traceparent,
                {
                    "attune.execution.id": execution_id,
                    "attune.action.ref": assignment.action_ref,
                    "attune.action.runtime": assignment.runtime,
                    "attune.worker.id": self._worker_id,
                    **_ASSIGNMENT_MESSAGE,
                },
                kind=SpanKind.CONSUMER,
            )
            run = Run(assignment, span, traceparent or assignment.trace.traceparent)
            if self._shutdown_error is not None:  # arrived after the grace: never spawned
                run.cancel_requested, run.cancel_error = True, self._shutdown_error
            self._runs[execution_id] = run
            self._idle.clear()
            run.task = asyncio.create_task(self._run(run), name=f"run-{execution_id}")

    def cancel(self, execution_ids: Sequence[str], *, error: str = CANCELLED_ERROR) -> None:
        """Stops these runs (they end CANCELLED with `error`, unless an earlier cancel gave one);
        unknown or finished ids are ignored."""
        for execution_id in execution_ids:
            run = self._runs.get(execution_id)
            if run is None:
                continue
            if not run.cancel_requested:
                run.cancel_requested, run.cancel_error = True, error
            if run.process is not None:
                run.process.cancel()

    def shut_down(self) -> None:
        """Cancels every run, and any accepted from now on, as SHUTDOWN_ERROR: the worker is
        stopping and its grace is over."""
        self._shutdown_error = SHUTDOWN_ERROR
        self.cancel(list(self._runs), error=SHUTDOWN_ERROR)

    async def wait_idle(self) -> None:
        """Returns once no run is left."""
        await self._idle.wait()

    async def _run(self, run: Run) -> None:
        assignment = run.assignment
        try:
            outcome = await self._execute(run)
            result = self._result(run, outcome)
        except PackFetchError as err:
            result = self._failure(run, f'action "{assignment.action_ref}" (pack {assignment.pack_ref}): {err}')
        except ActionLaunchError as err:
            result = self._failure(run, str(err))
        except Exception as err:
            log.exception("run of %s failed", assignment.execution_id)
            result = self._failure(run, f'action "{assignment.action_ref}": {type(err).__name__}: {err}')
        if assignment.secret_names:
            _mask_secrets(result, assignment)
        if self._logs is not None and assignment.runtime != NOOP:
            # The end of its output (already sent when its pipes closed): a watch ends on it.
            (run.log or self._logs.open(assignment.execution_id, limit=0)).close()
        if run.span.is_recording():
            state = execution_state_from_proto(result.state)
            run.span.set_attribute("attune.execution.state", state)
            if state in ERROR_STATES:
                run.span.set_status(Status(StatusCode.ERROR, result.error[:1024] or state))
        run.span.end()
        self._runs.pop(assignment.execution_id, None)
        if not self._runs:
            self._idle.set()
        self._on_result(result)

    async def _execute(self, run: Run) -> RunOutcome:
        assignment = run.assignment
        request = await self._request(run)
        process = run.process = ActionProcess(request, self._interpreters, containment=self._containment)
        cancelled_early = run.cancel_requested
        if cancelled_early:
            process.cancel()  # start() then ends it at once, without spawning
        await process.start()
        if not cancelled_early:
            run.started_at = time.time()
            # A no-op ends in the same tick: its result reaches the completion service (whose
            # compare-and-set accepts any non-terminal state) as soon as a start notice would, so
            # "running" would only cost the scheduler a write nobody can observe.
            if assignment.runtime != NOOP:
                self._on_started(assignment.execution_id, run.started_at)
        return await process.wait()

    async def _request(self, run: Run) -> RunRequest:
        assignment = run.assignment
        if assignment.runtime == NOOP:
            entry_point, working_dir = None, self._packs.root
        else:
            folder = self._packs.ready(assignment.pack_digest) or await self._packs.ensure(assignment.pack_digest)
            entry_point = _entry_point(folder, assignment)
            working_dir = folder / "actions"
        parameters = loads(assignment.parameters_json, {})
        if not isinstance(parameters, dict):
            raise ActionLaunchError(f'action "{assignment.action_ref}": parameters are not a JSON object')
        return RunRequest(
            execution_id=assignment.execution_id,
            action_ref=assignment.action_ref,
            runtime=assignment.runtime,
            entry_point=entry_point,
            working_dir=working_dir,
            parameters=parameters,
            secret_names=frozenset(assignment.secret_names),
            timeout_s=assignment.timeout_seconds or None,
            kill_grace_s=self._settings.kill_grace,
            output_limit_bytes=self._settings.log_limit_bytes,
            output=self._output(run, parameters),
            extra_env=_execution_env(run),
            user=self._user,
        )

    def _output(self, run: Run, parameters: dict[str, object]) -> RunLog | None:
        """The run's live output (none for a no-op: it has no process)."""
        if self._logs is None or run.assignment.runtime == NOOP:
            return None
        secrets = SecretValues.of_parameters(parameters, run.assignment.secret_names)
        run.log = self._logs.open(
            run.assignment.execution_id, limit=self._settings.log_limit_bytes, secrets=secrets or None
        )
        return run.log

    def _result(self, run: Run, outcome: RunOutcome) -> completion_pb2.ExecutionResult:
        assignment = run.assignment
        cancelled = outcome.state == ExecutionState.CANCELLED
        return completion_pb2.ExecutionResult(
            execution_id=assignment.execution_id,
            state=execution_state_to_proto(outcome.state),
            result_json=dumps(outcome.result),
            error=run.cancel_error if cancelled else outcome.error or "",
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
            trace=_trace_of(run),
            reporter=self._worker_id,
        )

    def _failure(self, run: Run, error: str) -> completion_pb2.ExecutionResult:
        """The result of a run whose process never started (CANCELLED if that was asked for)."""
        state = ExecutionState.CANCELLED if run.cancel_requested else ExecutionState.FAILED
        return completion_pb2.ExecutionResult(
            execution_id=run.assignment.execution_id,
            state=execution_state_to_proto(state),
            result_json=dumps({"stdout": "", "stderr": "", "exit_code": None, "duration_ms": 0}),
            error=run.cancel_error if run.cancel_requested else error,
            started_at=0.0,
            finished_at=time.time(),
            trace=_trace_of(run),
            reporter=self._worker_id,
        )


def _mask_secrets(result: completion_pb2.ExecutionResult, assignment: worker_pb2.Assignment) -> None:
    """Replaces, in place, every secret parameter value that the action printed, returned or
    failed with by ********: the result leaves the worker masked, so no table, response or log
    downstream ever holds it (docs/architecture.md, Secrets)."""
    params = loads(assignment.parameters_json, {})
    if not isinstance(params, dict):
        return
    secrets = SecretValues.of_parameters(params, assignment.secret_names)
    if not secrets:
        return
    result.result_json = dumps(secrets.mask(loads(result.result_json, {})))
    result.error = secrets.mask_text(result.error)


def _entry_point(folder: Path, assignment: worker_pb2.Assignment) -> Path:
    """The script's path in the cached pack. The entry point is pack-relative
    ("actions/echo.sh"); one relative to actions/ (as written in the action's YAML) is accepted."""
    relative = PurePosixPath(assignment.entry_point)
    if not assignment.entry_point or relative.is_absolute() or ".." in relative.parts:
        raise ActionLaunchError(
            f'action "{assignment.action_ref}": entry point {assignment.entry_point!r} is not a pack-relative path'
        )
    path = folder.joinpath(*relative.parts)
    if relative.parts[0] != "actions" and not path.is_file():
        path = folder.joinpath("actions", *relative.parts)
    return path


def _execution_env(run: Run) -> dict[str, str]:
    """ATTUNE_* variables beyond the ones naming the execution: its trace context and, for a
    workflow child, the task run it belongs to (so an action can key state per run). A top-level
    execution gets none of the workflow ones."""
    env = {"ATTUNE_TRACEPARENT": run.traceparent} if run.traceparent else {}
    assignment = run.assignment
    if assignment.parent_id:
        env["ATTUNE_PARENT_ID"] = assignment.parent_id
    if assignment.HasField("link") and assignment.link.workflow_execution_id:
        link = assignment.link
        env["ATTUNE_WORKFLOW_EXECUTION_ID"] = link.workflow_execution_id
        env["ATTUNE_TASK_NAME"] = link.task_name
        env["ATTUNE_TASK_RUN"] = str(link.run)
        env["ATTUNE_TASK_ATTEMPT"] = str(link.attempt)
        if link.item_index >= 0:
            env["ATTUNE_TASK_ITEM_INDEX"] = str(link.item_index)
    return env


def _trace_of(run: Run) -> common_pb2.TraceContext:
    """The run span's context (same trace as the assignment), so completion's span hangs below it."""
    return common_pb2.TraceContext(traceparent=run.traceparent, tracestate=run.assignment.trace.tracestate)
