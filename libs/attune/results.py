"""Keeping an execution's result within the message size limit (docs/architecture.md, Interfaces).

A result is stored and forwarded whole when it fits; a larger one is cut down to a JSON object
marked `"truncated": true` that keeps the heads of stdout and stderr and the small scalar keys.
Workers apply it before sending, the completion service again before storing, so both agree.
"""

from __future__ import annotations

import json
from typing import Any

# Room left in a message for the envelope (ids, link, error text) around a stored result.
_ENVELOPE_MAX = 64 * 1024
_SCALAR_TEXT_MAX = 1024


def result_limit(max_message_bytes: int) -> int:
    """The largest stored result (JSON bytes) that still travels in one message."""
    return max_message_bytes - min(_ENVELOPE_MAX, max_message_bytes // 4)


def workflow_result_message_bytes(max_message_bytes: int, max_workflow_result_bytes: int) -> int:
    """The message limit of the one call that carries a workflow's result (the coordinator's
    SubmitResult to the completion service): room for the largest result stored whole, its
    error and the envelope, and never less than the ordinary limit."""
    return max(max_message_bytes, max_workflow_result_bytes + _ENVELOPE_MAX + error_limit(max_message_bytes))


def error_limit(max_message_bytes: int) -> int:
    """The largest error text kept with a result."""
    return min(_ENVELOPE_MAX // 2, max_message_bytes // 8)


def clip_error(error: str, max_message_bytes: int) -> str:
    """The error text, its head only when it is longer than `error_limit`."""
    limit = error_limit(max_message_bytes)
    return error if len(error) <= limit else error[:limit] + "… [truncated]"


def fit_result(result_json: bytes, limit: int) -> bytes:
    """`result_json` unchanged when it fits in `limit` bytes, else its truncated form.

    Invalid JSON (or JSON that is not an object) is kept as text under `data`, so what is stored
    is always a JSON object.
    """
    if len(result_json) <= limit:
        return result_json
    try:
        value: Any = json.loads(result_json)
    except ValueError:
        value = {"data": result_json.decode("utf-8", "replace")}
    if not isinstance(value, dict):
        value = {"data": value}
    return _truncated(value, len(result_json), limit)


def _truncated(value: dict[str, Any], original_bytes: int, limit: int) -> bytes:
    kept: dict[str, Any] = {"truncated": True, "original_bytes": original_bytes}
    for key, item in value.items():
        if key in ("stdout", "stderr"):
            continue
        if (
            item is None
            or isinstance(item, (bool, int, float))
            or (isinstance(item, str) and len(item) <= _SCALAR_TEXT_MAX)
        ):
            kept[key] = item
    texts = {k: value[k] for k in ("stdout", "stderr") if isinstance(value.get(k), str)}
    if "data" not in kept and "data" in value and not texts:
        texts["data"] = value["data"] if isinstance(value["data"], str) else json.dumps(value["data"])
    # JSON escaping can grow text up to 6x; halve the budget until the encoding fits.
    budget = max(0, limit - len(_encode(kept)) - 64) // max(1, len(texts))
    while True:
        for key, text in texts.items():
            kept[key] = text[:budget]
        encoded = _encode(kept)
        if len(encoded) <= limit or budget == 0:
            return encoded
        budget //= 2


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()
