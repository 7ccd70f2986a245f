"""The console's settings, read once from the one configuration loader (`attune.config`).

The console needs where it listens (ATTUNE_CONSOLE_ADDRESS), how long a session lasts
(ATTUNE_CONSOLE_SESSION_TTL) and how to reach the scheduler as a client does
(ATTUNE_SCHEDULER_ADDRESS, the TLS settings); nothing about a database.
"""

from __future__ import annotations

from dataclasses import dataclass

from attune.config import ConfigError, Settings

#: The largest request body accepted: a workflow definition (ATTUNE_MAX_YAML_BYTES, 512 KiB by
#: default) or an execution's parameters (ATTUNE_MAX_PARAMETERS_BYTES, 1 MiB) with room for JSON.
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
#: At most this many sessions are kept; the oldest goes first beyond it (memory is bounded).
DEFAULT_MAX_SESSIONS = 10_000


@dataclass(frozen=True, kw_only=True)
class ConsoleSettings:
    """What the console process runs with."""

    host: str
    port: int
    scheduler_address: str
    session_ttl: float
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_sessions: int = DEFAULT_MAX_SESSIONS
    #: The client settings its gRPC channel is opened with (TLS material, message limits).
    client: Settings

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsoleSettings:
        """Reads the console's part of `settings`; ConfigError naming a bad value."""
        address = settings.listen_address or settings.console_address
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ConfigError(f"ATTUNE_CONSOLE_ADDRESS={address!r}: expected host:port")
        if settings.console_session_ttl <= 0:
            raise ConfigError(f"ATTUNE_CONSOLE_SESSION_TTL={settings.console_session_ttl!r}: expected seconds > 0")
        return cls(
            host=host.strip("[]"),
            port=int(port),
            scheduler_address=settings.scheduler_address,
            session_ttl=settings.console_session_ttl,
            max_body_bytes=max(DEFAULT_MAX_BODY_BYTES, settings.max_parameters_bytes + 64 * 1024),
            client=settings,
        )
