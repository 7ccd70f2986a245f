"""The one configuration loader: every setting comes from an `ATTUNE_*` environment variable.

Durations are seconds. Each service reads the settings it needs from one `Settings` object, so
defaults live in exactly one place and tests shorten timings through the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from attune.durations import parse_duration


def default_home() -> Path:
    """Where the embedded database and caches live (`ATTUNE_HOME`, default ~/.attune)."""
    return Path(os.environ.get("ATTUNE_HOME", Path.home() / ".attune"))


def normalize_database_url(url: str) -> str:
    """Accepts plain `postgresql://` and `sqlite:///` URLs and picks the async drivers."""
    for prefix, replacement in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+aiosqlite:///"),
    ):
        if url.startswith(prefix):
            return replacement + url[len(prefix) :]
    return url


class ConfigError(ValueError):
    """An ATTUNE_* variable holds a value of the wrong type."""


#: Variables naming the platform's own credentials. A worker never needs them (it has no database
#: and seals nothing), so launchers do not pass them to it and a worker drops any it is given: an
#: action must not find them (docs/operations.md, What an action can see).
WORKER_WITHHELD_VARIABLES: tuple[str, ...] = (
    "ATTUNE_DATABASE_URL",
    "ATTUNE_SECRET_KEY",
    "ATTUNE_SECRET_KEY_FILE",
    "ATTUNE_ADMIN_TOKEN_FILE",
)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """All settings; the environment variable of `foo_bar` is `ATTUNE_FOO_BAR`."""

    database_url: str = ""
    scheduler_address: str = "127.0.0.1:50051"
    coordinator_address: str = "127.0.0.1:50052"
    completion_address: str = "127.0.0.1:50053"
    worker_address: str = "127.0.0.1:0"
    # Overrides the address a service listens on (e.g. "0.0.0.0:50051" in a container).
    listen_address: str = ""
    schedule_timeout: float = 60.0
    worker_grace: float = 30.0
    heartbeat_interval: float = 5.0
    kill_grace: float = 5.0
    shutdown_grace: float = 10.0
    poll_interval: float = 0.05
    # How often a watch re-reads while the completion feed is connected (it is woken on changes).
    watch_fallback_interval: float = 1.0
    retry_interval: float = 0.5
    # How often a coordinator re-reads its outbox and takes over the commands committed at least
    # this long ago (and a few retry intervals) that nobody carried out: a dead replica's. 0: never.
    recovery_interval: float = 10.0
    # How long a coordinator or completion replica's lease lasts (renewed every third of it): its
    # pending commands are taken over by another replica only once it has expired (docs/operations.md).
    lease_time: float = 10.0
    # A coordinator or completion replica's id in its lease (default: generated at each start). A
    # stable, unique one per replica (e.g. the pod name) lets a restarted replica resume its own
    # pending work at once instead of after the lease time.
    replica_id: str = ""
    # How long the scheduler keeps the response of a request that carried a request_id: a retry
    # within it returns the original response, a later one is a new request.
    request_log_ttl: float = 24 * 3600.0
    # How long ended executions are kept (docs/operations.md, Retention): a duration such as 30d,
    # 12h or seconds; 0 keeps them forever. The scheduler purges older ones every
    # retention_interval seconds, in small batches.
    retention: str = "30d"
    retention_interval: float = 60.0
    worker_id: str = ""
    worker_capacity: int = 32
    # Comma-separated runtimes a worker may advertise (default: every runtime it detects).
    worker_runtimes: str = ""
    max_message_bytes: int = 4 * 1024 * 1024
    # An execution's output (docs/operations.md, Live output): stored live up to this many bytes
    # of stdout and stderr together, then cut with a marker line; the result's stdout and stderr
    # keep up to this much each. Replaces ATTUNE_OUTPUT_LIMIT_BYTES.
    log_limit_bytes: int = 1024 * 1024
    # Output a worker holds that the scheduler has not acknowledged yet, all runs together: past
    # it the worker stops reading the actions' pipes (they wait on their writes) until acks come.
    worker_log_buffer_bytes: int = 16 * 1024 * 1024
    # Request limits (docs/operations.md, Limits): a request beyond one is refused with
    # INVALID_ARGUMENT naming the field and the limit, before anything is stored.
    max_request_id_length: int = 255
    # Refs (`action_ref`, `ref`) and names (`pack`, `name`) in requests.
    max_name_length: int = 255
    # An execution's parameters as compact JSON, and their nesting (objects and lists).
    max_parameters_bytes: int = 1024 * 1024
    max_parameters_depth: int = 32
    max_page_size: int = 1000
    # Requests of one RunExecutions stream waiting for their executions at once.
    max_runs_in_flight: int = 10_000
    # Metadata (headers) a server accepts with one request.
    max_metadata_bytes: int = 8 * 1024
    # A result a worker submits; a larger one is stored cut down and marked "truncated".
    max_result_bytes: int = 3 * 1024 * 1024
    # A workflow's result (its output as JSON), stored whole up to this, then cut down like an
    # action's: it travels from the coordinator to the completion service in one message, whose
    # limit is raised to hold it on that channel and that server only (attune.results).
    max_workflow_result_bytes: int = 64 * 1024 * 1024
    # How often a service with a database checks that it is reachable and migrated (health).
    health_check_interval: float = 5.0
    # Repeats of one kind of log line (e.g. "database unavailable") within this interval are
    # counted, not logged.
    log_repeat_interval: float = 10.0
    # Pack limits (docs/operations.md, Limits), checked by the registry before anything is read
    # or stored. A whole RegisterPack request must also fit in max_message_bytes.
    max_pack_bytes: int = 3 * 1024 * 1024
    max_pack_files: int = 1000
    max_pack_file_bytes: int = 1024 * 1024
    max_pack_path_length: int = 255
    # Each YAML file of a pack: its size (and its scalars' text once aliases are expanded), its
    # aliases, its values once aliases are expanded, and its nesting.
    max_yaml_bytes: int = 512 * 1024
    max_yaml_aliases: int = 1000
    max_yaml_nodes: int = 100_000
    max_yaml_depth: int = 32
    workflow_run_cap: int = 1000
    workflow_max_depth: int = 10
    # What one template evaluation may build (bytes of any value, roughly as JSON) and do (loop
    # rounds and calls, and the length of a range): docs/workflows.md, Expressions.
    template_max_bytes: int = 4 * 1024 * 1024
    template_max_steps: int = 100_000
    pack_cache_dir: str = ""
    # The user a worker running as root runs actions as (name or uid); ignored when not root.
    action_user: str = "nobody"
    # How a worker keeps every process of a run together (docs/operations.md, Containment):
    # cgroup (one per run), subreaper, or auto (cgroup where moving between cgroups is cheap).
    worker_containment: str = "auto"
    log_level: str = "INFO"
    log_format: str = "json"
    trace_file: str = ""
    # Where a service serves Prometheus metrics over HTTP (GET /metrics), e.g. 127.0.0.1:9464;
    # empty: none (docs/operations.md, Metrics). Each service process needs its own.
    metrics_address: str = ""
    # TLS (docs/operations.md, TLS): a folder with ca.pem, <identity>.pem and <identity>.key, or
    # explicit PEM paths that override its files. Any of them set turns on TLS for every server
    # and mutual TLS for every channel.
    tls_dir: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    # Whose certificate this process presents: a service's main sets its own name; the CLI is "cli".
    identity: str = "cli"
    # Allows serving plaintext on a non-loopback address (without TLS a service refuses to).
    insecure: bool = False
    # Keys sealing secret parameters at rest (attune.security.sealing): base64 AES-256 keys,
    # comma-separated, newest first; or a file of them, one per line (default
    # $ATTUNE_HOME/secret.key when it exists).
    secret_key: str = ""
    secret_key_file: str = ""
    # A file holding a client token the scheduler keeps valid as the token named "admin" with role
    # admin, so a deployment (and `attune up`) starts with one credential (docs/operations.md, Tokens).
    admin_token_file: str = ""
    # The web console (services/console, docs/console.md): where it serves HTTP, and how long a
    # signed-in session lasts without a new sign-in.
    console_address: str = "127.0.0.1:8080"
    console_session_ttl: float = 12 * 3600.0
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Reads every setting from the environment, converting to the field's type."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            key = "ATTUNE_" + f.name.upper()
            if key not in env or env[key] == "":
                continue
            raw = env[key]
            assert f.default is not MISSING  # every field but `extra` has a plain default
            kind = type(f.default)
            try:
                values[f.name] = kind(raw) if kind is not bool else raw.lower() in {"1", "true", "yes"}
            except ValueError as err:
                raise ConfigError(f"{key}={raw!r}: expected a {kind.__name__}") from err
        settings = cls(**values)
        if not settings.database_url:
            home = default_home()
            settings = settings.replace(database_url=f"sqlite+aiosqlite:///{home / 'attune.db'}")
        return settings.replace(database_url=normalize_database_url(settings.database_url))

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        from dataclasses import replace

        return replace(self, **changes)

    @property
    def retention_seconds(self) -> float:
        """ATTUNE_RETENTION in seconds (0: keep forever); ConfigError when it is not a duration."""
        try:
            return parse_duration(self.retention, name="ATTUNE_RETENTION")
        except ValueError as err:
            raise ConfigError(str(err)) from err

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite store."""
        return self.database_url.startswith("sqlite")

    def pack_cache(self) -> Path:
        """Folder where a worker caches pack files by digest."""
        return Path(self.pack_cache_dir) if self.pack_cache_dir else default_home() / "packs"
