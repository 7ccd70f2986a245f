"""``attune bench cli``: how soon the ``attune`` command answers against running services.

Each command runs as a subprocess of the installed ``attune`` script, as a user runs it, ``runs``
times in turn; a figure is the time from spawning it to its first byte of output (stdout, or
stderr for a command that prints there first), and to its exit. What it measures is mostly start-up:
the interpreter, the imports of the one command given (main.py imports only that command's
module) and one connection to the scheduler. A bare ``python -c pass`` is measured beside them:
the floor no command can go under.
"""

from __future__ import annotations

import os
import selectors
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from attune import eventloop
from attune_services.bench.suite import with_services
from attune_services.cli.launcher import Launcher

#: The goal for the time to first output (README, Benchmarks).
FIRST_OUTPUT_GOAL_MS = 150.0
_TIMEOUT_S = 60.0


def attune_script() -> list[str]:
    """The command that runs the ``attune`` console script of this environment."""
    beside = Path(sys.executable).parent / "attune"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "attune_services.cli"]


def time_command(argv: Sequence[str], env: Mapping[str, str]) -> tuple[float, float]:
    """Milliseconds from spawning ``argv`` to its first byte of output and to its exit; raises
    RuntimeError when it fails."""
    began = time.perf_counter()
    proc = subprocess.Popen(argv, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first: float | None = None
    out = bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        selector.register(proc.stderr, selectors.EVENT_READ)
        while selector.get_map():
            events = selector.select(timeout=max(0.0, began + _TIMEOUT_S - time.perf_counter()))
            if not events:
                proc.kill()
                raise RuntimeError(f"{' '.join(argv)} did not end within {_TIMEOUT_S:g} s")
            for key, _ in events:
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                if first is None:
                    first = time.perf_counter()
                if key.fileobj is proc.stderr:
                    out += data
    code = proc.wait()
    ended = time.perf_counter()
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with status {code}: {out.decode(errors='replace').strip()[-500:]}")
    return ((first or ended) - began) * 1000, (ended - began) * 1000


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return round(statistics.median(ordered), 1), round(p95, 1)


def measure_commands(
    commands: Mapping[str, Sequence[str]], env: Mapping[str, str], runs: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    """``<name>_first_output_ms_p50|p95`` and ``<name>_exit_ms_p50`` for each command. The
    commands take turns, run after run, so a change in the machine's load falls on all alike."""
    for argv in commands.values():
        time_command(argv, env)  # once to warm the page cache: every run after it is alike
    firsts: dict[str, list[float]] = {name: [] for name in commands}
    exits: dict[str, list[float]] = {name: [] for name in commands}
    progress(f"{len(commands)} commands, {runs} runs each, in turn")
    for _ in range(runs):
        for name, argv in commands.items():
            first, ended = time_command(argv, env)
            firsts[name].append(first)
            exits[name].append(ended)
    figures: dict[str, Any] = {}
    for name in commands:
        p50, p95 = _percentiles(firsts[name])
        figures[f"{name}_first_output_ms_p50"] = p50
        figures[f"{name}_first_output_ms_p95"] = p95
        figures[f"{name}_exit_ms_p50"] = _percentiles(exits[name])[0]
    return figures


def cli_suite(
    database_url: str, *, runs: int, ready_timeout: float, progress: Callable[[str], None], secure: bool = True
) -> dict[str, Any]:
    """Starts the services, then times ``attune --help``, ``execution list``, ``execution get``
    and ``run`` (without --wait, and with it) against them."""

    def measure(launcher: Launcher) -> dict[str, Any]:
        env = {**os.environ, "ATTUNE_HOME": str(launcher.plan.home), "ATTUNE_ADDRESS": launcher.scheduler_address}
        for name in ("ATTUNE_TOKEN", "ATTUNE_TLS_DIR", "ATTUNE_TLS_CA", "ATTUNE_TLS_CERT", "ATTUNE_TLS_KEY"):
            env.pop(name, None)  # the CLI finds what `attune up` left in ATTUNE_HOME, as a local user's does

        async def one_execution() -> str:
            from attune_services.cli.cmd_run import request_execution

            async with launcher.client() as client:
                execution = await request_execution(client, "core.noop", {})
                return execution.id

        execution_id = eventloop.run(one_execution())
        script = attune_script()
        commands = {
            "cli_python_bare": [sys.executable, "-c", "pass"],
            "cli_help": [*script, "--help"],
            "cli_execution_list": [*script, "execution", "list", "--limit", "20"],
            "cli_execution_get": [*script, "execution", "get", execution_id],
            "cli_run": [*script, "run", "core.noop"],
            "cli_run_wait": [*script, "run", "core.noop", "--wait"],
        }
        return measure_commands(commands, env, runs, progress)

    return with_services(database_url, ready_timeout, measure, progress, secure=secure)
