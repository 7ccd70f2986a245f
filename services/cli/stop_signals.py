"""The signals that stop `attune up`, turned into one `Stop` exception wherever the main thread is.

A Python signal handler runs in the main thread between two bytecodes. In synchronous code (the
supervision loop's sleep) raising from it is what we want. Inside the event loop it is not: uvloop
runs the handler from its own callback and logs, then drops, whatever the handler raises — a
SIGTERM during the start (`wait_ready`) was lost and `attune up` ran on. So the handler records
the signal and raises only outside a running loop; `until_stopped` wraps the asynchronous phases
and raises `Stop` within a tick of the signal.

Which signals: SIGTERM always; SIGINT (Ctrl-C) and SIGHUP (the terminal closed) unless ignored. A
shell starts a background job (`attune up &`) with SIGINT ignored, `nohup` ignores SIGHUP, and
such a job must not stop on them.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")

_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: How often `until_stopped` looks for a signal received inside the event loop.
_POLL_S = 0.05


class Stop(Exception):
    """A stop signal arrived; the message names it."""


class StopSignals:
    """Installed for the life of `attune up` (`install`, then `restore`)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def install(self) -> None:
        """Catches the stop signals (SIGINT and SIGHUP only when not ignored)."""
        for sig in _SIGNALS:
            if sig != signal.SIGTERM and signal.getsignal(sig) == signal.SIG_IGN:
                continue
            self._previous[sig] = signal.signal(sig, self._handle)

    def ignore(self) -> None:
        """Ignores them from now on: while stopping, a second Ctrl-C must not cut the stop short
        (which ends with SIGKILL anyway)."""
        for sig in self._previous:
            signal.signal(sig, signal.SIG_IGN)

    def restore(self) -> None:
        """Puts back the handlers `install` replaced."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def check(self) -> None:
        """Raises Stop if a stop signal has arrived."""
        if self.received is not None:
            raise Stop(self.received)

    async def until_stopped(self, work: Coroutine[Any, Any, T]) -> T:
        """Runs `work`; cancels it and raises Stop when a stop signal arrives meanwhile."""
        task = asyncio.ensure_future(work)
        try:
            while not task.done():
                self.check()
                await asyncio.wait({task}, timeout=_POLL_S)
            return task.result()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(signum).name
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise Stop(self.received) from None  # synchronous code: stop right here
