"""Which containment a worker uses (`ATTUNE_WORKER_CONTAINMENT`; docs/operations.md, Containment).

- `cgroup`: a cgroup per run (`_cgroup.CgroupContainment`): the strongest, but each spawn moves
  the worker between cgroups, which costs an RCU grace period after a pause (~15 ms here, blocking
  the worker) unless cgroup2 is mounted with `favordynmods`.
- `subreaper`: runs found in the process tree (`_subreaper`), and, for a worker that can create
  cgroups, the worker and all its actions in one cgroup that a watchdog kills when it dies:
  nothing is moved per spawn.
- `auto` (default): `cgroup` where moves are cheap (`favordynmods`), else `subreaper`.
"""

from __future__ import annotations

import atexit
import logging

from ._cgroup import CgroupContainment, WorkerCgroup, own_cgroup
from ._scope import Containment, ContainmentError, ContainmentUnavailable
from ._subreaper import SubreaperContainment
from ._user import find_setpriv

log = logging.getLogger(__name__)

MODES = ("auto", "cgroup", "subreaper")
_WITHOUT_CGROUP = "if it is killed, what its actions started lives on"
_default: Containment | None = None


def open_containment(mode: str = "auto", *, exclusive: bool = False) -> Containment:
    """The containment `mode` names; a ContainmentError naming the variable when the host cannot
    give it.

    `exclusive`: this process starts child processes only through this containment (a worker):
    a subreaper may then reap every child it did not spawn as an action, and the process moves
    into a cgroup of its own (so not a test process, whose other children would follow it)."""
    wanted = containment_mode(mode)
    if wanted == "cgroup" or (wanted == "auto" and _cheap_cgroup_moves()):
        try:
            return CgroupContainment(WorkerCgroup.open())
        except ContainmentUnavailable as err:
            if wanted == "cgroup":
                raise ContainmentError(f"ATTUNE_WORKER_CONTAINMENT=cgroup, but {err}") from err
            reason = f"no cgroup per run: {err}"
    elif wanted == "auto":
        reason = "no cgroup per run: cgroup2 is mounted without favordynmods, so each spawn would wait"
    else:
        reason = "ATTUNE_WORKER_CONTAINMENT=subreaper"
    cgroup = _worker_cgroup() if exclusive else None
    try:
        return SubreaperContainment(setpriv=find_setpriv(), reason=reason, exclusive=exclusive, cgroup=cgroup)
    except OSError as err:
        if cgroup is not None:
            cgroup.close()
        raise ContainmentError(f"ATTUNE_WORKER_CONTAINMENT={mode!r}: cannot become a subreaper: {err}") from err


def containment_mode(mode: str) -> str:
    """The mode `ATTUNE_WORKER_CONTAINMENT` names; ContainmentError for anything else."""
    wanted = mode.strip().lower() or "auto"
    if wanted not in MODES:
        raise ContainmentError(f"ATTUNE_WORKER_CONTAINMENT={mode!r}: expected one of {', '.join(MODES)}")
    return wanted


def _cheap_cgroup_moves() -> bool:
    try:
        _, options = own_cgroup()
    except ContainmentUnavailable:
        return False
    return "favordynmods" in options


def _worker_cgroup() -> WorkerCgroup | None:
    """This process in a cgroup of its own, or None (logged) when the host does not allow it."""
    try:
        cgroup = WorkerCgroup.open()
    except ContainmentUnavailable as err:
        log.warning("the worker is in no cgroup of its own (%s): %s", err, _WITHOUT_CGROUP)
        return None
    try:
        cgroup.enter()
    except OSError as err:
        cgroup.close()
        log.warning("the worker cannot move into %s (%s): %s", cgroup.root, err, _WITHOUT_CGROUP)
        return None
    return cgroup


def default_containment() -> Containment:
    """The containment of runs started without one (tests, the runtime benchmark): opened on
    first use with `auto`, closed when the process exits."""
    global _default
    if _default is None:
        _default = open_containment("auto")
        atexit.register(_default.close)
        log.debug("runs are contained by %s: %s", _default.kind, _default.description)
    return _default
