"""Who is calling, by certificate: the service identity a verified client certificate names.

A certificate made by `attune tls init` carries one SAN URI, ``spiffe://attune/<identity>``.
gRPC verifies the client's certificate against the CA during the handshake (servers require one,
see `attune.security.tls.ClientAuth`) and puts a certificate with exactly one SPIFFE URI in the
call's auth context under ``peer_spiffe_id``; the PEM (``x509_pem_cert``) is read only when that
key is absent. Plaintext calls have no certificate, hence no identity.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from cryptography import x509

from attune.security.tls import SPIFFE_PREFIX

_SPIFFE_KEY = "peer_spiffe_id"
_PEM_KEY = "x509_pem_cert"


def peer_identity(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The identity (``worker``, ``scheduler``, ``cli``, …) of the caller's verified certificate;
    None without a certificate or when it names no ``spiffe://attune/`` identity."""
    return identity_of_auth_context(context.auth_context())


def identity_of_auth_context(auth: Mapping[str, Iterable[bytes]]) -> str | None:
    """The identity in a gRPC auth context (``context.auth_context()``)."""
    spiffe = next(iter(auth.get(_SPIFFE_KEY, ())), None)
    if spiffe is not None:
        return identity_of_uri(spiffe.decode("ascii", "replace"))
    pem = next(iter(auth.get(_PEM_KEY, ())), None)
    return _identity_of_pem(pem) if pem is not None else None


def identity_of_uri(uri: str) -> str | None:
    """``worker`` for ``spiffe://attune/worker``; None for any other URI."""
    if not uri.startswith(SPIFFE_PREFIX):
        return None
    name = uri[len(SPIFFE_PREFIX) :]
    return name if name and "/" not in name else None


# Parsing a certificate costs ~35 us (measured here); a server sees the same few certificates over and over.
@functools.lru_cache(maxsize=64)
def _identity_of_pem(pem: bytes) -> str | None:
    try:
        cert = x509.load_pem_x509_certificate(pem)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    identities = {identity_of_uri(uri) for uri in names.get_values_for_type(x509.UniformResourceIdentifier)}
    identities.discard(None)
    # A certificate naming two identities is not one this project made: it names nobody.
    return identities.pop() if len(identities) == 1 else None
