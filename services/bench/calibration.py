"""How fast this machine runs Python right now, printed beside every benchmark's figures.

The project's machine is shared: its speed has been seen to swing by a factor of about three
between hours (the engine's 10,000-task chain took 0.15 s in one hour and 0.41 s in another, with
no code change). Every end-to-end figure is CPU-bound on two cores and swings with it. A reader
comparing two runs needs to know which phase each ran in, so each suite times one fixed
pure-Python loop before and after it and reports the slower of the two medians as
``machine_loop_ms``: a run with a higher figure ran on a slower machine. It is a coarse marker:
it measures single-threaded Python only, and in one slow hour it read 48–67 ms while the
multi-process end-to-end figures were 2–4× worse than in a fast one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

LOOP_ITERATIONS = 1_000_000
ROUNDS = 5


def _loop() -> float:
    started = time.perf_counter()
    total = 0
    for i in range(LOOP_ITERATIONS):
        total += i
    elapsed = time.perf_counter() - started
    if total != LOOP_ITERATIONS * (LOOP_ITERATIONS - 1) // 2:  # keeps the loop from being dead code
        raise AssertionError("calibration loop miscounted")
    return elapsed


def loop_ms(rounds: int = ROUNDS) -> float:
    """Median milliseconds of ``rounds`` runs of a 1,000,000-iteration summing loop."""
    return round(statistics.median(_loop() for _ in range(rounds)) * 1000, 1)


def calibrated(run: Callable[[], dict[str, Any]], progress: Callable[[str], None]) -> dict[str, Any]:
    """``run()``'s figures plus ``machine_loop_ms``, the slower of the loop timed before and after."""
    before = loop_ms()
    progress(f"machine calibration: a {LOOP_ITERATIONS:,}-step Python loop takes {before} ms")
    figures = run()
    figures["machine_loop_ms"] = max(before, loop_ms())
    return figures
