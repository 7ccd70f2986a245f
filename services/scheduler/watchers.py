"""Waking WatchExecution streams when what they show may have changed (docs/architecture.md, Performance goals).

A watch re-reads its execution from the database whenever it is woken; the database stays the
source of truth. Wakes come from this scheduler's own transitions (scheduled, running,
canceling) and from the completion service's WatchCompleted feed (terminal states, with the
parents whose child lists changed). While the feed is connected a watch also re-reads every
`watch_fallback_interval` (changes made by other replicas); while it is not, every
`poll_interval`.

The feed is subscribed only while someone watches (and for FEED_LINGER_S after the last watch
ended, so that a client following one execution after another keeps it): unwatched, every
finished execution would cost a message on each side for nobody. On a 200-step chain nobody
watched, dropping it made the step ~8 % faster (medians of six runs each). A first watch
subscribes and polls every `poll_interval` until the feed is connected; on connecting, every
watch re-reads, so nothing that finished meanwhile is missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import grpc

from attune import metrics
from attune.background import BackgroundTask
from attune.config import Settings
from attune.grpcutil.channel import open_channel
from attune.internal.completion.v1 import completion_pb2, completion_pb2_grpc

log = logging.getLogger(__name__)

#: Seconds the feed stays subscribed after the last watch ended.
FEED_LINGER_S = 30.0


class ExecutionWatchers:
    """Which watches show which executions, and whether the completion feed is live."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._events: dict[str, set[asyncio.Event]] = {}
        # Terminal fields the feed carried for watched executions, until their watch takes them.
        self._finals: dict[str, completion_pb2.ExecutionResult] = {}
        self.feed_connected = False
        #: Told True when the first watch begins and False when the last one ends.
        self.on_demand: Callable[[bool], None] = lambda wanted: None

    @contextmanager
    def watching(self, execution_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever `execution_id` (or one of its children) may have changed."""
        event = asyncio.Event()
        if not self._events:
            self.on_demand(True)
        self._events.setdefault(execution_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._events.get(execution_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._events[execution_id]
                    self._finals.pop(execution_id, None)
                    if not self._events:
                        self.on_demand(False)

    def wake(self, execution_ids: Iterable[str]) -> None:
        """Executions that changed (unknown or unwatched ids cost one dict lookup)."""
        if not self._events:
            return
        for execution_id in execution_ids:
            for event in self._events.get(execution_id, ()):
                event.set()

    def finished(self, results: Iterable[completion_pb2.ExecutionResult]) -> None:
        """Terminal fields of executions that just ended (call before `wake` for them): kept for
        the ones being watched, so their watch need not read the database again."""
        if not self._events:
            return
        for result in results:
            if result.execution_id in self._events:
                self._finals[result.execution_id] = result

    def final_of(self, execution_id: str) -> completion_pb2.ExecutionResult | None:
        """The terminal fields the feed carried for a watched execution, if any."""
        return self._finals.get(execution_id)

    def wake_all(self) -> None:
        """Every watch re-reads (after the feed was away, changes may have been missed)."""
        for events in self._events.values():
            for event in events:
                event.set()

    @property
    def recheck_interval(self) -> float:
        """Seconds a watch waits without a wake before it re-reads anyway."""
        if self.feed_connected:
            return max(self._settings.watch_fallback_interval, self._settings.poll_interval)
        return self._settings.poll_interval


class CompletedFeed:
    """Holds one WatchCompleted stream to the completion service while there are watches,
    reopened while it fails."""

    def __init__(self, settings: Settings, watchers: ExecutionWatchers, *, linger: float = FEED_LINGER_S) -> None:
        self._settings = settings
        self._watchers = watchers
        self._linger = linger
        self._channel: grpc.aio.Channel | None = None
        self._subscription: BackgroundTask | None = None  # a new one per subscription
        self._unsubscribe: asyncio.TimerHandle | None = None

    @property
    def subscribed(self) -> bool:
        """True while the feed is held (connected or reconnecting)."""
        return self._subscription is not None

    def start(self) -> None:
        """Subscribes whenever there are watches (and keeps resubscribing until `stop`)."""
        self._channel = open_channel(self._settings.completion_address, self._settings)
        self._watchers.on_demand = self._demand

    def _demand(self, wanted: bool) -> None:
        if self._channel is None:  # stopped
            return
        if self._unsubscribe is not None:
            self._unsubscribe.cancel()
            self._unsubscribe = None
        if wanted:
            if self._subscription is None:
                self._subscription = BackgroundTask("completed-feed", self._run)
                self._subscription.start()
        elif self._subscription is not None:
            self._unsubscribe = asyncio.get_running_loop().call_later(self._linger, self._end)

    def _end(self) -> None:
        self._unsubscribe = None
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
        self._watchers.feed_connected = False

    async def stop(self) -> None:
        """Ends the subscription."""
        self._watchers.on_demand = lambda wanted: None
        if self._unsubscribe is not None:
            self._unsubscribe.cancel()
            self._unsubscribe = None
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.stop()
        self._watchers.feed_connected = False
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _run(self) -> None:
        assert self._channel is not None
        stub = completion_pb2_grpc.CompletionServiceStub(self._channel)
        retry = self._settings.retry_interval
        failures = 0
        while True:
            try:
                await self._follow(stub)
                failures = 0
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as err:
                (log.warning if failures == 0 else log.debug)(
                    "completed feed from %s ended: %s %s; watches poll meanwhile",
                    self._settings.completion_address,
                    err.code().name,
                    err.details(),
                )
                failures += 1
            except Exception:
                log.exception("completed feed failed")
                failures += 1
            finally:
                self._watchers.feed_connected = False
            await asyncio.sleep(min(retry * max(failures, 1), 10 * retry))
            metrics.reconnects.get("WatchCompleted").inc()

    async def _follow(self, stub: completion_pb2_grpc.CompletionServiceStub) -> None:
        call = stub.WatchCompleted(completion_pb2.WatchCompletedRequest(), wait_for_ready=True)
        try:
            await call.initial_metadata()
            self._watchers.feed_connected = True
            self._watchers.wake_all()  # what completed while we were away
            async for message in call:
                self._watchers.finished(message.results)
                self._watchers.wake(message.execution_ids)
                self._watchers.wake(message.parent_ids)
        finally:
            call.cancel()
