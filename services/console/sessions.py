"""Signed-in sessions, in memory: a random id in the `attune_console` cookie maps to the user's
token, what the platform said about it (name, role) and the session's CSRF token.

Nothing is written anywhere: a restarted console forgets every session and users sign in again.
A session ends at its expiry (ATTUNE_CONSOLE_SESSION_TTL after sign-in), at sign-out, or when the
scheduler refuses its token (revoked); at most `max_sessions` are kept, the oldest dropped first.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

COOKIE_NAME = "attune_console"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True, kw_only=True)
class Identity:
    """Who a token is, as the scheduler's WhoAmI says."""

    name: str
    role: str
    auth_enabled: bool


@dataclass(frozen=True, kw_only=True)
class Session:
    """One signed-in browser."""

    id: str
    #: The user's bearer token; None when the platform runs without authentication.
    token: str | None
    identity: Identity
    csrf_token: str
    expires_at: float

    def csrf_matches(self, given: str | None) -> bool:
        """Whether `given` is this session's CSRF token (compared in constant time)."""
        return given is not None and hmac.compare_digest(given.encode(), self.csrf_token.encode())

    def json(self) -> dict[str, object]:
        """The body of GET /api/session."""
        return {**self.json_of(self.identity), "csrf_token": self.csrf_token}

    @staticmethod
    def json_of(identity: Identity) -> dict[str, object]:
        """An identity as GET /api/session shows it (without the CSRF token)."""
        return {"name": identity.name, "role": identity.role, "auth_enabled": identity.auth_enabled}


class SessionStore:
    """The sessions of this console process."""

    def __init__(self, *, ttl: float, max_sessions: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    @property
    def ttl(self) -> float:
        """How long a session lasts, in seconds."""
        return self._ttl

    def create(self, token: str | None, identity: Identity) -> Session:
        """A new session for `token`, with fresh random id and CSRF token."""
        self._drop_expired()
        while len(self._sessions) >= self._max:
            self._sessions.popitem(last=False)
        session = Session(
            id=secrets.token_urlsafe(32),
            token=token,
            identity=identity,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=self._clock() + self._ttl,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id; None for an unknown or expired one."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[session_id]
            return None
        return session

    def delete(self, session_id: str | None) -> None:
        """Ends a session (sign-out, or its token refused)."""
        if session_id:
            self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _drop_expired(self) -> None:
        now = self._clock()
        # Sessions are kept in creation order and share one ttl, so the expired ones come first.
        while self._sessions:
            first = next(iter(self._sessions.values()))
            if first.expires_at > now:
                return
            self._sessions.popitem(last=False)
