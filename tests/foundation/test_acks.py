"""attune.grpcutil.acks: acks ready together share one response; other items keep their order."""

from __future__ import annotations

import asyncio

from attune.grpcutil.acks import gathered_acks


async def _take(queue: asyncio.Queue[list[str] | BaseException | None], count: int) -> list[object]:
    items: list[object] = []
    async for item in gathered_acks(queue, linger=0.01):
        items.append(item)
        if len(items) == count:
            return items
    return items


async def test_acks_queued_within_the_linger_go_out_together() -> None:
    queue: asyncio.Queue[list[str] | BaseException | None] = asyncio.Queue()
    queue.put_nowait(["a"])
    taking = asyncio.create_task(_take(queue, 2))
    await asyncio.sleep(0)
    queue.put_nowait(["b", "c"])  # while the first ack lingers
    queue.put_nowait(None)
    assert await asyncio.wait_for(taking, timeout=5) == [["a", "b", "c"], None]


async def test_an_error_or_the_end_is_not_gathered_past() -> None:
    queue: asyncio.Queue[list[str] | BaseException | None] = asyncio.Queue()
    error = RuntimeError("not stored")
    for item in (["a"], error, ["b"], None):
        queue.put_nowait(item)
    assert await asyncio.wait_for(_take(queue, 4), timeout=5) == [["a"], error, ["b"], None]
