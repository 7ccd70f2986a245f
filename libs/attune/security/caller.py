"""The authenticated caller of the RPC being served, for attribution.

The authorization interceptor (`attune.security.authz`) sets it before a servicer method runs;
gRPC runs each call in its own task, so the value never leaks between calls. With security off
nobody is authenticated and `current()` is None.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from attune.security.policy import Role


@dataclass(frozen=True, kw_only=True)
class Caller:
    """Who made a call: a client token (by name, with its role) or a service (by identity)."""

    #: The token's name, or the service identity ("worker", "coordinator", ...).
    name: str
    #: The token's role; None for a service.
    role: Role | None = None

    @property
    def is_service(self) -> bool:
        """True when the caller proved a service identity rather than presenting a token."""
        return self.role is None


_current: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("attune_caller", default=None)


def current() -> Caller | None:
    """The caller of the RPC being served; None when security is off."""
    return _current.get()


def token_name() -> str:
    """The name of the client token behind the current call: what records keep as who requested or
    changed them. Empty when security is off or the caller is a service (a workflow's children are
    requested by the coordinator: their parent execution names the client)."""
    caller = _current.get()
    return "" if caller is None or caller.is_service else caller.name


def set_current(caller: Caller | None) -> contextvars.Token[Caller | None]:
    """Makes `caller` the current caller; pass the returned token to `reset`."""
    return _current.set(caller)


def reset(token: contextvars.Token[Caller | None]) -> None:
    """Restores the caller from before `set_current`."""
    _current.reset(token)
