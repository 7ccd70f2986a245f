"""attune.background: a named loop starts, reports its crash by name, drains or is cancelled on stop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from attune.background import BackgroundTask


class Ticker:
    """A loop that counts its ticks until told to stop, then finishes its last tick."""

    def __init__(self) -> None:
        self.ticks = 0
        self.stopping = False
        self.cancelled = False
        self.wake = asyncio.Event()

    async def run(self) -> None:
        try:
            while not self.stopping:
                await self.wake.wait()
                self.wake.clear()
                self.ticks += 1
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def test_start_runs_the_coroutine_as_a_task_of_that_name() -> None:
    ticker = Ticker()
    loop = BackgroundTask("ticker", ticker.run)
    assert not loop.started
    loop.start()
    assert loop.started
    assert "ticker" in {task.get_name() for task in asyncio.all_tasks()}
    ticker.wake.set()
    await asyncio.sleep(0.01)
    assert ticker.ticks == 1
    with pytest.raises(RuntimeError, match="'ticker' is already started"):
        loop.start()
    await loop.stop()


async def test_stop_cancels_and_waits_and_a_second_stop_does_nothing() -> None:
    ticker = Ticker()
    loop = BackgroundTask("ticker", ticker.run)
    loop.start()
    await asyncio.sleep(0)
    await loop.stop()
    assert ticker.cancelled and not loop.started
    await loop.stop()  # idempotent
    assert "ticker" not in {task.get_name() for task in asyncio.all_tasks()}


async def test_stop_and_join_before_start_return_at_once() -> None:
    loop = BackgroundTask("never-started", Ticker().run)
    await asyncio.wait_for(loop.stop(), timeout=1)
    assert await asyncio.wait_for(loop.join(), timeout=1)
    loop.cancel()
    assert not loop.started


async def test_a_crash_is_logged_with_the_loop_name_and_stop_does_not_raise_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def crash() -> None:
        raise ValueError("broken on purpose")

    loop = BackgroundTask("crasher", crash)
    with caplog.at_level(logging.ERROR, logger="attune.background"):
        loop.start()
        await asyncio.sleep(0.01)
    [record] = [r for r in caplog.records if r.name == "attune.background"]
    assert "'crasher' crashed" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    await loop.stop()


async def test_stop_with_grace_lets_the_loop_drain_before_cancelling() -> None:
    ticker = Ticker()
    loop = BackgroundTask("ticker", ticker.run)
    loop.start()
    await asyncio.sleep(0)
    ticker.stopping = True
    ticker.wake.set()  # the owner's flag and wake-up: the last tick runs, then the loop returns
    await loop.stop(grace=None)
    assert ticker.ticks == 1 and not ticker.cancelled


async def test_stop_with_grace_cancels_a_loop_that_does_not_return_in_time() -> None:
    ticker = Ticker()
    loop = BackgroundTask("ticker", ticker.run)
    loop.start()
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    await loop.stop(grace=0.05)  # never woken: it would wait forever
    assert ticker.cancelled
    assert asyncio.get_running_loop().time() - started >= 0.05


async def test_stop_cancelled_while_draining_still_cancels_the_loop() -> None:
    ticker = Ticker()
    loop = BackgroundTask("ticker", ticker.run)
    loop.start()
    await asyncio.sleep(0)
    stopping = asyncio.create_task(loop.stop(grace=None))
    await asyncio.sleep(0.01)
    stopping.cancel()
    await asyncio.gather(stopping, return_exceptions=True)
    await asyncio.sleep(0)
    assert ticker.cancelled


async def test_join_waits_without_cancelling() -> None:
    ticker = Ticker()
    loop = BackgroundTask("ticker", ticker.run)
    loop.start()
    await asyncio.sleep(0)
    assert not await loop.join(0.02)  # still running, and left running
    ticker.wake.set()
    await asyncio.sleep(0.01)
    assert ticker.ticks == 1 and not ticker.cancelled
    ticker.stopping = True
    ticker.wake.set()
    assert await loop.join(1)
    await loop.stop()
    assert not ticker.cancelled


async def test_cancel_does_not_wait_and_a_later_stop_awaits_the_end() -> None:
    ticker = Ticker()
    loop = BackgroundTask("ticker", ticker.run)
    loop.start()
    await asyncio.sleep(0)
    loop.cancel()
    assert not ticker.cancelled  # only asked
    await loop.stop()
    assert ticker.cancelled
