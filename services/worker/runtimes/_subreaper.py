"""Containment without a cgroup per run: the worker is a child subreaper, and each action's own
process dies with the worker (PR_SET_PDEATHSIG, set by `setpriv --pdeathsig`).

A subreaper adopts its descendants' orphans: a daemon whose parent exited (a double fork), or
whatever is left once the action's own process has ended, becomes the worker's child instead of
init's. So the processes of a run are
- the action's process and its descendants, while it runs (found through /proc children), and
- the worker's adopted children that belong to the run — in the run's session (its id is the
  action's pid: the action leads a session of its own) or started with the run's
  `ATTUNE_EXECUTION_ID` in their environment — with their descendants.
The worker reaps the adopted processes it killed or recognised (known by pid and start time),
never the ones asyncio waits for.

Weaker than a cgroup per run (docs/operations.md, Containment): a process that left the run's
session and dropped `ATTUNE_EXECUTION_ID` from its environment, once its parent is gone, belongs
to no run. With a `WorkerCgroup` (the worker lives in a cgroup of its own) such a process still
ends when the worker stops or dies; without one, a SIGKILLed worker takes only its actions' own
processes along: what they started goes to the subreaper above the worker (systemd, a
container's init) or to init.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import time
from collections.abc import AsyncIterator
from signal import Signals

from ._cgroup import WorkerCgroup
from ._proctree import ProcStat, children_of, descendants, environ_of, stat_of
from ._scope import Containment, RunScope
from ._user import setpriv_has_pdeathsig

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37
# Killed processes take a moment to become zombies: reaping is retried, less and less often,
# while a known process of a run is still there.
_REAP_FIRST_S = 0.05
_REAP_LAST_S = 5.0


class SubreaperContainment(Containment):
    """The runs of a worker that is their subreaper.

    `exclusive`: this process starts children only through this containment (the worker), so
    every child that is not an action's own process is an adopted one of some run, and any of
    them that dies is reaped. Otherwise (a test, the benchmark) only processes recognised as a
    run's — by its session or its `ATTUNE_EXECUTION_ID`, or because a scope signalled them — are
    reaped: the others are someone else's children to wait for.
    """

    kind = "subreaper"

    def __init__(
        self, *, setpriv: str | None, reason: str, exclusive: bool = False, cgroup: WorkerCgroup | None = None
    ) -> None:
        where = f"the worker and its actions in {cgroup.root}" if cgroup else "the worker in no cgroup of its own"
        self.description = f"the worker as child subreaper, PDEATHSIG on each action; {where} ({reason})"
        self._setpriv = setpriv
        self._exclusive = exclusive
        self.cgroup = cgroup
        self._not_adopted = {cgroup.watchdog_pid} if cgroup else set()  # our own children, not a run's
        self._was_subreaper = _is_subreaper()
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        self.leaders: set[int] = set()  # the actions' own processes, until asyncio has reaped them
        self.open_scopes: set[SubreaperScope] = set()
        self._ours: dict[int, int] = {}  # processes of runs (pid -> start) to reap once they are zombies
        self.spawning_now = 0  # a spawned process is not in `leaders` until the spawn returns
        self._reaping: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None
        self._closed = False

    def argv_prefix(self) -> list[str]:
        if self.cgroup is not None or self._setpriv is None or not setpriv_has_pdeathsig(self._setpriv):
            return []  # with a cgroup, its watchdog ends everything when the worker dies
        return [self._setpriv, "--pdeathsig=KILL", "--"]

    def scope(self, execution_id: str) -> RunScope:
        scope = SubreaperScope(self, execution_id)
        self.open_scopes.add(scope)
        return scope

    def adopted(self) -> list[tuple[int, ProcStat]]:
        """The living children of this process that are not an action's own process; reaps the
        dead ones that were a run's."""
        found: list[tuple[int, ProcStat]] = []
        # While a spawn is under way, its process is our child but not yet in `leaders`: it must
        # be neither reaped (asyncio waits for it) nor taken for an adopted one.
        settled = self.spawning_now == 0
        for pid in children_of(os.getpid()):
            if pid in self.leaders or pid in self._not_adopted:
                continue
            stat = stat_of(pid)
            if stat is None:
                continue
            if stat.state == "Z":
                if settled:
                    self._reap(pid, stat)
                continue
            if settled and pid not in self._ours and self.open_scopes:
                environ = environ_of(pid)
                if any(scope.owns(stat, environ) for scope in self.open_scopes):
                    self._ours[pid] = stat.start  # seen alive as a run's: reaped when it dies
            found.append((pid, stat))
        return found

    def remember(self, processes: dict[int, int]) -> None:
        """Processes of a run (pid -> start) to reap if they end up as our zombies."""
        self._ours.update(processes)

    def reap(self) -> None:
        """Reaps the zombies among the runs' processes; forgets those reaped elsewhere."""
        self.adopted()
        for pid, start in list(self._ours.items()):
            stat = stat_of(pid)
            if stat is None or stat.start != start:
                del self._ours[pid]

    def reap_soon(self) -> None:
        """Reaps shortly, and again while known processes of runs are left."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # the next reap will do
        if self._reaping is None or self._reaping[0] is not loop:  # (a loop that ended drops its timer)
            self._reaping = (loop, loop.call_later(_REAP_FIRST_S, self._reap_again, _REAP_FIRST_S))

    def _reap_again(self, delay: float) -> None:
        self._reaping = None
        self.reap()
        if self._ours and not self._closed:
            loop = asyncio.get_running_loop()
            later = min(delay * 2, _REAP_LAST_S)
            self._reaping = (loop, loop.call_later(later, self._reap_again, later))

    def _reap(self, pid: int, stat: ProcStat) -> None:
        if self._ours.pop(pid, None) == stat.start or self._exclusive:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reaping is not None:
            self._reaping[1].cancel()
        left: dict[int, ProcStat] = {}
        for pid, stat in self.adopted():
            if self._exclusive or pid in self._ours:
                left.update(_with_descendants(pid, stat))
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self.remember({pid: stat.start for pid, stat in left.items()})
        deadline = time.monotonic() + 1.0
        while self._ours and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.01)
        if not self._was_subreaper:
            _prctl(_PR_SET_CHILD_SUBREAPER, 0)
        if self.cgroup is not None:
            self.cgroup.close()  # anything no run claimed ends with the worker


class SubreaperScope(RunScope):
    """One run's processes, found in the process tree when needed."""

    def __init__(self, owner: SubreaperContainment, execution_id: str) -> None:
        self._owner = owner
        self._marker = f"ATTUNE_EXECUTION_ID={execution_id}".encode()
        self._leader: int | None = None  # its pid, until asyncio has reaped it
        self._session = 0
        self._closed = False

    @contextlib.asynccontextmanager
    async def spawning(self) -> AsyncIterator[None]:
        self._owner.spawning_now += 1
        try:
            yield
        finally:
            self._owner.spawning_now -= 1

    def started(self, pid: int) -> None:
        self._leader = pid
        self._session = pid  # spawned with start_new_session: it leads its own session
        self._owner.leaders.add(pid)

    def leader_exited(self) -> None:
        if self._leader is not None:
            self._owner.leaders.discard(self._leader)
            self._leader = None

    def signal(self, sig: Signals) -> None:
        self._signal(sig)

    def kill(self) -> None:
        if self._signal(signal.SIGKILL):
            self._owner.reap_soon()

    def _signal(self, sig: Signals) -> int:
        """Sends `sig` to every process of the run found now; returns how many were found."""
        members = self._members()
        grouped = self._leader is not None  # the action's process group: one atomic signal
        if grouped:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._session, sig)
        for pid, stat in members.items():
            if not (grouped and stat.group == self._session):  # once each: a shell counts TERMs
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        # Signalled processes die as our children (adopted), often after their parent: reap them.
        self._owner.remember({pid: stat.start for pid, stat in members.items() if pid not in self._owner.leaders})
        return len(members)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.kill()
        self.leader_exited()
        self._owner.open_scopes.discard(self)

    def owns(self, stat: ProcStat, environ: frozenset[bytes]) -> bool:
        """Whether an adopted process is of this run: in its session, or started with its
        ATTUNE_EXECUTION_ID in its environment."""
        return (self._session != 0 and stat.session == self._session) or self._marker in environ

    def _members(self) -> dict[int, ProcStat]:
        """Every process of the run found now."""
        found: dict[int, ProcStat] = {}
        if self._leader is not None:
            stat = stat_of(self._leader)
            if stat is not None and stat.session == self._session:  # still the action's process
                found.update(_with_descendants(self._leader, stat))
        for pid, stat in self._owner.adopted():
            if self.owns(stat, environ_of(pid)):
                found.update(_with_descendants(pid, stat))
        return found


def _with_descendants(pid: int, stat: ProcStat) -> dict[int, ProcStat]:
    found = {pid: stat}
    for child in descendants(pid):
        child_stat = stat_of(child)
        if child_stat is not None:
            found[child] = child_stat
    return found


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl({option}): {os.strerror(errno)}")


def _is_subreaper() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    flag = ctypes.c_int(0)
    if libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) != 0:
        return False
    return bool(flag.value)
