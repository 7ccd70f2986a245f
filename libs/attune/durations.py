"""Durations written by people: `30d`, `12h`, `15m`, `90s` or plain seconds (`3600`, `0.5`).

One parser for the settings and command-line options that take a duration (ATTUNE_RETENTION,
`attune execution purge --older-than`), so both accept the same spellings and refuse the same
mistakes with the same message.
"""

from __future__ import annotations

import math
import re

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", re.IGNORECASE)


def parse_duration(text: str, *, name: str) -> float:
    """Seconds in `text` (a number with an optional unit s, m, h, d or w); raises ValueError
    naming `name` (the setting or option) when it is not one, or is negative."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{name}: {text!r} is not a duration (e.g. 30d, 12h, 15m, 90s or seconds)")
    seconds = float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    if not math.isfinite(seconds):
        raise ValueError(f"{name}: {text!r} is too long a duration")
    return seconds
