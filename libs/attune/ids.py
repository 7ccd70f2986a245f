"""Identifiers: 32-hex-character ids, time-ordered so that newer ids sort later."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """A new id: 12 hex digits of milliseconds since the epoch, then 20 random hex digits."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"
