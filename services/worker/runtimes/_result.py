"""The §4.13 result of a run: parsed stdout merged with stdout, stderr, exit_code, duration_ms."""

from __future__ import annotations

import json
import signal
from typing import Any

_LAST_LINE_MAX = 500


def action_result(stdout: str, stderr: str, exit_code: int | None, duration_ms: int) -> dict[str, Any]:
    """A JSON-object stdout contributes its keys at the top level; any other JSON goes under
    `data`; plain text only as `stdout`. The platform's own keys win over the action's."""
    result: dict[str, Any] = {}
    text = stdout.strip()
    if text:
        try:
            parsed = json.loads(text)
        except ValueError:
            pass
        else:
            if isinstance(parsed, dict):
                result.update(parsed)
            else:
                result["data"] = parsed
    result["stdout"] = stdout
    result["stderr"] = stderr
    result["exit_code"] = exit_code
    result["duration_ms"] = duration_ms
    return result


def exit_error(exit_code: int | None, stderr: str) -> str:
    """`exit code 3: <last stderr line>`, or the signal that killed the process."""
    if exit_code is not None and exit_code < 0:
        try:
            head = f"killed by signal {signal.Signals(-exit_code).name}"
        except ValueError:
            head = f"killed by signal {-exit_code}"
    else:
        head = f"exit code {exit_code}"
    last = _last_line(stderr)
    return f"{head}: {last}" if last else head


def _last_line(text: str) -> str:
    for line in reversed(text[-8192:].splitlines()):  # the tail is enough, even of 1 MB
        line = line.strip()
        if line and not line.startswith("[... truncated "):
            return line if len(line) <= _LAST_LINE_MAX else line[:_LAST_LINE_MAX] + "…"
    return ""
