"""The one way a process runs its asyncio main: uvloop when installed, else asyncio's loop.

uvloop roughly doubles message throughput on gRPC streams (docs/architecture.md, Performance goals) and takes
~1.2 ms off a client's request-and-watch of one no-op (measured with `attune bench`). libuv
spawns processes with a full fork (~6 ms here), so the worker, which spawns one per action, keeps
asyncio's loop with a pidfd child watcher instead of Python 3.11's thread per child.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool = True) -> T:
    """Runs ``main`` to completion on a new event loop and returns its result."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    if sys.version_info < (3, 12) and hasattr(asyncio, "PidfdChildWatcher"):
        try:
            watcher = asyncio.PidfdChildWatcher()
            asyncio.set_child_watcher(watcher)
        except OSError:
            pass
    return asyncio.run(main)
