"""Reading a request: its JSON body and its query parameters, each checked and limited.

A body must be JSON (``Content-Type: application/json``): a form posted by another site cannot
have that type without the browser asking first, which the console never allows. Its size is
capped by the application (`ConsoleSettings.max_body_bytes`).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from attune_services.console.appkeys import SETTINGS
from attune_services.console.errors import ApiError, invalid

#: The longest string accepted in a field the console itself reads (refs, names, ids).
MAX_NAME_CHARS = 255


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; INVALID_ARGUMENT for anything else."""
    if request.content_type != "application/json":
        raise ApiError("INVALID_ARGUMENT", "the request body must be JSON (Content-Type: application/json)")
    try:
        text = await request.text()
    except web.HTTPRequestEntityTooLarge as err:
        limit = request.app[SETTINGS].max_body_bytes
        raise ApiError("INVALID_ARGUMENT", f"the request body is larger than {limit} bytes") from err
    try:
        body = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError) as err:
        raise ApiError("INVALID_ARGUMENT", "the request body is not valid JSON") from err
    if not isinstance(body, dict):
        raise ApiError("INVALID_ARGUMENT", "the request body must be a JSON object")
    return body


def string_field(body: dict[str, Any], name: str, *, required: bool = True, limit: int = MAX_NAME_CHARS) -> str:
    """`body[name]` as a string within `limit` characters ("" when absent and not required)."""
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise invalid(name, "is required")
        return ""
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    if len(value) > limit:
        raise invalid(name, f"must be at most {limit} characters")
    return value


def object_field(body: dict[str, Any], name: str) -> dict[str, Any]:
    """`body[name]` as a JSON object ({} when absent)."""
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(name, "must be a JSON object")
    return value


def path_part(request: web.Request, name: str) -> str:
    """A path parameter (a ref or an id), limited like the API's names."""
    value = request.match_info[name]
    if not value or len(value) > MAX_NAME_CHARS:
        raise invalid(name, f"must be 1 to {MAX_NAME_CHARS} characters")
    return value
