"""The request guard: every request decoded safely and held to the request limits before a
servicer sees it, and whatever a handler raises answered by the one error mapping.

The one server bootstrap wraps every handler it serves in it as services register them
(`attune.grpcutil.handlers`), the app's servicers, health and reflection alike; each method's
handler is wrapped once, and a call costs one coroutine more (a server interceptor would cost its
chain on every call as well: ~8 µs more per unary call, measured). The authorization check wraps
it in turn, so it runs first. The wrapped handler:

- decodes with a deserializer that never raises: bytes protobuf cannot parse (a string field that
  is not UTF-8, messages nested past the parser's limit) become an `Undecodable`, answered with
  INVALID_ARGUMENT naming the field (`attune.grpcutil.undecodable`) — gRPC itself would answer
  `UNKNOWN Unexpected DecodeError`;
- holds a unary request to the limits of `RequestLimits` by field name, on the request and the
  singular messages in it (`CreateActionRequest.action.ref`): `request_id`, refs and names, enum
  values the contract does not define, `page_size`, `timeout_seconds`, and ids, refs, names and
  `request_id` holding a NUL character, which PostgreSQL's text cannot hold (a statement with
  one fails there: it was INTERNAL);
- answers an exception that escapes a handler without `rpc_errors` with `status_for`'s status, not
  gRPC's UNKNOWN with the exception's text.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from attune.config import Settings
from attune.grpcutil.errors import InvalidArgument, Violation, abort_for, to_status
from attune.grpcutil.handlers import Behavior, Handler, rebuilt
from attune.grpcutil.undecodable import undecodable_violation

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

#: What the database's columns hold: a longer limit setting cannot be honoured.
COLUMN_WIDTH = 255
_REQUEST_ID_FIELDS = frozenset({"request_id"})
_NAME_FIELDS = frozenset({"ref", "action_ref", "pack", "name"})
# Fields whose text is looked up or stored as it is: no NUL in them.
_IDENTIFYING_FIELDS = _REQUEST_ID_FIELDS | _NAME_FIELDS | {"id", "execution_id", "parent_id"}
_INTEGER_TYPES = frozenset({FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64})
# How far into singular messages the limits look (CreateActionRequest.action.ref is 2 deep).
_NESTING = 2


@dataclass(frozen=True, kw_only=True)
class RequestLimits:
    """The limits every request is held to (docs/operations.md, Limits)."""

    request_id_length: int = COLUMN_WIDTH
    name_length: int = COLUMN_WIDTH
    page_size: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        """The limits the settings name, lengths capped at the columns' width."""
        return cls(
            request_id_length=min(settings.max_request_id_length, COLUMN_WIDTH),
            name_length=min(settings.max_name_length, COLUMN_WIDTH),
            page_size=settings.max_page_size,
        )

    def violations(self, request: Message) -> list[Violation]:
        """Each field of `request` beyond a limit."""
        found: list[Violation] = []
        # The message's DESCRIPTOR is upb's, which types-protobuf types apart from Descriptor.
        for check in _checks_of(request.DESCRIPTOR):  # type: ignore[arg-type]
            value = check.value_in(request)
            if value is not None:
                problem = check.problem(value, self)
                if problem is not None:
                    found.append(Violation(check.path, problem))
        return found


@dataclass(frozen=True)
class _FieldCheck:
    """One limited field of a request type: its path and what limits it."""

    names: tuple[str, ...]  # field names from the request down
    field: FieldDescriptor

    @property
    def path(self) -> str:
        return ".".join(self.names)

    def value_in(self, request: Message) -> Any:
        """The field's value in `request`, None when a message on the way is not set."""
        message = request
        for name in self.names[:-1]:
            if not message.HasField(name):
                return None
            message = getattr(message, name)
        return getattr(message, self.names[-1])

    def problem(self, value: Any, limits: RequestLimits) -> str | None:
        """What is wrong with `value`, or None."""
        field = self.field
        name = field.name
        if field.type == FieldDescriptor.TYPE_ENUM:
            known = field.enum_type.values_by_number
            return None if value in known else f"{value} is not a known {field.enum_type.name} value"
        if field.type == FieldDescriptor.TYPE_STRING and "\0" in value:
            return "contains a NUL character, which no id or name can hold"
        if name in _REQUEST_ID_FIELDS:
            return _too_long(value, limits.request_id_length)
        if name in _NAME_FIELDS:
            return _too_long(value, limits.name_length)
        if name == "page_size":
            if value < 0:
                return f"{value} is negative"
            return None if value <= limits.page_size else f"{value} is more than the limit of {limits.page_size}"
        if name == "timeout_seconds" and (not math.isfinite(value) or value < 0):
            return f"{value} is not a number of seconds (finite, not negative)"
        return None


def _too_long(value: str, limit: int) -> str | None:
    return None if len(value) <= limit else f"{len(value)} characters, more than the limit of {limit}"


_CHECKS: dict[str, list[_FieldCheck]] = {}


def _checks_of(descriptor: Descriptor) -> list[_FieldCheck]:
    """The limited fields of a request type (computed once per type)."""
    checks = _CHECKS.get(descriptor.full_name)
    if checks is None:
        checks = _CHECKS[descriptor.full_name] = list(_limited_fields(descriptor, (), 0))
    return checks


def _limited_fields(descriptor: Descriptor, prefix: tuple[str, ...], depth: int) -> Any:
    for field in descriptor.fields:
        if field.is_repeated:
            continue
        names = (*prefix, field.name)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth + 1 < _NESTING and not field.message_type.full_name.startswith("google.protobuf."):
                yield from _limited_fields(field.message_type, names, depth + 1)
        elif (
            field.type == FieldDescriptor.TYPE_ENUM
            or (field.type == FieldDescriptor.TYPE_STRING and field.name in _IDENTIFYING_FIELDS)
            or (field.type in _INTEGER_TYPES and field.name == "page_size")
            or (field.type == FieldDescriptor.TYPE_DOUBLE and field.name == "timeout_seconds")
        ):
            yield _FieldCheck(names, field)


@dataclass(frozen=True)
class Undecodable:
    """A request protobuf could not parse, kept to say which field was wrong."""

    descriptor: Descriptor | None
    data: bytes

    def error(self) -> InvalidArgument:
        """INVALID_ARGUMENT naming the field that did not decode."""
        if self.descriptor is None:
            violation = Violation("", "the request could not be decoded")
        else:
            violation = undecodable_violation(self.descriptor, self.data)
        text = f"{violation.field}: {violation.description}" if violation.field else violation.description
        return InvalidArgument(f"the request could not be decoded: {text}", [violation])


def _safe_deserializer(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None
    # The generated handlers deserialize with the request class's FromString.
    owner = getattr(deserialize, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)

    def safe(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError:
            return Undecodable(descriptor if isinstance(descriptor, Descriptor) else None, data)

    return safe


class RequestGuard:
    """Wraps the handlers of every service a server registers (see the module's docstring)."""

    def __init__(self, limits: RequestLimits) -> None:
        self._limits = limits

    def wrap(self, method: str, handler: Handler) -> Handler:
        """`handler` of `method` ("/package.Service/Method") wrapped (see the module's docstring)."""
        behavior = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
        if not (inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)):
            return handler  # a synchronous servicer (none of ours): left as it is

        def guarded(behavior: Behavior, streamed: bool) -> Behavior:
            return self._streamed(behavior, method) if streamed else self._unary(behavior, method)

        return rebuilt(handler, guarded, request_deserializer=_safe_deserializer(handler.request_deserializer))

    def _refusal(self, request: Any) -> InvalidArgument | None:
        """Why the call must be refused: its request did not decode or is beyond a limit. Plain
        code, not a coroutine: an admitted call (nearly every one) awaits nothing here."""
        if isinstance(request, Undecodable):
            return request.error()
        if isinstance(request, Message):
            violations = self._limits.violations(request)
            if violations:
                text = "; ".join(f"{v.field}: {v.description}" for v in violations)
                return InvalidArgument(f"request beyond a limit: {text}", violations)
        return None

    def _unary(self, behavior: Behavior, method: str) -> Behavior:
        refusal = self._refusal
        if inspect.isasyncgenfunction(behavior):

            async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
                if (refused := refusal(request)) is not None:
                    await _abort(context, refused)
                try:
                    async for response in behavior(request, context):
                        yield response
                except grpc.aio.AbortError:
                    raise
                except Exception as err:
                    await abort_for(context, err, method=method)

            return stream

        # `_wrap` wraps coroutine functions only: the behavior's result is always awaited.
        async def call(request: Any, context: Context) -> Any:
            if (refused := refusal(request)) is not None:
                await _abort(context, refused)
            try:
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as err:
                await abort_for(context, err, method=method)

        return call

    def _streamed(self, behavior: Behavior, method: str) -> Behavior:
        """A stream of requests: each message checked as the handler reads it."""

        async def checked(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
            async for request in requests:
                if isinstance(request, Undecodable):
                    await _abort(context, request.error())
                yield request

        if inspect.isasyncgenfunction(behavior):

            async def stream(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
                try:
                    async for response in behavior(checked(requests, context), context):
                        yield response
                except grpc.aio.AbortError:
                    raise
                except Exception as err:
                    await abort_for(context, err, method=method)

            return stream

        async def call(requests: AsyncIterator[Any], context: Context) -> Any:
            try:
                result = behavior(checked(requests, context), context)
                return await result if inspect.isawaitable(result) else result
            except grpc.aio.AbortError:
                raise
            except Exception as err:
                await abort_for(context, err, method=method)

        return call


async def _abort(context: Context, err: InvalidArgument) -> None:
    # grpc.aio's concrete context has abort_with_status; its abstract base and stubs omit it.
    await context.abort_with_status(to_status(err))  # type: ignore[attr-defined]
