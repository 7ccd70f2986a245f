"""Who an action runs as: an unprivileged user when the worker is root, else the worker's own user.

Run as root, an action could read everything the worker can: its environment in
/proc/<worker pid>/environ, its TLS key, its ATTUNE_HOME. So a root worker runs each action as
`ATTUNE_ACTION_USER` (default `nobody`), with no supplementary groups and a scratch HOME of its
own. A worker that is not root cannot switch users; its actions run as itself (weaker: see
docs/operations.md, What an action can see).

The switch is made by `setpriv` (util-linux) in the child, so the worker keeps spawning with vfork:
asking Popen for `user=`/`group=` makes CPython fork the whole worker instead, measured here at
+1.5 ms of the worker's own time per spawn (0.34 ms today), while setpriv costs the action ~1 ms
of wall time and the worker nothing. Without setpriv on the host, Popen's arguments are used.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attune.config import ConfigError

_SETPRIV_CANDIDATES = ("/usr/bin/setpriv", "/bin/setpriv")


class ActionUserError(ConfigError):
    """`ATTUNE_ACTION_USER` names no usable user."""


@dataclass(frozen=True, kw_only=True)
class ActionUser:
    """The unprivileged user actions run as (only ever set when the worker is root)."""

    name: str
    uid: int
    gid: int
    setpriv: str | None  # the setpriv binary, or None: Popen switches the user (a fork)

    def argv_prefix(self) -> list[str]:
        """Put before the action's argv: switch to this user, no supplementary groups, and die
        with the worker (setpriv sets PDEATHSIG after the switch, which would clear it)."""
        if self.setpriv is None:
            return []
        dies_with_us = ["--pdeathsig=KILL"] if setpriv_has_pdeathsig(self.setpriv) else []
        return [self.setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", *dies_with_us, "--"]

    def popen_options(self) -> dict[str, Any]:
        """Extra keyword arguments of the spawn: empty when setpriv does the switch."""
        if self.setpriv is not None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def can_reach(self, path: Path | str, *, execute: bool = False) -> bool:
        """Whether this user can reach `path` (search a folder; read a file, or execute it with
        `execute`), judged by the mode bits of the file and of every folder on the way (through
        symlinks). ACLs and mount options are not consulted: this decides where to look and what
        to warn about, the kernel still guards."""
        given = Path(os.path.abspath(path))
        real = Path(os.path.realpath(given))
        try:
            for folder in {*given.parents, *real.parents, *([real] if real.is_dir() else [])}:
                if not self._allows(folder.stat(), stat.S_IXUSR):
                    return False
            if real.is_dir():
                return True  # a folder needs searching only: the paths in it are known
            return self._allows(real.stat(), stat.S_IXUSR if execute else stat.S_IRUSR)
        except OSError:
            return False

    def _allows(self, info: os.stat_result, owner_bit: int) -> bool:
        if info.st_uid == self.uid:
            return bool(info.st_mode & owner_bit)
        if info.st_gid == self.gid:
            return bool(info.st_mode & (owner_bit >> 3))
        return bool(info.st_mode & (owner_bit >> 6))


def action_user(name: str) -> ActionUser | None:
    """The user actions run as: None when this process is not root (nothing to drop), else
    `name` (a user name or a numeric uid) resolved on this host.

    Raises ActionUserError when the user does not exist or is root."""
    if os.geteuid() != 0:
        return None
    wanted = name.strip()
    try:
        entry = pwd.getpwuid(int(wanted)) if wanted.isdigit() else pwd.getpwnam(wanted)
        uid, gid, label = entry.pw_uid, entry.pw_gid, entry.pw_name
    except KeyError:
        if not wanted.isdigit():
            raise ActionUserError(
                f"ATTUNE_ACTION_USER={name!r}: no such user on this host; the worker runs as root, so it runs "
                "actions as this unprivileged user: create it, or name another (a user name or a numeric uid)"
            ) from None
        uid = gid = int(wanted)  # a uid without a passwd entry (common in containers): its own group
        label = wanted
    if uid == 0:
        raise ActionUserError(
            f"ATTUNE_ACTION_USER={name!r} is root (uid 0): actions would reach the worker's credentials; "
            "name an unprivileged user"
        )
    return ActionUser(name=label, uid=uid, gid=gid, setpriv=find_setpriv())


def find_setpriv() -> str | None:
    """The util-linux `setpriv` binary, or None when the host has none."""
    return next((p for p in _SETPRIV_CANDIDATES if os.access(p, os.X_OK)), None) or shutil.which("setpriv")


@functools.cache
def setpriv_has_pdeathsig(setpriv: str) -> bool:
    """Whether this setpriv knows `--pdeathsig` (util-linux 2.33 and later); asked once."""
    try:
        shown = subprocess.run([setpriv, "--help"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return "--pdeathsig" in shown.stdout


def scratch_home(user: ActionUser | None) -> Path:
    """A fresh, empty HOME for one run (mode 0700, owned by the action's user)."""
    home = Path(tempfile.mkdtemp(prefix="attune-home-"))
    if user is not None:
        os.chown(home, user.uid, user.gid)
    return home


def remove_home(home: Path) -> None:
    """Removes a run's HOME and whatever the action left in it. shutil.rmtree does not follow
    symlinks the action may have planted there (it works on descriptors on Linux)."""
    shutil.rmtree(home, ignore_errors=True)
