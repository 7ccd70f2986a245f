"""Client channels between services: one way to open them, with message-size limits, keepalive
and, when TLS is configured, mutual TLS with the process's own certificate (`attune.security.tls`)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from attune.config import Settings
from attune.security.tls import channel_credentials, load_material


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


def open_channel(
    address: str,
    settings: Settings,
    *,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """A channel to another service, or a client's to the scheduler.

    With TLS configured it verifies the server against the CA and presents the certificate of
    `settings.identity` (a client's is `cli`); otherwise it is plaintext. Raises TlsError naming
    a file it needs that is missing.

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
    material = load_material(settings)
    if material is None:
        return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors or None)
    credentials = channel_credentials(material)
    return grpc.aio.secure_channel(address, credentials, options=options, interceptors=interceptors or None)
