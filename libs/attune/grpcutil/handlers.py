"""Wrapping every method handler a server serves, once, as the services register them.

The one server bootstrap hands services a `WrappingRegistrar` in place of the server: each
handler a servicer adds (through `add_generic_rpc_handlers` or `add_registered_method_handlers`,
which generated `add_*_to_server` functions, health and reflection all call) is wrapped by the
given function — the authorization check of `attune.security.authz`. Unlike a gRPC server
interceptor, this costs nothing per call beyond the wrapper itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

import grpc

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic only in the type stubs
# A servicer method as grpc hands it over: (request or request iterator, context) -> response(s).
Behavior = Callable[..., Any]
#: Makes the served handler of a method (full name "/package.Service/Method") from the registered one.
WrapHandler = Callable[[str, Handler], Handler]


def rebuilt(
    handler: Handler,
    wrap: Callable[[Behavior, bool], Behavior],
    *,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> Handler:
    """`handler` serving `wrap(behavior, streamed)` in place of its behavior (`streamed`: the
    requests come as a stream), and decoding with `request_deserializer` when one is given."""
    codecs: dict[str, Any] = {
        "request_deserializer": request_deserializer or handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False), **codecs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, False), **codecs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, True), **codecs)
    assert handler.stream_stream is not None  # a handler has exactly one of the four kinds
    return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, True), **codecs)


class _WrappedGenericHandler(grpc.GenericRpcHandler):
    """A generic handler whose method handlers come out wrapped (each wrapped once, on first use)."""

    def __init__(self, inner: grpc.GenericRpcHandler, wrap: WrapHandler) -> None:
        self._inner = inner
        self._wrap = wrap
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = (handler, self._wrap(method, handler))
            self._wrapped[method] = known
        return known[1]


class WrappingRegistrar(grpc.aio.Server):
    """A grpc.aio.Server that wraps every handler registered through it, serving on `server`.
    Registering code checks for an aio server (reflection picks its async servicer so), hence
    a subclass rather than a plain proxy."""

    def __init__(self, server: grpc.aio.Server, wrap: WrapHandler) -> None:
        self._server = server
        self._wrap = wrap

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(_WrappedGenericHandler(handler, self._wrap) for handler in generic_rpc_handlers)
        )

    def add_registered_method_handlers(self, service_name: str, method_handlers: Mapping[str, Handler]) -> None:
        # grpc.aio (1.78) serves only the generic handlers and ignores these; were it to serve them,
        # they must come out wrapped too.
        wrapped = {name: self._wrap(f"/{service_name}/{name}", h) for name, h in method_handlers.items()}
        self._server.add_registered_method_handlers(service_name, wrapped)  # type: ignore[attr-defined]

    def add_insecure_port(self, address: str) -> int:
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self._server.add_secure_port(address, server_credentials)

    async def start(self) -> None:
        await self._server.start()

    async def stop(self, grace: float | None) -> None:
        await self._server.stop(grace)

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        return await self._server.wait_for_termination(timeout)
