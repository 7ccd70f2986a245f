"""/api/session: sign in with a token, see who is signed in, sign out.

Signing in asks the scheduler who the token is (TokenService.WhoAmI): a token it refuses is 401
and nothing is kept. The session cookie is HttpOnly (no script reads it), SameSite=Strict (no
other site's page sends it) and Secure when the console is served over HTTPS. Signing in is
refused from a page of another origin (its Origin header), so no site can sign a browser in as
someone else. With authentication off there is nothing to sign in with: GET makes a session of
its own, so the pages get a CSRF token all the same.
"""

from __future__ import annotations

from aiohttp import web

from attune_services.console.appkeys import SCHEDULER, SESSIONS
from attune_services.console.auth import bearer_token, checked_token, cookie_session
from attune_services.console.bodies import json_body
from attune_services.console.errors import ApiError, forbidden, unauthenticated
from attune_services.console.sessions import COOKIE_NAME, CSRF_HEADER, Identity, Session

routes = web.RouteTableDef()


@routes.get("/api/session")
async def get_session(request: web.Request) -> web.Response:
    """The signed-in user: {name, role, auth_enabled, csrf_token}; 401 when nobody is."""
    scheduler = request.app[SCHEDULER]
    token = bearer_token(request)
    if token is not None:
        identity = await scheduler.whoami(token)
        return web.json_response({**Session.json_of(identity), "csrf_token": None})
    session = cookie_session(request)
    if session is not None:
        if session.token is not None:
            await _still_valid(request, session)
        return web.json_response(session.json())
    anonymous = await _identity_without_token(request)
    if anonymous is None:
        raise unauthenticated("not signed in: sign in with a token")
    session = request.app[SESSIONS].create(None, anonymous)
    response = web.json_response(session.json())
    _set_cookie(request, response, session)
    return response


async def _still_valid(request: web.Request, session: Session) -> None:
    """Asks the scheduler again who the session's token is: a revoked or expired token ends the
    session (401), so a page that loads never shows a session the platform no longer honours."""
    try:
        await request.app[SCHEDULER].whoami(session.token)
    except ApiError as err:
        if err.code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            request.app[SESSIONS].delete(session.id)
            raise unauthenticated("the session's token is no longer accepted: sign in again") from err
        raise


async def _identity_without_token(request: web.Request) -> Identity | None:
    """The identity of a caller without a token when the platform runs without authentication;
    None when it checks tokens."""
    try:
        identity = await request.app[SCHEDULER].whoami(None)
    except ApiError as err:
        if err.code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return None
        raise
    return None if identity.auth_enabled else identity


@routes.post("/api/session")
async def sign_in(request: web.Request) -> web.Response:
    """Signs in with {"token"}: sets the session cookie and answers as GET does."""
    _check_origin(request)
    body = await json_body(request)
    token = checked_token(body.get("token"))
    try:
        identity = await request.app[SCHEDULER].whoami(token)
    except ApiError as err:
        if err.code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            raise unauthenticated("the token was refused: check it, or ask an admin for a new one") from err
        raise
    old = cookie_session(request)
    if old is not None:
        request.app[SESSIONS].delete(old.id)
    session = request.app[SESSIONS].create(token if identity.auth_enabled else None, identity)
    response = web.json_response(session.json())
    _set_cookie(request, response, session)
    return response


@routes.delete("/api/session")
async def sign_out(request: web.Request) -> web.Response:
    """Ends the cookie session (it needs the CSRF header like any change); 204."""
    session = cookie_session(request)
    if session is not None:
        if not session.csrf_matches(request.headers.get(CSRF_HEADER)):
            raise forbidden("CSRF token missing or wrong")
        request.app[SESSIONS].delete(session.id)
    response = web.Response(status=204)
    response.del_cookie(COOKIE_NAME, path="/")
    return response


def _check_origin(request: web.Request) -> None:
    """Refuses a sign-in posted by a page of another origin. A request without Origin comes
    from a program, not a browser's page (browsers send it with every POST)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    own = f"{_scheme(request)}://{_forwarded(request, 'X-Forwarded-Host') or request.host}"
    if origin != own:
        raise forbidden(f"sign-in from another origin ({origin[:100]}) is refused")


def _forwarded(request: web.Request, header: str) -> str:
    """The first value of an X-Forwarded-* header a TLS-terminating proxy sets ("" without one).
    A page of another site cannot set it (a custom header needs a CORS preflight, never allowed)."""
    return request.headers.get(header, "").split(",")[0].strip()


def _scheme(request: web.Request) -> str:
    """How the browser reached the console: https behind a TLS-terminating proxy that says so."""
    return "https" if request.secure or _forwarded(request, "X-Forwarded-Proto") == "https" else request.scheme


def _set_cookie(request: web.Request, response: web.Response, session: Session) -> None:
    response.set_cookie(
        COOKIE_NAME,
        session.id,
        max_age=int(request.app[SESSIONS].ttl),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=_scheme(request) == "https",
    )
