"""A shorter GIL switch interval for processes that use grpc.aio.

grpc.aio receives every completion (a message, a finished call) on its own poller thread, which
needs the GIL for a moment to hand the event to the event loop. While the loop's thread runs
Python code the poller waits for CPython's switch interval (5 ms by default) before it can force
the handover, so each message waits up to 5 ms behind whatever the loop is doing. Measured here
on the scheduler (sequential GetExecution on PostgreSQL): 8.2 ms round trip at 5 ms, 3.5 ms at
0.5 ms; going lower bought nothing measurable. Two threads want the GIL, so the extra handovers
cost next to nothing.
"""

from __future__ import annotations

import sys

GRPC_SWITCH_INTERVAL_S = 0.0005


def shorten_gil_switch_interval(seconds: float = GRPC_SWITCH_INTERVAL_S) -> None:
    """Lets grpc.aio's poller thread take the GIL within ``seconds`` (call once, at start)."""
    sys.setswitchinterval(seconds)
