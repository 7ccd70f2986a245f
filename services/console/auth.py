"""Who is calling the API, and whether a mutating request may go on.

Two credentials are accepted: the `attune_console` cookie of a signed-in session (sessions.py),
or an ``Authorization: Bearer <token>`` header for scripts. A mutating request (POST, PUT,
DELETE) made with the cookie must carry the session's CSRF token in ``X-CSRF-Token``: the cookie
is sent by the browser whatever page made the request, the header only by the console's own
pages. A bearer request needs none, since no browser adds that header by itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from attune_services.console.appkeys import SCHEDULER, SESSIONS
from attune_services.console.errors import ApiError, forbidden, unauthenticated
from attune_services.console.scheduler import Metadata
from attune_services.console.sessions import COOKIE_NAME, CSRF_HEADER, Session

MUTATING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
#: The longest token accepted from a user (tokens are 50 characters; room for other schemes).
MAX_TOKEN_CHARS = 512
_BEARER = "bearer "
#: Paths that decide the credential themselves (sign-in, sign-out, who am I).
SESSION_PATH = "/api/session"


@dataclass(frozen=True)
class Caller:
    """The credential a request is served with."""

    #: The token forwarded to the scheduler; None with authentication off.
    token: str | None
    #: The cookie session, when the request came with one.
    session: Session | None = None


CALLER_KEY = "attune_console.caller"


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None without one. ApiError for a
    header that is not a usable bearer token."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    if not header.lower().startswith(_BEARER):
        raise unauthenticated("the Authorization header must be 'Bearer <token>'")
    return checked_token(header[len(_BEARER) :].strip())


def checked_token(token: object) -> str:
    """`token` when it can be a token: a non-empty string of printable ASCII within the limit."""
    if not isinstance(token, str) or not token:
        raise unauthenticated("a token is required")
    if len(token) > MAX_TOKEN_CHARS or not token.isascii() or not token.isprintable() or " " in token:
        raise unauthenticated("that is not a valid token")
    return token


def cookie_session(request: web.Request) -> Session | None:
    """The live session the request's cookie names, if any."""
    return request.app[SESSIONS].get(request.cookies.get(COOKIE_NAME))


def resolve_caller(request: web.Request) -> Caller:
    """The request's credential, CSRF-checked for a mutating cookie request; ApiError without one."""
    token = bearer_token(request)
    if token is not None:
        return Caller(token)
    session = cookie_session(request)
    if session is None:
        raise unauthenticated("not signed in (or the session has expired): sign in with a token")
    if request.method in MUTATING and not session.csrf_matches(request.headers.get(CSRF_HEADER)):
        raise forbidden("CSRF token missing or wrong")
    return Caller(session.token, session)


def caller_of(request: web.Request) -> Caller:
    """The caller `auth_middleware` resolved for this request."""
    caller = request.get(CALLER_KEY)
    if not isinstance(caller, Caller):
        raise RuntimeError(f"{request.path}: no caller resolved (route outside /api/?)")
    return caller


def caller_metadata(request: web.Request) -> Metadata:
    """The metadata of a call made on behalf of this request's caller (their bearer token)."""
    return request.app[SCHEDULER].metadata(caller_of(request).token)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolves the caller of every /api/ request but the session's own; a request that fails
    with UNAUTHENTICATED ends its cookie session (its token was revoked or has expired)."""
    if not request.path.startswith("/api/") or request.path == SESSION_PATH:
        return await handler(request)
    caller = resolve_caller(request)
    request[CALLER_KEY] = caller
    try:
        return await handler(request)
    except ApiError as err:
        if err.code == "UNAUTHENTICATED" and caller.session is not None:
            request.app[SESSIONS].delete(caller.session.id)
        raise
