"""Structured logging: one JSON object per line on stderr (or plain text with ATTUNE_LOG_FORMAT=text),
and `ThrottledLog` for failures that repeat many times a second (ATTUNE_LOG_REPEAT_INTERVAL)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
#: How long a `ThrottledLog` holds back repeats of one kind of line (ATTUNE_LOG_REPEAT_INTERVAL).
_repeat_interval = 10.0


class JsonFormatter(logging.Formatter):
    """Formats a record and its `extra=` fields as one JSON line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(time.time(), 6),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, *, level: str = "INFO", fmt: str = "json", repeat_interval: float = 10.0) -> None:
    """Sets up the root logger for a service process; `repeat_interval` is how long a
    `ThrottledLog` holds back repeats of a line."""
    set_repeat_interval(repeat_interval)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def set_repeat_interval(seconds: float) -> None:
    """Sets the interval of every `ThrottledLog` that has none of its own."""
    global _repeat_interval
    _repeat_interval = max(0.0, seconds)


class ThrottledLog:
    """Logs a failure that may repeat many times a second (every request while the database is
    down) as one line per kind per interval: the first line of a kind at once, the repeats within
    the interval counted, and the next line after it carrying that count as `repeated`.

    Kinds are short fixed strings ("database unavailable"), never request data: the table of
    kinds must stay small whatever clients send.
    """

    def __init__(self, logger: logging.Logger, *, interval: float | None = None) -> None:
        self.logger = logger
        self._interval = interval  # None: the process-wide interval (set_repeat_interval)
        self._last: dict[str, float] = {}  # kind → when its last line was logged
        self._held: dict[str, int] = {}  # kind → repeats held back since then

    def log(
        self,
        level: int,
        kind: str,
        msg: str,
        *args: object,
        extra: dict[str, Any] | None = None,
        force: bool = False,
    ) -> bool:
        """Logs `msg % args` unless a line of `kind` was logged within the interval (then it only
        counts it); returns whether it logged. `force` logs it anyway (the first line of a new
        episode, e.g. a service turning NOT_SERVING) and starts the interval again."""
        now = time.monotonic()
        interval = _repeat_interval if self._interval is None else self._interval
        last = self._last.get(kind)
        if not force and last is not None and now - last < interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        self._last[kind] = now
        fields = {**(extra or {}), "kind": kind}
        held = self._held.pop(kind, 0)
        if held:
            fields["repeated"] = held
            msg += " (and %d more like it since the last such line)"
            args = (*args, held)
        self.logger.log(level, msg, *args, extra=fields)
        return True

    def warning(
        self, kind: str, msg: str, *args: object, extra: dict[str, Any] | None = None, force: bool = False
    ) -> bool:
        """`log` at WARNING."""
        return self.log(logging.WARNING, kind, msg, *args, extra=extra, force=force)
