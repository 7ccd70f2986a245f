"""Client channels between services: one way to open them, with message-size limits, keepalive
and, when TLS is configured, mutual TLS with the process's own certificate (`attune.security.tls`)
and a client's bearer token on every call (`attune.security.tokens`)."""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any, cast

import grpc

from attune.config import Settings
from attune.security.tls import channel_credentials, load_material
from attune.security.tokens import bearer_metadata


def channel_options(settings: Settings) -> list[tuple[str, int]]:
    """Options shared by servers and channels."""
    return [
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # Server side: accept the clients' 10 s keepalive pings on idle long-lived streams
        # (gRPC's default minimum is 5 minutes, answered with GOAWAY "too_many_pings").
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.http2.max_ping_strikes", 0),
        # No channelz service is served, so its per-call bookkeeping buys nothing: off, a burst of
        # 2,000 concurrent unary calls cost the client ~10 % and the server ~3 % less CPU
        # (medians of 5 interleaved runs; no change for one call at a time).
        ("grpc.enable_channelz", 0),
    ]


#: A client's retries of a call answered UNAVAILABLE (the scheduler restarting, its database away for
#: a moment): three more attempts after backoffs of up to 0.1, 0.3 and 0.9 s (gRPC jitters each
#: down from its cap), within the call's own deadline. Done by gRPC's core from the channel's
#: service config: no Python runs per call (a client interceptor costs ~45 us of CPU per call).
RETRY_UNAVAILABLE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "0.9s",
                    "backoffMultiplier": 3,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def open_channel(
    address: str, settings: Settings, *, token: str | None = None, retry_unavailable: bool = False
) -> grpc.aio.Channel:
    """A channel to another service, or a client's to the scheduler.

    With TLS configured it verifies the server against the CA and presents the certificate of
    `settings.identity` (a client's is `cli`), and every call on it carries `token` (a client's
    bearer token; docs/operations.md, Tokens); otherwise it is plaintext, and carries no token: a
    plaintext server checks none, and a token must not cross the network in the clear. Raises
    TlsError naming a file it needs that is missing. With `retry_unavailable` a call answered
    UNAVAILABLE is tried again (`RETRY_UNAVAILABLE_CONFIG`): for clients whose mutating requests
    carry a request_id, so that a retry is harmless.

    round_robin spreads calls over every address a name resolves to, so a `dns:///` name of a
    headless Kubernetes Service balances over all replicas (one address behaves as before).
    Reconnect backoff follows `settings.retry_interval` (capped at ten times it) instead of gRPC's
    default of up to two minutes, so a restarted peer is reached again within seconds.
    """
    retry_ms = max(1, int(settings.retry_interval * 1000))
    options: list[tuple[str, int | str]] = [
        *channel_options(settings),
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.initial_reconnect_backoff_ms", retry_ms),
        ("grpc.min_reconnect_backoff_ms", retry_ms),
        ("grpc.max_reconnect_backoff_ms", 10 * retry_ms),
    ]
    if retry_unavailable:
        options.append(("grpc.service_config", RETRY_UNAVAILABLE_CONFIG))
    material = load_material(settings)
    if material is None:
        return grpc.aio.insecure_channel(address, options=options)
    channel = grpc.aio.secure_channel(address, channel_credentials(material), options=options)
    return channel if not token else _MetadataChannel(channel, bearer_metadata(token))


Metadata = tuple[tuple[str, str], ...]


class _WithMetadata:
    """A multicallable of any kind that adds fixed metadata to each call's own. Cheaper than a
    client interceptor, which costs grpc.aio an extra task per call (~45 us of CPU a unary call,
    measured against this: tests/security, docs/operations.md's Performance notes)."""

    __slots__ = ("_call", "_metadata")

    def __init__(self, call: Any, metadata: Metadata) -> None:
        self._call = call
        self._metadata = metadata

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        own = kwargs.get("metadata")
        kwargs["metadata"] = self._metadata if own is None else (*own, *self._metadata)
        return self._call(*args, **kwargs)


class _MetadataChannel(grpc.aio.Channel):
    """A channel whose every call carries `metadata` (the bearer token), whatever stub makes it."""

    def __init__(self, channel: grpc.aio.Channel, metadata: Metadata) -> None:
        self._channel = channel
        self._metadata = metadata

    # The four factories hand back `_WithMetadata`, which calls exactly as the multicallable it wraps.
    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        inner = self._channel.unary_unary(method, *args, **kwargs)
        return cast("grpc.aio.UnaryUnaryMultiCallable[Any, Any]", _WithMetadata(inner, self._metadata))

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
        inner = self._channel.unary_stream(method, *args, **kwargs)
        return cast("grpc.aio.UnaryStreamMultiCallable[Any, Any]", _WithMetadata(inner, self._metadata))

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> grpc.aio.StreamUnaryMultiCallable[Any, Any]:
        inner = self._channel.stream_unary(method, *args, **kwargs)
        return cast("grpc.aio.StreamUnaryMultiCallable[Any, Any]", _WithMetadata(inner, self._metadata))

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> grpc.aio.StreamStreamMultiCallable[Any, Any]:
        inner = self._channel.stream_stream(method, *args, **kwargs)
        return cast("grpc.aio.StreamStreamMultiCallable[Any, Any]", _WithMetadata(inner, self._metadata))

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    async def __aenter__(self) -> _MetadataChannel:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
