"""What containment promises: every process of a run — children, grandchildren, daemons that
called setsid or forked twice — ends with the run, however the run ends.

A `Containment` belongs to one worker process and hands out a `RunScope` per run. Two kinds exist
(`_cgroup`, `_subreaper`); `_contain` picks one. `ActionProcess` drives the scope:

    scope = containment.scope(execution_id)      # before the spawn
    async with scope.spawning(): <spawn>         # the spawn lands inside the scope
    scope.started(pid)
    scope.signal(SIGTERM) ... scope.kill()       # cancel or timeout: TERM, grace, KILL
    scope.close()                                # the run is over: kill what is left, release
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager

from attune.config import ConfigError


class ContainmentUnavailable(Exception):
    """This kind of containment cannot work here; the message says why."""


class ContainmentError(ConfigError):
    """`ATTUNE_WORKER_CONTAINMENT` asks for something this host cannot give."""


class RunScope(ABC):
    """The processes of one run."""

    @abstractmethod
    def spawning(self) -> AbstractAsyncContextManager[None]:
        """Wraps the spawn of the run's process, so that it starts inside the scope."""

    @abstractmethod
    def started(self, pid: int) -> None:
        """The run's process has been spawned with this pid."""

    @abstractmethod
    def leader_exited(self) -> None:
        """The run's own process has exited and been reaped: its pid may be reused from now on."""

    @abstractmethod
    def signal(self, sig: signal.Signals) -> None:
        """Sends `sig` to every process of the run that can be found."""

    @abstractmethod
    def kill(self) -> None:
        """SIGKILLs every process of the run."""

    @abstractmethod
    def close(self) -> None:
        """The run is over: kills whatever of it is left and releases the scope. Idempotent."""


class Containment(ABC):
    """One worker's way of keeping its runs' processes together."""

    #: "cgroup" or "subreaper".
    kind: str
    #: For the worker's start log: where the runs' processes are kept, or why not in a cgroup.
    description: str

    @abstractmethod
    def argv_prefix(self) -> list[str]:
        """Put before the action's argv when no user switch is made (the worker is not root):
        whatever makes the action's process die with the worker."""

    @abstractmethod
    def scope(self, execution_id: str) -> RunScope:
        """A scope for a new run. Raises OSError when the host refuses one."""

    @abstractmethod
    def close(self) -> None:
        """Kills every process of every run left and releases what the containment holds."""
