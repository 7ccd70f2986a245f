"""Making TLS material: a certificate authority and a certificate per identity (`attune tls init`).

EC P-256 keys; the authority is valid for ten years, each certificate for one. Every certificate
names its identity in one SAN URI, ``spiffe://attune/<identity>`` (what authorization of internal
calls reads, see :mod:`attune.security.identity`), plus the names and addresses its peers may
dial it by. The folder gets ``ca.pem``, ``ca.key`` and ``<identity>.pem`` / ``<identity>.key``;
keys are written with mode 0600. ``ca.key`` only issues certificates: keep it out of what the
services mount (docs/operations.md, TLS).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from attune.security.tls import IDENTITIES, SPIFFE_PREFIX, TlsError

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
# Certificates are valid from a little before they are made, so a peer whose clock is slightly
# behind does not refuse a fresh one.
_CLOCK_SKEW = datetime.timedelta(minutes=5)


def init_material(folder: Path, *, hosts: Sequence[str] = (), force: bool = False) -> list[Path]:
    """Writes a new authority and a certificate per identity into `folder`; returns the files written.

    Each certificate is valid for its SPIFFE URI, ``localhost``, its identity name, ``attune-<identity>``,
    every name or address in `hosts`, 127.0.0.1 and ::1. An existing ``ca.pem`` is replaced only
    with `force` (replacing it invalidates every certificate it signed).
    """
    if (folder / "ca.pem").exists() and not force:
        raise TlsError(f"{folder / 'ca.pem'} exists; pass --force to replace the authority and every certificate")
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _authority(ca_key)
    written = [_write(folder / "ca.key", _key_pem(ca_key), private=True), _write(folder / "ca.pem", _cert_pem(ca_cert))]
    for identity in IDENTITIES:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf(identity, key, ca_cert, ca_key, hosts)
        written.append(_write(folder / f"{identity}.key", _key_pem(key), private=True))
        written.append(_write(folder / f"{identity}.pem", _cert_pem(cert)))
    return written


def _authority(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "attune"), x509.NameAttribute(NameOID.COMMON_NAME, "attune CA")]
    )
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf(
    identity: str,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: Sequence[str],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "attune"), x509.NameAttribute(NameOID.COMMON_NAME, identity)]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + LEAF_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        # Every service both serves and calls other services, so each certificate does both.
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(_alt_names(identity, hosts)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """Signatures only (EC keys sign the TLS handshake); the authority also signs certificates."""
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def _alt_names(identity: str, hosts: Sequence[str]) -> list[x509.GeneralName]:
    # The one URI names the identity (gRPC exposes a certificate with exactly one SPIFFE URI as the
    # peer's SPIFFE id); the DNS names and addresses are those its peers may dial it by.
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(SPIFFE_PREFIX + identity)]
    dns: list[str] = []
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for host in ("localhost", identity, f"attune-{identity}", *hosts, "127.0.0.1", "::1"):
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            if host and host not in dns:
                dns.append(host)
        else:
            if ip not in ips:
                ips.append(ip)
    names += [x509.DNSName(name) for name in dns]
    names += [x509.IPAddress(ip) for ip in ips]
    return names


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, *, private: bool = False) -> Path:
    """Writes `data`; a private key is created with mode 0600 (and an existing file narrowed to it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as file:
        if private:
            os.fchmod(fd, 0o600)
        file.write(data)
    return path
