"""`attune tls init` and loading TLS material: a valid chain, the identities and hosts each
certificate names, private keys readable only by their owner, and errors that name the file."""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from attune.config import Settings
from attune.security.certificates import init_material
from attune.security.identity import identity_of_auth_context, identity_of_uri
from attune.security.tls import IDENTITIES, TlsError, load_material, tls_configured
from attune_services.cli.main import run


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tls")
    init_material(folder, hosts=["scheduler.example.com", "10.0.0.5"])
    return folder


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_every_certificate_is_signed_by_the_ca_and_names_its_identity(material: Path) -> None:
    ca = _cert(material / "ca.pem")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for identity in IDENTITIES:
        cert = _cert(material / f"{identity}.pem")
        cert.verify_directly_issued_by(ca)
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"spiffe://attune/{identity}"]
        assert san.get_values_for_type(x509.DNSName) == [
            "localhost",
            identity,
            f"attune-{identity}",
            "scheduler.example.com",
        ]
        assert san.get_values_for_type(x509.IPAddress) == [
            ipaddress.ip_address("10.0.0.5"),
            ipaddress.ip_address("127.0.0.1"),
            ipaddress.ip_address("::1"),
        ]
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]


def test_validity_is_ten_years_for_the_ca_and_one_for_certificates(material: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca = _cert(material / "ca.pem")
    leaf = _cert(material / "worker.pem")
    assert ca.not_valid_before_utc <= now <= ca.not_valid_after_utc
    assert (ca.not_valid_after_utc - now).days in range(3640, 3651)
    assert (leaf.not_valid_after_utc - now).days in range(360, 366)


def test_private_keys_are_readable_by_their_owner_only(material: Path) -> None:
    for name in ["ca", *IDENTITIES]:
        assert stat.S_IMODE((material / f"{name}.key").stat().st_mode) == 0o600, name
        assert stat.S_IMODE((material / f"{name}.pem").stat().st_mode) == 0o644, name


def test_an_existing_ca_is_kept_unless_forced(tmp_path: Path) -> None:
    init_material(tmp_path)
    first = (tmp_path / "ca.pem").read_bytes()
    with pytest.raises(TlsError, match=r"ca\.pem exists; pass --force"):
        init_material(tmp_path)
    assert (tmp_path / "ca.pem").read_bytes() == first
    init_material(tmp_path, force=True)
    assert (tmp_path / "ca.pem").read_bytes() != first
    _cert(tmp_path / "worker.pem").verify_directly_issued_by(_cert(tmp_path / "ca.pem"))


def test_a_key_file_left_world_readable_is_narrowed_when_forced(tmp_path: Path) -> None:
    init_material(tmp_path)
    (tmp_path / "worker.key").chmod(0o644)
    init_material(tmp_path, force=True)
    assert stat.S_IMODE((tmp_path / "worker.key").stat().st_mode) == 0o600


def test_the_command_writes_the_material_and_lists_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "tls"
    assert run(["tls", "init", str(folder), "--host", "attune.internal"]) == 0
    out = capsys.readouterr()
    assert out.out.split() == [str(folder / "ca.key"), str(folder / "ca.pem")] + [
        str(folder / f"{identity}.{ext}") for identity in IDENTITIES for ext in ("key", "pem")
    ]
    assert f"ATTUNE_TLS_DIR={folder}" in out.err
    san = _cert(folder / "cli.pem").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "attune.internal" in san.get_values_for_type(x509.DNSName)
    assert run(["tls", "init", str(folder)]) == 1
    assert "pass --force" in capsys.readouterr().err


def test_loading_picks_the_identity_files_of_the_folder(material: Path) -> None:
    assert load_material(Settings()) is None
    assert not tls_configured(Settings())
    loaded = load_material(Settings(tls_dir=str(material), identity="coordinator"))
    assert loaded is not None
    assert loaded.ca == (material / "ca.pem").read_bytes()
    assert loaded.cert == (material / "coordinator.pem").read_bytes()
    assert loaded.key == (material / "coordinator.key").read_bytes()


def test_explicit_paths_override_the_folder(material: Path) -> None:
    settings = Settings(
        tls_dir=str(material),
        identity="coordinator",
        tls_cert=str(material / "worker.pem"),
        tls_key=str(material / "worker.key"),
    )
    loaded = load_material(settings)
    assert loaded is not None and loaded.cert == (material / "worker.pem").read_bytes()
    alone = load_material(
        Settings(tls_ca=str(material / "ca.pem"), tls_cert=str(material / "cli.pem"), tls_key=str(material / "cli.key"))
    )
    assert alone is not None and alone.key == (material / "cli.key").read_bytes()


def test_a_missing_file_is_named(material: Path, tmp_path: Path) -> None:
    with pytest.raises(TlsError, match=r"TLS file .*nobody\.pem does not exist"):
        load_material(Settings(tls_dir=str(material), identity="nobody"))
    with pytest.raises(TlsError, match=r"ATTUNE_TLS_KEY is not set"):
        load_material(Settings(tls_ca=str(material / "ca.pem"), tls_cert=str(material / "cli.pem")))
    with pytest.raises(TlsError, match=str(tmp_path / "ca.pem")):
        load_material(Settings(tls_dir=str(tmp_path)))


def test_settings_come_from_the_environment(material: Path) -> None:
    settings = Settings.from_env({"ATTUNE_TLS_DIR": str(material), "ATTUNE_INSECURE": "1"})
    assert settings.tls_dir == str(material) and settings.insecure
    assert settings.identity == "cli"  # a service's main replaces it with the service's name


def test_identities_are_read_from_spiffe_uris_and_certificates(material: Path) -> None:
    assert identity_of_uri("spiffe://attune/worker") == "worker"
    assert identity_of_uri("spiffe://other/worker") is None
    assert identity_of_uri("spiffe://attune/") is None
    assert identity_of_uri("spiffe://attune/a/b") is None
    assert identity_of_auth_context({"peer_spiffe_id": [b"spiffe://attune/completion"]}) == "completion"
    # Without the SPIFFE key, the PEM of the verified certificate is read.
    pem = (material / "coordinator.pem").read_bytes()
    assert identity_of_auth_context({"x509_pem_cert": [pem]}) == "coordinator"
    assert identity_of_auth_context({"x509_pem_cert": [b"not a certificate"]}) is None
    assert identity_of_auth_context({"transport_security_type": [b"insecure"]}) is None
