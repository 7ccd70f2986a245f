"""Waiting in tests for something that happens in the background: one polling helper."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


# Two overloads so that T is what an async check's awaitable gives, not the awaitable itself.
@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    within: float = ...,
    interval: float = ...,
    what: str | Callable[[], str] = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None],
    *,
    within: float = ...,
    interval: float = ...,
    what: str | Callable[[], str] = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Awaitable[T | None] | T | None],
    *,
    within: float = 5.0,
    interval: float = 0.01,
    what: str | Callable[[], str] = "condition",
) -> T:
    """Calls `check()` (sync or async) every `interval` seconds until it returns a truthy value,
    and returns that value. After `within` seconds raises AssertionError naming `what` (or what
    `what()` says at that moment, to show the state that was still wrong) and the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        outcome = check()
        value = await outcome if inspect.isawaitable(outcome) else outcome
        if value:
            return value
        if loop.time() >= deadline:
            description = what() if callable(what) else what
            raise AssertionError(f"timed out after {within}s waiting for {description} (last value: {value!r})")
        await asyncio.sleep(interval)
