"""TLS for servers and channels: which material a process uses, the gRPC credentials made from it,
and the refusal to serve plaintext beyond loopback.

Security is on when any TLS setting is given (`tls_dir`, or `tls_ca` / `tls_cert` / `tls_key`):
every server then uses TLS and every channel mutual TLS with the process's own certificate, the
one of `settings.identity` (a service's main sets it to the service's name). Off, everything is
plaintext, allowed only on loopback addresses unless `insecure` is set. The material is made by
:mod:`attune.security.certificates`; see docs/operations.md, TLS.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import grpc

from attune.config import ConfigError, Settings

log = logging.getLogger(__name__)

#: Every identity that gets a certificate: the four services and the CLI.
IDENTITIES = ("scheduler", "coordinator", "completion", "worker", "cli")
#: The SAN URI of an identity is this prefix and its name: ``spiffe://attune/worker``.
SPIFFE_PREFIX = "spiffe://attune/"


class TlsError(ConfigError):
    """TLS material is missing or unreadable, or would replace an authority; the message names the file."""


class InsecureListenError(ConfigError):
    """A server would serve plaintext on an address other processes can reach."""


class ClientAuth(StrEnum):
    """Whether a server demands a certificate from its clients (a `ServiceApp`'s `client_auth`).

    gRPC Python can only require client certificates or not ask for them: there is no "request
    but do not require". A server that must tell its internal callers apart therefore requires
    them, of clients too (the CLI presents the `cli` certificate, alongside its token).
    """

    #: The handshake fails without a certificate signed by the CA: every server with internal callers.
    REQUIRED = "required"
    #: No client certificate is asked for: a server whose only service is health (the worker's).
    NONE = "none"


def tls_configured(settings: Settings) -> bool:
    """True when any TLS setting is given."""
    return bool(settings.tls_dir or settings.tls_ca or settings.tls_cert or settings.tls_key)


@dataclass(frozen=True)
class TlsMaterial:
    """PEM bytes of the authority and of one identity's certificate and key."""

    ca: bytes
    cert: bytes
    key: bytes


def load_material(settings: Settings) -> TlsMaterial | None:
    """The material of `settings.identity`, None when TLS is not configured.

    Files come from `tls_dir` (``ca.pem``, ``<identity>.pem``, ``<identity>.key``); `tls_ca`,
    `tls_cert` and `tls_key` override each. Raises TlsError naming what is missing.
    """
    if not tls_configured(settings):
        return None
    identity = settings.identity
    folder = Path(settings.tls_dir) if settings.tls_dir else None
    ca = _locate(settings.tls_ca, folder, "ca.pem", "ATTUNE_TLS_CA")
    cert = _locate(settings.tls_cert, folder, f"{identity}.pem", "ATTUNE_TLS_CERT")
    key = _locate(settings.tls_key, folder, f"{identity}.key", "ATTUNE_TLS_KEY")
    return TlsMaterial(ca=_read(ca), cert=_read(cert), key=_read(key))


def _locate(explicit: str, folder: Path | None, name: str, setting: str) -> Path:
    if explicit:
        return Path(explicit)
    if folder is None:
        raise TlsError(f"TLS is configured but {setting} is not set (nor ATTUNE_TLS_DIR, holding {name})")
    return folder / name


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as err:
        raise TlsError(f"TLS file {path} does not exist (`attune tls init DIR` creates the material)") from err
    except OSError as err:
        raise TlsError(f"cannot read TLS file {path}: {err.strerror}") from err


def server_credentials(material: TlsMaterial, client_auth: ClientAuth) -> grpc.ServerCredentials:
    """TLS credentials of a server presenting `material`'s certificate."""
    required = client_auth is ClientAuth.REQUIRED
    return grpc.ssl_server_credentials(
        [(material.key, material.cert)],
        root_certificates=material.ca if required else None,
        require_client_auth=required,
    )


def channel_credentials(material: TlsMaterial) -> grpc.ChannelCredentials:
    """Credentials of a channel that verifies the server against the CA and presents `material`'s
    certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca, private_key=material.key, certificate_chain=material.cert
    )


# --- plaintext only on loopback ----------------------------------------------------------------

_warned_insecure = False


def check_plaintext_listen(address: str, settings: Settings) -> None:
    """Refuses to serve plaintext on a non-loopback `address` unless `settings.insecure` is set,
    which logs a warning (once per process) instead."""
    global _warned_insecure
    if is_loopback(address):
        return
    if not settings.insecure:
        raise InsecureListenError(
            f"refusing to listen on {address} without TLS: anyone who can reach it could call every RPC. "
            "Enable TLS (`attune tls init DIR`, then ATTUNE_TLS_DIR=DIR for every service), "
            "or set ATTUNE_INSECURE=1 to serve plaintext anyway"
        )
    if not _warned_insecure:
        _warned_insecure = True
        log.warning("serving plaintext on %s (ATTUNE_INSECURE=1): no TLS, no authorization", address)


def is_loopback(address: str) -> bool:
    """True for an address only this machine reaches: 127.0.0.0/8, ::1, localhost, a unix socket.
    ``0.0.0.0`` and ``[::]`` listen on every interface: not loopback."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
