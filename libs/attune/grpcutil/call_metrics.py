"""Counting every call a server handles by method and status code
(`attune_grpc_server_calls_total`, attune.metrics).

The one server bootstrap wraps each handler in `counted` outside the authorization check, so a
refused call is counted with its UNAUTHENTICATED or PERMISSION_DENIED. The code is the one the
call ended with: what the handler (or the request guard's error mapping) set on the context, OK
when it set none, CANCELLED when the client went away mid-call. Per call this costs a wrapper
coroutine, `context.code()`, a dict lookup and an `inc()`: the method's children are looked up
once per status code, when first seen.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

import grpc
from prometheus_client import Counter

from attune import metrics
from attune.grpcutil.handlers import Behavior, Handler, rebuilt
from attune.grpcutil.request_guard import Context


class _MethodCalls:
    """The counters of one method, one per status code, made when first needed."""

    def __init__(self, method: str) -> None:
        service, _, name = method.lstrip("/").partition("/")
        self._labels = (service, name)
        self._by_code: dict[grpc.StatusCode | None, Counter] = {}

    def count(self, code: grpc.StatusCode | None) -> None:
        counter = self._by_code.get(code)
        if counter is None:
            label = "OK" if code is None else code.name
            counter = self._by_code[code] = metrics.GRPC_CALLS.labels(*self._labels, label)
        counter.inc()


def counted(method: str, handler: Handler) -> Handler:
    """`handler` of `method` ("/package.Service/Method") counting each call's status code."""
    behavior = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    if not (inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)):
        return handler  # a synchronous servicer (none of ours, the request guard wraps each in one)
    calls = _MethodCalls(method)

    def wrap(behavior: Behavior, streamed: bool) -> Behavior:
        if inspect.isasyncgenfunction(behavior):

            async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
                code: grpc.StatusCode | None = grpc.StatusCode.UNKNOWN
                try:
                    async for response in behavior(request, context):
                        yield response
                    code = context.code()
                except asyncio.CancelledError:
                    code = grpc.StatusCode.CANCELLED
                    raise
                except grpc.aio.AbortError:
                    code = context.code()
                    raise
                finally:
                    calls.count(code)

            return stream

        async def call(request: Any, context: Context) -> Any:
            code: grpc.StatusCode | None = grpc.StatusCode.UNKNOWN
            try:
                response = await behavior(request, context)
                code = context.code()
                return response
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except grpc.aio.AbortError:
                code = context.code()
                raise
            finally:
                calls.count(code)

        return call

    return rebuilt(handler, wrap)
