"""How a run becomes a command line and an environment: interpreters found here, argv, env."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Mapping

from ._model import EntryPointMissing, RunRequest, RuntimeNotAvailable

NOOP = "noop"
NOOP_INTERPRETER = "builtin"

# Only these survive from the worker's own environment: the action must not see the worker's
# configuration (database URLs, TLS keys, OTEL settings).
_INHERITED_ENV = ("PATH", "HOME", "LANG")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_NOT_IN_ENV_NAME = re.compile(r"[^A-Z0-9_]")
# The kernel refuses exec (E2BIG) for one variable over 128 KiB or an environment over ~2 MiB;
# a value too big for these caps is left out of the environment (stdin still carries it).
_PARAM_ENV_VALUE_MAX = 32 * 1024
_PARAM_ENV_TOTAL_MAX = 512 * 1024


def detect_runtimes() -> dict[str, str]:
    """Runtime name -> interpreter path, for the runtimes whose interpreter exists on this host.

    `shell` prefers bash and falls back to sh; `python` is the worker's own interpreter;
    `nodejs` appears only when `node` is installed; `noop` needs nothing and is always present.
    """
    found: dict[str, str] = {}
    shell = shutil.which("bash") or shutil.which("sh")
    if shell:
        found["shell"] = shell
    if sys.executable:
        found["python"] = sys.executable
    node = shutil.which("node") or shutil.which("nodejs")
    if node:
        found["nodejs"] = node
    found[NOOP] = NOOP_INTERPRETER
    return found


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
    return [interpreter, os.fspath(script)]


def environment_for(request: RunRequest) -> dict[str, str]:
    """A minimal inherited environment plus the ATTUNE_* variables naming the execution.

    Non-secret parameters are also offered as ATTUNE_PARAM_<NAME> for shell scripts (strings
    as-is, other values JSON-encoded); secret ones only ever travel on stdin.
    """
    env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
    env.setdefault("PATH", _DEFAULT_PATH)
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
