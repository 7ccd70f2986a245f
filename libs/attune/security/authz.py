"""Every call authorized: the check that applies `attune.security.policy` to each method handler.

Installed by the one server bootstrap when TLS is configured (with TLS off nothing is checked, as
before: plaintext is allowed on loopback only). The bootstrap wraps each method handler once, as
services register them (`attune.grpcutil.server`), rather than through a gRPC interceptor: an aio
interceptor costs a coroutine per call before the handler is even found, and cannot see the peer's
certificate. The check runs with the servicer context (`context.auth_context()`) just before the
servicer's own code, once per unary call and once when a stream opens. An allowed caller becomes
`attune.security.caller.current()`.

- internal RPC: the verified client certificate must name one of the rule's identities, else
  PERMISSION_DENIED "... requires the worker's certificate (spiffe://attune/worker)";
- public RPC: `authorization: Bearer <token>` must name a known, unrevoked token (else
  UNAUTHENTICATED) whose role is at least the rule's (else PERMISSION_DENIED naming the role). A
  service certificate is not a client credential: services call internal RPCs only.

A public call whose token the verifier holds fresh in its cache is decided without awaiting
anything (`Authorizer.decided`); the others take the full path (`Authorizer.authorize`).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

import grpc

from attune.grpcutil.handlers import Behavior, Handler, rebuilt
from attune.security import caller
from attune.security.identity import peer_identity
from attune.security.policy import Rule, rule_for
from attune.security.tokens import TokenRecord, bearer_of

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True)
class Lookup:
    """What a verifier found for a token value: its record (None: no such token) and the caller
    it authenticates, made once per lookup rather than once per call."""

    record: TokenRecord | None
    caller: caller.Caller | None = field(init=False)

    def __post_init__(self) -> None:
        who = None if self.record is None else caller.Caller(name=self.record.name, role=self.record.role)
        object.__setattr__(self, "caller", who)


class TokenVerifier(Protocol):
    """Looks up a presented token (the scheduler's, backed by its `api_tokens` table)."""

    def cached(self, token: str) -> Lookup | None:
        """The lookup of `token` while it is fresh in the cache; None when it must be read."""

    async def verify(self, token: str) -> Lookup:
        """The lookup of `token`, read when not fresh in the cache."""


class Authorizer:
    """Decides the calls of one method: returns the caller or aborts the call with the reason."""

    def __init__(self, method: str, rule: Rule, verifier: TokenVerifier | None) -> None:
        self._method = method
        self._rule = rule
        # A service that serves only internal RPCs has no verifier: no token is valid there.
        self._verifier = verifier
        # Only a token-only rule can be decided from the cache (certificates are read per call).
        self._by_token_only = rule.role is not None and not rule.identities and verifier is not None

    def decided(self, context: Context) -> caller.Caller | None:
        """The caller when the call is allowed on what is at hand (a fresh cached token with the
        role); None when `authorize` must decide."""
        if not self._by_token_only:
            return None
        token = bearer_of(context.invocation_metadata())
        if token is None:
            return None
        assert self._verifier is not None and self._rule.role is not None  # by _by_token_only
        lookup = self._verifier.cached(token)
        if lookup is None or lookup.record is None or lookup.record.revoked_at is not None:
            return None
        return lookup.caller if lookup.record.role.allows(self._rule.role) else None

    async def authorize(self, context: Context) -> caller.Caller:
        """The caller if the rule allows the call; otherwise aborts it."""
        method, rule = self._method, self._rule
        # Most public RPCs accept no certificate: they skip reading it.
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
        lookup = await self._verifier.verify(token)
        record = lookup.record
        if record is None or record.revoked_at is not None or lookup.caller is None:
            await _abort(context, grpc.StatusCode.UNAUTHENTICATED, f"{method}: unknown or revoked token")
        if not record.role.allows(rule.role):
            await _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method} requires role {rule.role} or higher; token {record.name!r} has role {record.role}",
            )
        return lookup.caller


def _certificate(identity: str | None) -> str:
    return "no service certificate" if identity is None else f"the {identity}'s certificate"


async def _abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # it raises; this line keeps the type NoReturn


class Authorization:
    """Wraps the handler of every method whose rule is not open with its check."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self._verifier = verifier

    def wrap(self, method: str, handler: Handler) -> Handler:
        """`handler` with the check of `method`'s rule before its behavior (itself when open)."""
        rule = rule_for(method)
        if rule.open:
            return handler
        authorizer = Authorizer(method, rule, self._verifier)
        return rebuilt(handler, lambda behavior, _streamed: _checked(behavior, authorizer))


def _checked(behavior: Behavior, authorizer: Authorizer) -> Behavior:
    """`behavior` run only after the check. The caller is set without a reset: gRPC serves each
    call in its own task, whose context copy ends with the call."""
    decided, authorize = authorizer.decided, authorizer.authorize
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            caller.set_current(decided(context) or await authorize(context))
            async for response in behavior(request, context):
                yield response

        return stream

    if inspect.iscoroutinefunction(behavior):

        async def call(request: Any, context: Context) -> Any:
            caller.set_current(decided(context) or await authorize(context))
            return await behavior(request, context)

        return call

    async def call_sync(request: Any, context: Context) -> Any:
        caller.set_current(decided(context) or await authorize(context))
        result = behavior(request, context)
        return await result if inspect.isawaitable(result) else result

    return call_sync
