"""Client bearer tokens: how they are made, stored (hashed) and sent.

A token is `attune_` plus 32 random bytes (url-safe base64), so a leaked one is recognizable by
secret scanners. Only its sha256 is stored (the scheduler's `api_tokens` table): a token is shown
once, at creation, and can never be read back. Clients send it as `authorization: Bearer <token>`
metadata on every call (`bearer_metadata`, added by the channel).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attune.config import default_home
from attune.security.policy import Role

TOKEN_PREFIX = "attune_"
METADATA_KEY = "authorization"
SCHEME = "Bearer "
#: The file `attune up` writes the bootstrap admin token to, and the CLI reads when no token is given.
ADMIN_TOKEN_FILE = "admin.token"


@dataclass(frozen=True, kw_only=True)
class TokenRecord:
    """A stored token, as the verifier and ListTokens see it (never the token itself)."""

    name: str
    role: Role
    created_at: float
    created_by: str
    revoked_at: float | None


def new_token() -> str:
    """A fresh random token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What is stored of a token: its sha256, hex (tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_of(metadata: Any) -> str | None:
    """The token of an `authorization: Bearer <token>` entry in call metadata; None without one."""
    for key, value in metadata or ():
        if key == METADATA_KEY and isinstance(value, str) and value.startswith(SCHEME):
            return value[len(SCHEME) :].strip() or None
    return None


def read_token_file(path: Path) -> str:
    """The token a file holds (surrounding whitespace ignored); an error names the file."""
    try:
        token = path.read_text().strip()
    except OSError as err:
        raise ValueError(f"cannot read the token file {path}: {err.strerror}") from err
    if not token:
        raise ValueError(f"the token file {path} is empty")
    return token


def client_token(explicit: str | None = None) -> str | None:
    """The token a client sends: `explicit` (--token), else ATTUNE_TOKEN, else the bootstrap admin
    token `attune up` left in $ATTUNE_HOME/admin.token, else none."""
    token = explicit or os.environ.get("ATTUNE_TOKEN")
    if token:
        return token.strip()
    path = default_home() / ADMIN_TOKEN_FILE
    return read_token_file(path) if path.is_file() else None


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """The call metadata carrying `token` (`attune.grpcutil.channel.open_channel` adds it to every call)."""
    return ((METADATA_KEY, SCHEME + token),)
