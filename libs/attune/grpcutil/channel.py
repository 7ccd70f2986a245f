"""Client channels between services: one way to open them, with message-size limits, keepalive
and, when TLS is configured, mutual TLS with the process's own certificate (`attune.security.tls`)
and a client's bearer token on every call (`attune.security.tokens`)."""

from __future__ import annotations

import ipaddress
import json
import socket
from types import TracebackType
from typing import Any, cast

import grpc

from attune.config import Settings
from attune.security.tls import channel_credentials, load_material
from attune.security.tokens import bearer_metadata


def channel_options(
    settings: Settings, *, max_send_bytes: int | None = None, max_receive_bytes: int | None = None
) -> list[tuple[str, int]]:
    """Options shared by servers and channels; the message limits are ATTUNE_MAX_MESSAGE_BYTES
    unless raised for one purpose (a workflow's result: attune.results)."""
    return [
        ("grpc.max_send_message_length", max_send_bytes or settings.max_message_bytes),
        ("grpc.max_receive_message_length", max_receive_bytes or settings.max_message_bytes),
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
    address: str,
    settings: Settings,
    *,
    token: str | None = None,
    retry_unavailable: bool = False,
    max_send_bytes: int | None = None,
) -> grpc.aio.Channel:
    """A channel to another service, or a client's to the scheduler.

    With TLS configured it verifies the server against the CA and presents the certificate of
    `settings.identity` (a client's is `cli`), and every call on it carries `token` (a client's
    bearer token; docs/operations.md, Tokens); otherwise it is plaintext, and carries no token: a
    plaintext server checks none, and a token must not cross the network in the clear. Raises
    TlsError naming a file it needs that is missing. With `retry_unavailable` a call answered
    UNAVAILABLE is tried again (`RETRY_UNAVAILABLE_CONFIG`): for clients whose mutating requests
    carry a request_id, so that a retry is harmless. `max_send_bytes` raises the limit of what
    it sends (the coordinator's channel to the completion service: a workflow's result).

    round_robin spreads calls over every address a name resolves to, so a `dns:///` name of a
    headless Kubernetes Service balances over all replicas (one address behaves as before). A
    comma-separated list of addresses (`h1:p1,h2:p2`) becomes one target over all of them
    (`channel_target`): calls go to those that answer, so a client fails over when a replica
    goes away.
    Reconnect backoff follows `settings.retry_interval` (capped at twice it: 1 s by default)
    instead of gRPC's default of up to two minutes, so work resumes within about a second of a
    restarted peer answering again (one connection attempt per second to a peer that is down).
    """
    retry_ms = max(1, int(settings.retry_interval * 1000))
    options: list[tuple[str, int | str]] = [
        *channel_options(settings, max_send_bytes=max_send_bytes),
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.initial_reconnect_backoff_ms", retry_ms),
        ("grpc.min_reconnect_backoff_ms", retry_ms),
        ("grpc.max_reconnect_backoff_ms", 2 * retry_ms),
    ]
    if retry_unavailable:
        options.append(("grpc.service_config", RETRY_UNAVAILABLE_CONFIG))
    target, authority = channel_target(address)
    if authority:
        options.append(("grpc.default_authority", authority))
    material = load_material(settings)
    if material is None:
        return grpc.aio.insecure_channel(target, options=options)
    channel = grpc.aio.secure_channel(target, channel_credentials(material), options=options)
    return channel if not token else _MetadataChannel(channel, bearer_metadata(token))


def channel_target(address: str) -> tuple[str, str | None]:
    """The gRPC target for `address`, and the authority to present (None: gRPC's own).

    One address, or one with a scheme (`dns:///…`, `ipv4:…`, `unix:…`), is used as it is (an
    `ipv4:`/`ipv6:` list with its first address as the authority, for TLS). A comma-separated
    list `h1:p1,h2:p2` becomes an `ipv4:` (or `ipv6:`) target over every address: IP literals as
    given, host names resolved once, now (for names that change, give one `dns:///` name that
    resolves to every replica). The authority is the first entry as written, so TLS checks the
    server's certificate against the name the user gave. Raises ValueError naming an entry that
    is not host:port or a name that does not resolve.
    """
    entries = [e.strip() for e in address.split(",") if e.strip()]
    if len(entries) < 2 or ":/" in address:
        return address, None
    scheme, _, first = entries[0].partition(":")
    if scheme in ("ipv4", "ipv6"):
        # gRPC's authority for such a list is the whole list, which no certificate names.
        return address, first
    if scheme in _SCHEMES:
        return address, None
    resolved = [_resolve(entry) for entry in entries]
    v4 = [a for addresses in resolved for a in addresses if not a.startswith("[")]
    v6 = [a for addresses in resolved for a in addresses if a.startswith("[")]
    target = f"ipv4:{','.join(dict.fromkeys(v4))}" if v4 else f"ipv6:{','.join(dict.fromkeys(v6))}"
    return target, entries[0]


_SCHEMES = frozenset({"dns", "ipv4", "ipv6", "unix", "unix-abstract", "vsock"})


def _resolve(entry: str) -> list[str]:
    """`host:port` as `ip:port` strings (IPv6 in brackets): the literal, or what the name resolves to."""
    host, sep, port = entry.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"address {entry!r} in a list of addresses is not host:port")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except OSError as err:
            raise ValueError(f"address {entry!r}: host {host!r} does not resolve: {err}") from err
        ips = [ipaddress.ip_address(str(info[4][0])) for info in infos]
    else:
        ips = [ip]
    return [f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}" for ip in dict.fromkeys(ips)]


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
