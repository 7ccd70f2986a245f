"""Page tokens of the scheduler's list RPCs: opaque to clients, validated, bound to their filters.

A token is base64url (unpadded) of compact JSON `{"after": <last key>, "filters": <digest>}`:
the key the next page starts after (an id: ids are time-ordered, pages newest first) and a
digest of the list and the filters it was issued for. A token that does not decode, or whose
digest is not that of the request's own list and filters, is INVALID_ARGUMENT naming
`page_token` — before, a bad token silently returned an empty list or the first page.

No HMAC: a token only positions a query its caller may run anyway (any `after` id of that list
and those filters is as good as another), so forging one gains nothing, while a signing key
would have to be shared by every scheduler replica and would void every token when it rotates.
The digest is what makes a token unusable with other filters.

The registry's lists (ListPacks, ListActions) are ordered by ref, and their tokens carry the
last ref (`REF_KEY`) instead of an id.

A children page (GetExecution, WatchExecution: `children.py`) is oldest first, unlike the
newest-first history; its token adds `"oldest_first": true`, and ListExecutions continues such a
token oldest first (`is_oldest_first`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping

from attune.grpcutil.errors import InvalidArgument, Violation

_KEY = re.compile(r"[0-9a-f]{32}")  # attune.ids.new_id
#: The key of a list ordered by ref: a pack's ref, or an action's "<pack>.<name>".
REF_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,510}")
_DIGEST_CHARS = 16


def _digest(listing: str, filters: Mapping[str, str | int]) -> str:
    canonical = json.dumps([listing, sorted(filters.items())], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:_DIGEST_CHARS]


def page_token(after: str, listing: str, filters: Mapping[str, str | int], *, oldest_first: bool = False) -> str:
    """The token of the page after key `after` of `listing` ("executions", "workflow_runs",
    "children") under `filters`; "" when there is no next page (`after` empty)."""
    if not after:
        return ""
    fields: dict[str, str | bool] = {"after": after, "filters": _digest(listing, filters)}
    if oldest_first:
        fields["oldest_first"] = True
    payload = json.dumps(fields, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def is_oldest_first(token: str) -> bool:
    """Whether `token` continues an oldest-first list (a children page); False for no token and
    for one that does not decode (`key_after` refuses that one)."""
    payload = _payload(token) if token else None
    return isinstance(payload, dict) and payload.get("oldest_first") is True


def key_after(token: str, listing: str, filters: Mapping[str, str | int], *, key: re.Pattern[str] = _KEY) -> str:
    """The key a request's `page_token` continues after ("" for no token); raises
    InvalidArgument naming `page_token` for one this list did not issue for these filters.
    `key`: what a key of this list looks like (an id unless said otherwise)."""
    if not token:
        return ""
    decoded = _payload(token)
    payload: dict[str, object] = decoded if isinstance(decoded, dict) else {}
    after = payload.get("after")
    if not isinstance(after, str) or not key.fullmatch(after):
        raise _bad_token("is not a page token this list issued; start again without one")
    if payload.get("filters") != _digest(listing, filters):
        raise _bad_token("was issued for other filters: pass the same filters with it, or start again without one")
    return after


def _payload(token: str) -> object:
    try:
        payload: object = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        return None
    return payload


def _bad_token(description: str) -> InvalidArgument:
    return InvalidArgument(f"page_token: {description}", [Violation("page_token", description)])
