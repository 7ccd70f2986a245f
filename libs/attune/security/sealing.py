"""Secrets sealed at rest: AES-GCM envelopes under a key ring (docs/architecture.md, Secrets).

A sealed value is the JSON object ``{"$sealed": "v1:<key id>:<base64 nonce + ciphertext>"}``: it
sits wherever the plain JSON value sat (a parameter, a state entry, a task run's request), so a
stored document keeps its shape and a reader recognises what it must open. The key id is derived
from the key itself (the first 8 hex digits of a SHA-256 of it), so no id has to be configured and
two processes given the same key agree on it.

Keys come from ``ATTUNE_SECRET_KEY`` (base64 of 32 bytes; several separated by commas) or the file
``ATTUNE_SECRET_KEY_FILE`` (one base64 key per line; default ``$ATTUNE_HOME/secret.key`` when that
file exists). The first key is the newest: it seals; the others only open what they sealed, until
``attune secrets rotate`` has re-sealed everything under the newest and they can be dropped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from attune.config import Settings, default_home

#: The key of the JSON object that marks a sealed value.
SEALED: Final = "$sealed"
_VERSION: Final = "v1"
_NONCE_BYTES: Final = 12
KEY_BYTES: Final = 32
#: Where `attune up` keeps its key unless ATTUNE_SECRET_KEY_FILE says otherwise.
DEFAULT_KEY_FILE_NAME: Final = "secret.key"


class SecretKeyError(ValueError):
    """A key is missing, malformed, or does not open a sealed value."""


@dataclass(frozen=True)
class SecretKey:
    """One AES-256 key and its id."""

    id: str
    material: bytes

    @classmethod
    def from_base64(cls, text: str, *, where: str) -> SecretKey:
        """Decodes one base64 key; `where` names its source in errors (never the key itself)."""
        try:
            material = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as err:
            raise SecretKeyError(f"{where}: a secret key must be base64") from err
        if len(material) != KEY_BYTES:
            raise SecretKeyError(f"{where}: a secret key must be {KEY_BYTES} bytes, got {len(material)}")
        return cls(key_id(material), material)


def key_id(material: bytes) -> str:
    """The id stored with every value a key seals (not secret: it only names the key)."""
    return hashlib.sha256(b"attune-secret-key:" + material).hexdigest()[:8]


def new_key_text() -> str:
    """A fresh random key, base64 (what a key file holds, one per line)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def is_sealed(value: Any) -> bool:
    """True for a sealed envelope (cheap: no decryption)."""
    return type(value) is dict and len(value) == 1 and SEALED in value


class Sealer:
    """Seals JSON values under the newest key and opens them under any key of the ring."""

    def __init__(self, keys: Iterable[SecretKey]) -> None:
        ring = list(keys)
        if not ring:
            raise SecretKeyError("a sealer needs at least one secret key")
        self.newest = ring[0]
        self._by_id: dict[str, AESGCM] = {}
        for key in ring:
            self._by_id.setdefault(key.id, AESGCM(key.material))
        self._newest = self._by_id[self.newest.id]

    @property
    def key_ids(self) -> list[str]:
        """Ids of the ring's keys, newest first."""
        return list(self._by_id)

    def seal(self, value: Any) -> dict[str, str]:
        """The envelope of a JSON value, sealed under the newest key (a fresh nonce each time)."""
        nonce = os.urandom(_NONCE_BYTES)
        plain = json.dumps(value, separators=(",", ":")).encode()
        sealed = self._newest.encrypt(nonce, plain, None)
        return {SEALED: f"{_VERSION}:{self.newest.id}:{base64.b64encode(nonce + sealed).decode()}"}

    def unseal(self, envelope: Mapping[str, Any]) -> Any:
        """The JSON value inside an envelope; SecretKeyError naming the key id it needs."""
        token = envelope.get(SEALED)
        if not isinstance(token, str):
            raise SecretKeyError(f"not a sealed value (no {SEALED!r} string)")
        version, _, rest = token.partition(":")
        kid, _, body = rest.partition(":")
        if version != _VERSION or not kid or not body:
            raise SecretKeyError(f"sealed value of an unknown format {version!r} (expected {_VERSION})")
        aead = self._by_id.get(kid)
        if aead is None:
            raise SecretKeyError(
                f"a sealed value needs secret key {kid!r}, which is not configured "
                f"(configured: {', '.join(self._by_id)}); add it to ATTUNE_SECRET_KEY or ATTUNE_SECRET_KEY_FILE"
            )
        try:
            raw = base64.b64decode(body, validate=True)
            plain = aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], None)
        except (binascii.Error, ValueError, InvalidTag) as err:
            raise SecretKeyError(f"a value sealed under key {kid!r} is corrupt or was altered") from err
        return json.loads(plain)

    def open(self, value: Any) -> Any:
        """`value` itself, or what it seals when it is an envelope."""
        return self.unseal(value) if is_sealed(value) else value

    def open_all(self, value: Any) -> Any:
        """`value` with every envelope inside it (at any depth) opened."""
        if is_sealed(value):
            return self.open_all(self.unseal(value))
        if type(value) is dict:
            return {k: self.open_all(v) for k, v in value.items()}
        if type(value) is list:
            return [self.open_all(v) for v in value]
        return value

    def reseal(self, value: Any) -> tuple[Any, int]:
        """`value` with every envelope not sealed under the newest key sealed again under it;
        also how many were (what `attune secrets rotate` does to each stored document)."""
        if is_sealed(value):
            if _key_of(value) == self.newest.id:
                return value, 0
            inner, count = self.reseal(self.unseal(value))
            return self.seal(inner), count + 1
        if type(value) is dict:
            count = 0
            out = {}
            for k, v in value.items():
                out[k], n = self.reseal(v)
                count += n
            return out, count
        if type(value) is list:
            items = [self.reseal(v) for v in value]
            return [v for v, _ in items], sum(n for _, n in items)
        return value, 0


def _key_of(envelope: Mapping[str, Any]) -> str:
    parts = str(envelope[SEALED]).split(":", 2)
    return parts[1] if len(parts) == 3 else ""


def default_key_file() -> Path:
    """`$ATTUNE_HOME/secret.key`: the key file `attune up` creates."""
    return default_home() / DEFAULT_KEY_FILE_NAME


def keys_from_settings(settings: Settings) -> list[SecretKey]:
    """The key ring the settings name, newest first: ATTUNE_SECRET_KEY's keys, then the key
    file's (ATTUNE_SECRET_KEY_FILE, or $ATTUNE_HOME/secret.key when it exists). May be empty."""
    keys = [
        SecretKey.from_base64(text, where=f"ATTUNE_SECRET_KEY, key {n}")
        for n, text in enumerate(settings.secret_key.split(","), 1)
        if text.strip()
    ]
    path = Path(settings.secret_key_file) if settings.secret_key_file else default_key_file()
    if settings.secret_key_file or (not keys and path.is_file()):
        try:
            lines = path.read_text().splitlines()
        except OSError as err:
            raise SecretKeyError(f"ATTUNE_SECRET_KEY_FILE {path}: cannot read it ({err.strerror})") from err
        keys += [
            SecretKey.from_base64(line, where=f"{path}, line {n}")
            for n, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    return keys


def sealer_from_settings(settings: Settings) -> Sealer | None:
    """The sealer of the configured key ring; None when no key is configured (a service then
    refuses to store secret values, see `require`)."""
    keys = keys_from_settings(settings)
    return Sealer(keys) if keys else None


def require(sealer: Sealer | None, what: str) -> Sealer:
    """`sealer`, or the error that says how to configure one (`what` needs it)."""
    if sealer is None:
        raise SecretKeyError(
            f"{what}: secret values are sealed at rest and no secret key is configured; set ATTUNE_SECRET_KEY "
            f"(base64 of {KEY_BYTES} random bytes) or ATTUNE_SECRET_KEY_FILE, or create {default_key_file()}"
        )
    return sealer


def ensure_key_file(path: Path) -> Path:
    """Creates a key file holding one fresh key, readable only by its owner (mode 0600), unless
    one exists; returns its path. What `attune up` calls on its first start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as out:
        out.write(new_key_text() + "\n")
    return path


def seal_parameters(sealer: Sealer, params: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Parameters as stored: each named (secret) one sealed on its own, the rest as given, so the
    stored object still says which parameters it holds."""
    secret = set(names)
    return {name: sealer.seal(value) if name in secret else value for name, value in params.items()}


def open_parameters(sealer: Sealer | None, params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters with their sealed values opened (in memory only); SecretKeyError when one is
    sealed and no key, or not its key, is configured."""
    if not any(is_sealed(value) for value in params.values()):
        return dict(params)
    ring = require(sealer, "opening secret parameters")
    return {name: ring.open(value) for name, value in params.items()}
