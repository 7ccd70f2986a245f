"""The reconnect loop of a long-lived client stream: run a session, and when it ends, back off
(doubling from `retry` up to twice it, as the channel's own reconnects do) and run it again until
the owner stops: a peer back after an outage is reached again within about a second. Each new
start after the first counts in `attune_stream_reconnects_total{stream}` (attune.metrics)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc

from attune import metrics


async def keep_session(
    session: Callable[[], Awaitable[None]],
    *,
    retry: float,
    stopping: Callable[[], bool],
    describe_end: Callable[[grpc.aio.AioRpcError], str],
    log: logging.Logger,
    on_end: Callable[[], None] | None = None,
    stream: str = "",
) -> None:
    """Runs `session` again and again. A stream ended by the peer is logged once per outage
    (warning, then debug); a session that lasted over ten `retry` intervals resets the backoff.
    `stream` names it in the metrics (its RPC, e.g. "SubmitResults")."""
    reconnects = metrics.reconnects.get(stream or log.name)
    backoff, failures = retry, 0
    while not stopping():
        started = time.monotonic()
        try:
            await session()
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as err:
            (log.warning if failures == 0 else log.debug)("%s", describe_end(err))
        except Exception:
            log.exception("stream session failed")
        if on_end is not None:
            on_end()
        if stopping():
            return
        worked = time.monotonic() - started > 10 * retry
        failures = 0 if worked else failures + 1
        if worked:
            backoff = retry
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 2 * retry)
        reconnects.inc()
