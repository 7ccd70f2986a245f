"""`attune bench cli`'s timing of a command (services/bench/cli_startup.py), on real subprocesses;
the suite itself runs against started services and is measured, not tested, here."""

from __future__ import annotations

import os
import sys

import pytest

from attune_services.bench.cli_startup import measure_commands, time_command
from attune_services.bench.report import figures_table


def test_first_output_comes_before_the_exit_of_a_command_that_waits_after_printing() -> None:
    argv = [sys.executable, "-c", "import sys, time; print('x', flush=True); time.sleep(0.3)"]
    first, ended = time_command(argv, os.environ)
    assert first > 0 and first + 250 < ended


def test_a_failing_command_is_an_error_naming_it() -> None:
    argv = [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(RuntimeError, match="exited with status 3: boom"):
        time_command(argv, os.environ)


def test_each_command_gets_p50_p95_and_exit_figures_judged_against_the_goal() -> None:
    figures = measure_commands({"cli_probe": [sys.executable, "-c", "print(1)"]}, os.environ, 3, lambda _: None)
    assert set(figures) == {"cli_probe_first_output_ms_p50", "cli_probe_first_output_ms_p95", "cli_probe_exit_ms_p50"}
    assert figures["cli_probe_first_output_ms_p50"] <= figures["cli_probe_first_output_ms_p95"]
    assert "<= 150 ms" in figures_table(figures)
