"""cgroup v2 containment, where the worker may create cgroups (root, or a delegated subtree) and
the kernel has `cgroup.kill` (Linux 5.14+). A process cannot leave its cgroup without write
access to cgroup files, which an action has not: whatever it forks, setsid or double-forked,
stays, and one write to `cgroup.kill` ends them all.

`WorkerCgroup`: `attune-worker-<pid>/` in the worker's own cgroup, and its watchdog — one `sh`
per worker, in a session of its own, blocked reading a pipe only the worker holds. When the
worker exits, however (SIGKILL too), the kernel closes the pipe: the watchdog writes the
`cgroup.kill` of the whole folder and removes it.

`CgroupContainment`: a cgroup per run, `attune-worker-<pid>/run-<n>/`. A child starts in its
parent's cgroup, so the worker moves itself into the run's cgroup for the spawn and back. Each
move write-locks the kernel's cgroup_threadgroup_rwsem, which costs an RCU grace period when no
move happened lately (measured here: ~15 ms for the first spawn after a pause, blocking the
worker, ~0.06 ms otherwise) unless cgroup2 is mounted with `favordynmods`: see `_contain` for
when it is used. Nothing else may be spawned meanwhile: a lock per event loop keeps spawns apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

from ._scope import Containment, ContainmentUnavailable, RunScope

log = logging.getLogger(__name__)

_WORKER_FOLDER = re.compile(r"attune-worker-(\d+)")
# $1: the worker's cgroup folder. Stdin: a pipe only the worker writes to; EOF = it has exited.
_WATCHDOG = """
while read -r _; do :; done
n=0
while [ -d "$1" ] && [ "$n" -lt 200 ]; do
  echo 1 > "$1/cgroup.kill"
  for run in "$1"/*/; do rmdir "$run" 2>/dev/null; done
  rmdir "$1" 2>/dev/null && exit 0
  n=$((n + 1))
  sleep 0.05
done
"""
_REMOVE_RETRY_S = 0.02
_REMOVE_TRIES = 100


class WorkerCgroup:
    """`attune-worker-<pid>/` and its watchdog: whatever is in it dies once the worker has."""

    def __init__(self, *, home: Path, root: Path, watchdog: subprocess.Popen[bytes], lifeline: int) -> None:
        self.home = home  # the worker's own cgroup
        self.root = root
        self._watchdog = watchdog
        self._lifeline = lifeline  # the write end of the watchdog's pipe
        self.entered = False  # whether this process lives in `root` (`enter`)
        self._closed = False

    @classmethod
    def open(cls) -> WorkerCgroup:
        """Creates the folder and starts its watchdog; ContainmentUnavailable says what is
        missing (no cgroup v2, no write access, no cgroup.kill)."""
        home, _ = own_cgroup()
        if not os.access(home / "cgroup.procs", os.W_OK):
            raise ContainmentUnavailable(f"cannot write {home / 'cgroup.procs'} (no cgroup delegated to this user)")
        _remove_abandoned(home)
        root = home / f"attune-worker-{os.getpid()}"
        try:
            if root.exists():  # left by an earlier process that had our pid
                _remove_tree(root, within=1.0)
            root.mkdir()
        except OSError as err:
            raise ContainmentUnavailable(f"cannot create {root}: {err.strerror or err}") from err
        try:
            if not (root / "cgroup.kill").exists():
                raise ContainmentUnavailable(f"{root} has no cgroup.kill (Linux older than 5.14)")
            probe = root / "probe"
            probe.mkdir()
            try:
                _move_self(probe)
                _move_self(home)
            finally:
                probe.rmdir()
            watchdog, lifeline = _start_watchdog(root)  # while we are in `home`: it stays there
        except OSError as err:
            _remove_tree(root, within=1.0)
            raise ContainmentUnavailable(f"cannot move a process between cgroups under {home}: {err}") from err
        except ContainmentUnavailable:
            _remove_tree(root, within=1.0)
            raise
        return cls(home=home, root=root, watchdog=watchdog, lifeline=lifeline)

    @property
    def watchdog_pid(self) -> int:
        """The watchdog is a child of this process that no run owns."""
        return self._watchdog.pid

    def enter(self) -> None:
        """Moves this process into the folder for good: everything it starts from now on is in it."""
        _move_self(self.root)
        self.entered = True

    def close(self) -> None:
        """Kills whatever is left in the folder, removes it and lets the watchdog go."""
        if self._closed:
            return
        self._closed = True
        if self.entered:
            _move_self(self.home)
            self.entered = False
        _remove_tree(self.root, within=2.0)
        os.close(self._lifeline)  # the watchdog wakes, finds nothing left and exits
        try:
            self._watchdog.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            log.warning("the cgroup watchdog %d did not exit", self._watchdog.pid)


class CgroupContainment(Containment):
    """The runs of one worker, each in a cgroup of its own under the worker's folder."""

    kind = "cgroup"

    def __init__(self, cgroup: WorkerCgroup) -> None:
        self.cgroup = cgroup
        self.description = f"a cgroup per run under {cgroup.root}"
        self._numbers = itertools.count(1)
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
        self.inside: Path | None = None  # the run cgroup this process is in, during a spawn

    def argv_prefix(self) -> list[str]:
        return []  # the watchdog ends the runs when the worker dies; no exec spent on it

    def scope(self, execution_id: str) -> RunScope:
        path = self.cgroup.root / f"run-{next(self._numbers)}"
        path.mkdir()
        return CgroupScope(self, path)

    def spawn_lock(self) -> asyncio.Lock:
        """The lock that keeps spawns apart on the running loop."""
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    def close(self) -> None:
        self.cgroup.close()


class CgroupScope(RunScope):
    """One run's cgroup."""

    def __init__(self, owner: CgroupContainment, path: Path) -> None:
        self._owner = owner
        self.path = path
        self._closed = False

    @contextlib.asynccontextmanager
    async def spawning(self) -> AsyncIterator[None]:
        owner = self._owner
        async with owner.spawn_lock():
            _move_self(self.path)
            owner.inside = self.path
            try:
                yield
            finally:
                _move_self(owner.cgroup.home)
                owner.inside = None

    def started(self, pid: int) -> None:
        pass  # the cgroup knows its processes

    def leader_exited(self) -> None:
        pass

    def signal(self, sig: signal.Signals) -> None:
        for pid in _members(self.path):
            if pid != os.getpid():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)

    def kill(self) -> None:
        if self._owner.inside == self.path:  # never kill the worker: it failed to move out
            log.error("not killing %s: this worker is still in it", self.path)
            return
        try:
            (self.path / "cgroup.kill").write_text("1")
        except FileNotFoundError:
            pass  # removed already
        except OSError as err:
            log.error("cannot kill the processes of %s: %s", self.path, err)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.kill()
        _remove_when_empty(self.path, _REMOVE_TRIES)


def own_cgroup() -> tuple[Path, frozenset[str]]:
    """Where this process's cgroup v2 is, and the options cgroup2 is mounted with;
    ContainmentUnavailable when it is in none."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError as err:
        raise ContainmentUnavailable(f"cannot read /proc: {err}") from err
    own = next((line[3:] for line in lines if line.startswith("0::")), None)
    if own is None:
        raise ContainmentUnavailable("this process is in no cgroup v2 hierarchy (cgroup v1 only)")
    for mount in mounts:
        left, _, right = mount.partition(" - ")
        fields, filesystem = left.split(), right.split()
        if len(filesystem) < 3 or filesystem[0] != "cgroup2" or len(fields) < 5:
            continue
        mounted, mountpoint = _unescape(fields[3]), _unescape(fields[4])
        if own == mounted or own.startswith(mounted.rstrip("/") + "/"):
            options = frozenset(filesystem[2].split(","))
            return Path(mountpoint) / own[len(mounted) :].lstrip("/"), options
    raise ContainmentUnavailable(f"the cgroup v2 hierarchy of this process ({own}) is not mounted")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _move_self(cgroup: Path) -> None:
    (cgroup / "cgroup.procs").write_text("0")  # "0": the writing process


def _members(cgroup: Path) -> list[int]:
    try:
        return [int(pid) for pid in (cgroup / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _start_watchdog(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    read_end, write_end = os.pipe()  # both close-on-exec: no action inherits the write end
    try:
        watchdog = subprocess.Popen(
            [shutil.which("sh") or "/bin/sh", "-c", _WATCHDOG, "attune-worker-watchdog", os.fspath(root)],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
            start_new_session=True,  # a signal to the worker's process group does not reach it
        )
    except OSError:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return watchdog, write_end


def _remove_tree(root: Path, *, within: float) -> None:
    """Kills every process in `root`'s subtree and removes it, trying for `within` seconds."""
    deadline = time.monotonic() + within
    while root.exists():
        with contextlib.suppress(OSError):
            (root / "cgroup.kill").write_text("1")
        for child in _subfolders(root):
            with contextlib.suppress(OSError):
                child.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()
        if not root.exists() or time.monotonic() > deadline:
            break
        time.sleep(_REMOVE_RETRY_S)
    if root.exists():
        log.warning("could not remove %s: processes are still in it", root)


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [entry for entry in folder.iterdir() if entry.is_dir()]
    except OSError:
        return []


def _remove_abandoned(home: Path) -> None:
    """Removes the subtrees of workers that died with their watchdog (both killed at once)."""
    for folder in _subfolders(home):
        match = _WORKER_FOLDER.fullmatch(folder.name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            log.warning("removing %s, left by a worker that is gone", folder)
            _remove_tree(folder, within=1.0)


def _remove_when_empty(path: Path, tries: int) -> None:
    """rmdir once the run's killed processes have left (usually at once); retried on the loop."""
    try:
        path.rmdir()
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # left for the containment's close (or the watchdog)
    if tries > 0:
        loop.call_later(_REMOVE_RETRY_S, _remove_when_empty, path, tries - 1)
