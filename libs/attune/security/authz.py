"""Every call authorized: the server interceptor that applies `attune.security.policy`.

Installed by the one server bootstrap when TLS is configured (with TLS off nothing is checked, as
before: plaintext is allowed on loopback only). An aio interceptor sees the method and metadata but
not the peer's certificate, so for each method it returns the handler wrapped: the check runs with
the servicer context (`context.auth_context()`) just before the servicer's own code, once per
unary call and once when a stream opens. An allowed caller becomes `attune.security.caller.current()`.

- internal RPC: the verified client certificate must name one of the rule's identities, else
  PERMISSION_DENIED "... requires the worker's certificate (spiffe://attune/worker)";
- public RPC: `authorization: Bearer <token>` must name a known, unrevoked token (else
  UNAUTHENTICATED) whose role is at least the rule's (else PERMISSION_DENIED naming the role). A
  service certificate is not a client credential: services call internal RPCs only.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, Protocol, TypeAlias

import grpc

from attune.config import Settings
from attune.security import caller
from attune.security.identity import peer_identity
from attune.security.policy import Rule, rule_for
from attune.security.tls import tls_configured
from attune.security.tokens import TokenRecord, bearer_of

Context = grpc.aio.ServicerContext[Any, Any]
# A servicer method as grpc hands it over: (request or request iterator, context) -> response(s).
Behavior = Callable[..., Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic only in the type stubs


class TokenVerifier(Protocol):
    """Looks up a presented token (the scheduler's, backed by its `api_tokens` table)."""

    async def verify(self, token: str) -> TokenRecord | None:
        """The token's record, or None when no token has that value."""


class Authorizer:
    """Decides one call: returns the caller or aborts the call with the reason."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        # A service that serves only internal RPCs has no verifier: no token is valid there.
        self._verifier = verifier

    async def authorize(self, method: str, rule: Rule, context: Context) -> caller.Caller:
        """The caller of `method` if `rule` allows it; otherwise aborts the call."""
        # Most public RPCs accept no certificate: they skip reading it (a call's hot path).
        identity = peer_identity(context) if rule.identities else None
        if identity is not None and identity in rule.identities:
            return caller.Caller(name=identity)
        who = f"the caller presented {_certificate(identity)}"
        if rule.role is None:
            await _abort(context, grpc.StatusCode.PERMISSION_DENIED, f"{method} {rule.describe()}; {who}")
        if self._verifier is None:
            # This service serves only internal RPCs and checks no tokens: only a certificate opens it.
            await _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method} on this service requires a service certificate (it accepts no tokens); {who}",
            )
        token = bearer_of(context.invocation_metadata())
        if token is None:
            await _abort(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                f"{method}: missing bearer token (send `authorization: Bearer <token>`; see `attune token create`)",
            )
        record = await self._verifier.verify(token)
        if record is None or record.revoked_at is not None:
            await _abort(context, grpc.StatusCode.UNAUTHENTICATED, f"{method}: unknown or revoked token")
        if not record.role.allows(rule.role):
            await _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method} requires role {rule.role} or higher; token {record.name!r} has role {record.role}",
            )
        return caller.Caller(name=record.name, role=record.role)


def _certificate(identity: str | None) -> str:
    return "no service certificate" if identity is None else f"the {identity}'s certificate"


async def _abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # it raises; this line keeps the type NoReturn


class AuthorizationInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler whose rule is not open with the authorization check."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self._authorizer = Authorizer(verifier)
        # Handlers are fixed per method once the server started: wrap each one once.
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        rule = rule_for(method)
        if handler is None or rule.open:
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method, rule)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: Handler, method: str, rule: Rule) -> Handler:
        codecs: dict[str, Any] = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._checked(handler.unary_unary, method, rule), **codecs)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(self._checked(handler.unary_stream, method, rule), **codecs)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(self._checked(handler.stream_unary, method, rule), **codecs)
        assert handler.stream_stream is not None  # a handler has exactly one of the four kinds
        return grpc.stream_stream_rpc_method_handler(self._checked(handler.stream_stream, method, rule), **codecs)

    def _checked(self, behavior: Behavior, method: str, rule: Rule) -> Behavior:
        """`behavior` run only after the check. The caller is set without a reset: gRPC serves each
        call in its own task, whose context copy ends with the call."""
        authorize = self._authorizer.authorize
        if inspect.isasyncgenfunction(behavior):

            async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
                caller.set_current(await authorize(method, rule, context))
                async for response in behavior(request, context):
                    yield response

            return stream

        async def call(request: Any, context: Context) -> Any:
            caller.set_current(await authorize(method, rule, context))
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result

        return call


def authorization_interceptors(settings: Settings, verifier: TokenVerifier | None) -> list[grpc.aio.ServerInterceptor]:
    """The server's interceptors: the authorization check when TLS is configured, none otherwise
    (plaintext is the unauthenticated mode, allowed on loopback only)."""
    return [AuthorizationInterceptor(verifier)] if tls_configured(settings) else []
