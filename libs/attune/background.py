"""One named background loop: started once, stopped once, its crash reported by name.

Services own several long-running coroutines (a dispatch loop, a stream that reconnects, a
group commit). Each is held by a `BackgroundTask`, which covers every way they end:

- `stop()` cancels at once and waits for the coroutine to finish (the default);
- `stop(grace=s)` first lets it return by itself for up to `s` seconds (`None`: no limit) — the
  owner sets its own stop flag and wakes the loop before calling it, so queued work drains;
- `join(timeout)` only waits for it to return by itself, leaving it running after a timeout;
- `cancel()` asks it to end without waiting (from synchronous code); a later `stop()` awaits it.

A coroutine that raises is logged with its name as soon as it ends (nobody may ever await it),
and `stop()` does not raise that error again: the owner's shutdown goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTask:
    """Runs `run()` as an asyncio task named `name`, between `start()` and `stop()`."""

    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        """True from `start()` until `stop()` returns (also once the coroutine has ended by itself)."""
        return self._task is not None

    def start(self) -> None:
        """Starts the coroutine; raises RuntimeError when this one is already started."""
        if self._task is not None:
            raise RuntimeError(f"background task {self.name!r} is already started")
        self._task = asyncio.create_task(self._run(), name=self.name)
        self._task.add_done_callback(self._report_crash)

    def cancel(self) -> None:
        """Asks the coroutine to end, without waiting for it (a no-op before `start()`)."""
        if self._task is not None:
            self._task.cancel()

    async def join(self, timeout: float | None = None) -> bool:
        """Waits up to `timeout` seconds (None: no limit) for the coroutine to return by itself,
        never cancelling it; True when it has ended (or was never started)."""
        task = self._task
        if task is None:
            return True
        done, _ = await asyncio.wait({task}, timeout=timeout)
        return bool(done)

    async def stop(self, *, grace: float | None = 0.0) -> None:
        """Ends the coroutine: lets it return by itself for up to `grace` seconds (None: no limit;
        0: not at all), then cancels it and waits until it has finished. Idempotent, and a no-op
        before `start()`."""
        task = self._task
        if task is None:
            return
        try:
            if grace is None or grace > 0:
                await asyncio.wait({task}, timeout=grace)
        finally:
            # Also when our caller is cancelled while waiting: the loop must not outlive its stop.
            task.cancel()
        await asyncio.wait({task})
        if self._task is task:
            self._task = None

    def _report_crash(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()  # also marks it retrieved: asyncio logs no second, nameless report
        if error is not None:
            log.error("background task %r crashed", self.name, exc_info=error)
