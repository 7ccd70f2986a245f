"""How a run becomes a command line and an environment: interpreters found here, argv, env."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from ._model import ActionLaunchError, EntryPointMissing, RunRequest, RuntimeNotAvailable
from ._user import ActionUser

log = logging.getLogger(__name__)

NOOP = "noop"
NOOP_INTERPRETER = "builtin"

# Only these survive from the worker's own environment: the action must not see the worker's
# configuration (database URLs, TLS paths, tokens, OTEL settings). HOME is the run's own.
_INHERITED_ENV = ("PATH", "LANG")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_NOT_IN_ENV_NAME = re.compile(r"[^A-Z0-9_]")
# The kernel refuses exec (E2BIG) for one variable over 128 KiB or an environment over ~2 MiB;
# a value too big for these caps is left out of the environment (stdin still carries it).
_PARAM_ENV_VALUE_MAX = 32 * 1024
_PARAM_ENV_TOTAL_MAX = 512 * 1024


def detect_runtimes(user: ActionUser | None = None) -> dict[str, str]:
    """Runtime name -> interpreter path, for the runtimes whose interpreter exists on this host
    (and, given the user actions run as, that this user can execute).

    `shell` prefers bash and falls back to sh; `python` is the worker's own interpreter, or, when
    the action user cannot execute it (a virtualenv under root's home), the first `python3` on
    PATH that it can; `nodejs` appears only when `node` is installed; `noop` needs nothing and is
    always present.
    """
    candidates = {
        "shell": _on_path("bash", "sh"),
        "python": [sys.executable, *_on_path("python3")],
        "nodejs": _on_path("node", "nodejs"),
    }
    found: dict[str, str] = {}
    for runtime, paths in candidates.items():
        usable = [p for p in paths if p and (user is None or user.can_reach(p, execute=True))]
        if usable:
            found[runtime] = usable[0]
        elif user is not None and any(paths):
            log.warning(
                "runtime %s not offered: user %s (uid %d) cannot execute %s",
                runtime,
                user.name,
                user.uid,
                ", ".join(p for p in paths if p),
            )
    if user is not None and sys.executable and found.get("python") not in (None, sys.executable):
        log.warning(
            "python actions run %s: user %s (uid %d) cannot execute the worker's interpreter %s",
            found["python"],
            user.name,
            user.uid,
            sys.executable,
        )
    found[NOOP] = NOOP_INTERPRETER
    return found


def _on_path(*names: str) -> list[str]:
    """Every executable of these names on PATH, in the order of the names, then of PATH (the
    first that the action user can execute is taken, so the later ones matter too)."""
    folders = os.environ.get("PATH", _DEFAULT_PATH).split(os.pathsep)
    found = [shutil.which(name, path=folder) for name in names for folder in folders if folder]
    return list(dict.fromkeys(path for path in found if path))


def command_for(request: RunRequest, interpreters: Mapping[str, str]) -> list[str]:
    """`<interpreter> <script>` — never any parameter on argv, where `ps` would show it."""
    interpreter = interpreters.get(request.runtime)
    if interpreter is None or (request.runtime != NOOP and interpreter == NOOP_INTERPRETER):
        raise RuntimeNotAvailable(action_ref=request.action_ref, runtime=request.runtime, available=interpreters)
    if request.runtime == NOOP:
        return []
    script = request.entry_point
    if script is None or not os.path.isfile(script):
        raise EntryPointMissing(action_ref=request.action_ref, path=script)
    if not os.path.isdir(request.working_dir):
        raise EntryPointMissing(action_ref=request.action_ref, path=request.working_dir, what="working directory")
    if not os.access(interpreter, os.X_OK):  # checked here: behind setpriv, exec fails in the child
        raise ActionLaunchError(f'action "{request.action_ref}": cannot start {interpreter} {script}: not executable')
    return [interpreter, os.fspath(script)]


def environment_for(request: RunRequest, home: Path) -> dict[str, str]:
    """Built from scratch: PATH and LANG, HOME (the run's own scratch folder) and the ATTUNE_*
    variables naming the execution.

    Non-secret parameters are also offered as ATTUNE_PARAM_<NAME> for shell scripts (strings
    as-is, other values JSON-encoded); secret ones only ever travel on stdin.
    """
    env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
    env.setdefault("PATH", _DEFAULT_PATH)
    env["HOME"] = os.fspath(home)
    env["ATTUNE_EXECUTION_ID"] = request.execution_id
    env["ATTUNE_ACTION_REF"] = request.action_ref
    env["ATTUNE_PACK_DIR"] = os.fspath(request.working_dir.parent)
    secrets = request.secret_names
    budget = _PARAM_ENV_TOTAL_MAX
    for name, value in request.parameters.items():
        if name in secrets:
            continue
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        if len(text) > _PARAM_ENV_VALUE_MAX or len(text) > budget or "\0" in text:
            continue  # the environment cannot carry it; stdin does
        budget -= len(text)
        env["ATTUNE_PARAM_" + _NOT_IN_ENV_NAME.sub("_", name.upper())] = text
    env.update(request.extra_env)
    return env
