"""The process tree as /proc shows it: a process's children, its stat line, its environment.

Pids are reused, so a process is known by its pid *and* its start time (`ProcStat.start`): a
pid whose start time changed is another process.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat that containment reads."""

    state: str  # R, S, D, Z (zombie), ...
    ppid: int
    group: int  # process group id
    session: int
    start: int  # clock ticks after boot


def stat_of(pid: int) -> ProcStat | None:
    """The process's stat, or None when it does not exist (any more)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:  # FileNotFoundError, or ESRCH while it vanishes
        return None
    # The command name (field 2) is in parentheses and may hold anything, ')' included.
    fields = text.rsplit(")", 1)[1].split()
    return ProcStat(
        state=fields[0], ppid=int(fields[1]), group=int(fields[2]), session=int(fields[3]), start=int(fields[19])
    )


def children_of(pid: int) -> list[int]:
    """The pids of the process's children, whichever of its threads they belong to."""
    found: list[int] = []
    try:
        threads = os.listdir(_PROC / str(pid) / "task")
    except OSError:
        return found
    for tid in threads:
        with contextlib.suppress(OSError):
            found.extend(int(child) for child in (_PROC / str(pid) / "task" / tid / "children").read_text().split())
    return found


def descendants(pid: int) -> list[int]:
    """The process's children, their children and so on (not the process itself)."""
    found: list[int] = []
    pending = children_of(pid)
    seen = {pid}
    while pending:
        child = pending.pop()
        if child in seen:
            continue
        seen.add(child)
        found.append(child)
        pending.extend(children_of(child))
    return found


def environ_of(pid: int) -> frozenset[bytes]:
    """The process's environment as it was when it started (`NAME=value` entries); empty when
    it cannot be read (gone, a zombie, another user's)."""
    try:
        return frozenset((_PROC / str(pid) / "environ").read_bytes().split(b"\0"))
    except OSError:
        return frozenset()
