"""Keeps the services of `attune up` running: one that exits is started again, with backoff.

`attune up` calls `Supervisor.check` every fraction of a second from its main thread (the thread
the services' PDEATHSIG follows, see `Launcher.start`). A service that exited (a crash, a kill -9
or an OOM kill: any exit `attune up` did not ask for) is started again after a delay that doubles
with each recent exit (`RestartPolicy`). Each exit and restart is shown on `attune up`'s console
and appended to that service's log (a line of its format, from the logger "attune up"). A service
that exits `limit` times within `window` seconds is not started again: `check` raises `CrashLoop`
naming it, how it last ended and its last output, and `attune up` stops the others and exits 1.
A restarted service resumes from the database and its peers reconnect to it
(docs/operations.md, Failures and recovery).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from attune.logs import JsonFormatter
from attune_services.cli.launcher import Launcher, ServiceProcess, exit_description


@dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    """When a service that exited is started again, and when `attune up` gives up on it."""

    #: Exits within `window` seconds that stop `attune up` instead of another restart.
    limit: int = 5
    window: float = 60.0
    #: The delay before the first restart; it doubles with each exit in the window, up to `max_delay`.
    first_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, recent_exits: int) -> float:
        """The wait before restarting a service that has exited `recent_exits` times in the window."""
        return min(self.first_delay * 2.0 ** max(recent_exits - 1, 0), self.max_delay)


class CrashLoop(Exception):
    """A service kept exiting: `limit` exits within the window. The message names it and how it
    last ended; `tail` is its last output."""

    def __init__(self, message: str, tail: list[str]) -> None:
        super().__init__(message)
        self.tail = tail


@dataclass
class _Watch:
    """What the supervisor knows of one service."""

    exits: deque[float] = field(default_factory=deque)  # monotonic times, within the window
    restart_at: float | None = None  # set while it waits for its restart


class Supervisor:
    """Restarts the launcher's services that exit; see the module docstring."""

    def __init__(
        self,
        launcher: Launcher,
        policy: RestartPolicy,
        *,
        report: Callable[[str], None],
        log_format: str = "json",
    ) -> None:
        """`report` shows a line on the console; `log_format` is the services' ATTUNE_LOG_FORMAT."""
        self._launcher = launcher
        self._policy = policy
        self._report = report
        self._log_format = log_format
        self._watches: dict[str, _Watch] = {}

    def check(self) -> None:
        """Notices services that exited, restarts those whose delay is over; raises CrashLoop for
        one that exited `limit` times within the window."""
        now = time.monotonic()
        for child in self._launcher.children:
            watch = self._watches.setdefault(child.name, _Watch())
            if watch.restart_at is not None:
                if now >= watch.restart_at:
                    watch.restart_at = None
                    self._launcher.restart(child)
                    self._tell(child, f"{child.name} started again (pid {child.process.pid}, restart {child.restarts})")
                continue
            code = child.process.poll()
            if code is not None:
                self._exited(child, watch, code, now)

    def _exited(self, child: ServiceProcess, watch: _Watch, code: int, now: float) -> None:
        watch.exits.append(now)
        while watch.exits and now - watch.exits[0] > self._policy.window:
            watch.exits.popleft()
        how = exit_description(code)
        recent = len(watch.exits)
        if recent >= self._policy.limit:
            message = (
                f"{child.name} keeps crashing: {recent} exits within {self._policy.window:g}s "
                f"(the last: {how}); its last output ({child.log_path}):"
            )
            self._tell(child, f"{child.name} {how}; {recent} exits within {self._policy.window:g}s: giving up")
            raise CrashLoop(message, child.tail())
        delay = self._policy.delay(recent)
        watch.restart_at = now + delay
        self._tell(
            child,
            f"{child.name} (pid {child.process.pid}) {how} unexpectedly; starting it again in {delay:g}s "
            f"(restart {child.restarts + 1}; exits within {self._policy.window:g}s: {recent}, "
            f"at {self._policy.limit} attune up stops)",
        )

    def _tell(self, child: ServiceProcess, line: str) -> None:
        """On the console and in the service's own log, where its last words are."""
        self._report(f"attune up: {line}")
        try:
            with child.log_path.open("a") as log:
                log.write(log_line(child.name, line, self._log_format) + "\n")
        except OSError:
            pass  # the console has it


def log_line(service: str, message: str, fmt: str) -> str:
    """`message` as a line of the service's own log (`ATTUNE_LOG_FORMAT`: json or text), logged
    by "attune up" at WARNING."""
    record = logging.makeLogRecord(
        {"name": "attune up", "levelno": logging.WARNING, "levelname": "WARNING", "msg": message}
    )
    if fmt == "json":
        return JsonFormatter(service).format(record)
    return logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s").format(record)
