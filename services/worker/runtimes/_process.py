"""One action run as a child process: spawn, feed parameters, enforce the timeout, cancel, report.

The child leads its own session and runs inside a `RunScope` of the worker's containment
(`_scope`): every signal goes to every process of the run, however it detached, and whatever is
left when the run is over is killed. It runs as the request's user (see `_user`) with an
environment built from scratch and a HOME of its own, removed once the run is over.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from attune.states import ExecutionState

from ._capture import CappedCapture
from ._contain import default_containment
from ._launch import NOOP, command_for, environment_for
from ._model import CANCELLED_ERROR, ActionLaunchError, RunOutcome, RunRequest
from ._result import action_result, exit_error
from ._scope import Containment, RunScope
from ._stdin import ParameterPipe
from ._user import remove_home, scratch_home

_STDOUT = 1
_STDERR = 2


class ActionProcess:
    """Runs one `RunRequest`: `await start()` (spawned, report "running"), `await wait()`;
    `cancel()` at any time."""

    def __init__(
        self, request: RunRequest, interpreters: Mapping[str, str], *, containment: Containment | None = None
    ) -> None:
        self.request = request
        self._interpreters = interpreters
        self._containment = containment  # None: the process-wide default, opened on first spawn
        self._scope: RunScope | None = None
        self._transport: asyncio.SubprocessTransport | None = None
        self._capture: CappedCapture | None = None
        self._stdin: ParameterPipe | None = None
        self._done: asyncio.Future[None] | None = None
        self._outcome: RunOutcome | None = None
        self._ending: ExecutionState | None = None  # TIMEOUT or CANCELLED once we decided to end it
        self._cancel_requested = False  # cancel() before there was a process to signal
        self._timers: list[asyncio.TimerHandle] = []
        self._started_at = 0.0  # time.time()
        self._home: Path | None = None  # the run's scratch HOME while it exists

    @property
    def pid(self) -> int | None:
        return None if self._transport is None else self._transport.get_pid()

    async def start(self) -> None:
        """Spawn the process and hand it its parameters; returns once it is running.

        Raises RuntimeNotAvailable or EntryPointMissing (or ActionLaunchError if the OS refuses
        to start it) without spawning anything.
        """
        if self._done is not None or self._outcome is not None:
            raise RuntimeError(f'execution "{self.request.execution_id}" was already started')
        request = self.request
        argv = command_for(request, self._interpreters)
        self._started_at = time.time()
        if self._cancel_requested or request.runtime == NOOP:
            self._outcome = self._immediate_outcome()
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        user = request.user
        containment = self._containment or default_containment()
        try:
            scope = containment.scope(request.execution_id)
        except OSError as err:
            raise ActionLaunchError(f'action "{request.action_ref}": cannot contain its processes: {err}') from err
        try:
            home = scratch_home(user)
        except OSError as err:
            scope.close()
            raise ActionLaunchError(f'action "{request.action_ref}": cannot create its HOME: {err}') from err
        stdin = ParameterPipe(json.dumps(request.parameters, separators=(",", ":")).encode())
        try:
            async with scope.spawning():
                transport, capture = await loop.subprocess_exec(
                    lambda: CappedCapture(request.output_limit_bytes, done, request.output),
                    *(user.argv_prefix() if user else containment.argv_prefix()),
                    *argv,
                    stdin=stdin.read_fd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=request.working_dir,
                    env=environment_for(request, home),
                    start_new_session=True,
                    **(user.popen_options() if user else {}),
                )
        except OSError as err:
            stdin.close_read_end()
            stdin.discard()
            remove_home(home)
            scope.close()
            raise ActionLaunchError(f'action "{request.action_ref}": cannot start {argv[0]} {argv[1]}: {err}') from err
        scope.started(transport.get_pid())
        self._scope = scope
        self._home = home
        self._transport, self._capture, self._done, self._stdin = transport, capture, done, stdin
        capture.on_exit = self._on_exit
        # The outcome is settled (and the transport released) even if nobody waits for it.
        done.add_done_callback(self._settle)
        try:
            await stdin.spawned()
        except BaseException:  # e.g. the caller's task was cancelled: do not leave it running
            self._end(ExecutionState.CANCELLED)
            raise
        if request.timeout_s is not None:
            self._timers.append(loop.call_later(request.timeout_s, self._end, ExecutionState.TIMEOUT))
        if self._cancel_requested:  # cancel() arrived while we were spawning
            self._end(ExecutionState.CANCELLED)

    async def wait(self) -> RunOutcome:
        """The outcome, once the process has exited and its output is read."""
        if self._outcome is not None:
            return self._outcome
        if self._done is None:
            raise RuntimeError(f'execution "{self.request.execution_id}": wait() before start()')
        # Shielded: a caller that stops waiting does not stop the run (cancel() does).
        await asyncio.shield(self._done)
        return self._settle()

    def cancel(self) -> None:
        """Kill the run (SIGTERM to its processes, grace, SIGKILL); it ends `cancelled`.
        Does nothing once the process has exited by itself."""
        if self._transport is None:
            self._cancel_requested = True  # start() will not spawn, or will kill at once
            return
        self._end(ExecutionState.CANCELLED)

    def _end(self, reason: ExecutionState) -> None:
        transport = self._transport
        if self._ending is not None or transport is None or transport.get_returncode() is not None:
            return
        self._ending = reason
        scope = self._scope
        assert scope is not None  # set together with the transport
        grace = self.request.kill_grace_s
        if grace > 0:
            scope.signal(signal.SIGTERM)
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(grace, scope.kill))
        else:
            scope.kill()

    def _on_exit(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._scope is None:
            return
        self._scope.leader_exited()
        if self._ending is not None:
            # The leader is gone; anything left of the run is killed now, not after the grace.
            self._scope.kill()

    def _settle(self, _: object = None) -> RunOutcome:
        if self._outcome is None:
            self._outcome = self._final_outcome()
        return self._outcome

    def _final_outcome(self) -> RunOutcome:
        transport, capture = self._transport, self._capture
        assert transport is not None and capture is not None
        exit_code = transport.get_returncode()
        transport.close()
        if self._scope is not None:
            self._scope.close()  # no process of the run outlives it
        if self._stdin is not None:
            self._stdin.discard()
        if self._home is not None:
            remove_home(self._home)
            self._home = None
        finished_at = time.time()
        stdout, stderr = capture.text(_STDOUT), capture.text(_STDERR)
        duration_ms = int((finished_at - self._started_at) * 1000)
        result = action_result(stdout, stderr, exit_code, duration_ms)
        if self._ending == ExecutionState.TIMEOUT:
            state, error = ExecutionState.TIMEOUT, f"timed out after {self.request.timeout_s:g}s"
        elif self._ending == ExecutionState.CANCELLED:
            state, error = ExecutionState.CANCELLED, CANCELLED_ERROR
        elif exit_code == 0:
            state, error = ExecutionState.SUCCEEDED, None
        else:
            state, error = ExecutionState.FAILED, exit_error(exit_code, stderr)
        return RunOutcome(
            state=state,
            result=result,
            error=error,
            exit_code=exit_code,
            started_at=self._started_at,
            finished_at=finished_at,
        )

    def _immediate_outcome(self) -> RunOutcome:
        """noop succeeds at once; a run cancelled before it started never spawns."""
        cancelled = self._cancel_requested
        exit_code = None if cancelled else 0
        return RunOutcome(
            state=ExecutionState.CANCELLED if cancelled else ExecutionState.SUCCEEDED,
            result={"stdout": "", "stderr": "", "exit_code": exit_code, "duration_ms": 0},
            error=CANCELLED_ERROR if cancelled else None,
            exit_code=exit_code,
            started_at=self._started_at,
            finished_at=self._started_at,
        )


async def run_action(
    request: RunRequest, interpreters: Mapping[str, str], *, containment: Containment | None = None
) -> RunOutcome:
    """Start the run and wait for its outcome; if the caller is cancelled, so is the run."""
    process = ActionProcess(request, interpreters, containment=containment)
    await process.start()
    try:
        return await process.wait()
    except asyncio.CancelledError:
        process.cancel()
        raise
