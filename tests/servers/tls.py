"""Test certificates: a CA with a server certificate it signed, and an untrusted self-signed one.

Keys are RSA because vsftpd's default cipher list (ECDHE-RSA-...) needs an RSA certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertFiles:
    cert: Path  # PEM certificate (for a server: its own certificate only)
    key: Path  # PEM private key, unencrypted
    fingerprint: str  # SHA-256 of the DER certificate, colon-separated upper hex


@dataclass(frozen=True)
class TestPki:
    ca: CertFiles  # the test CA: pass ``ca.cert`` as a client's ``ca_file``
    server: CertFiles  # for 127.0.0.1 and localhost, signed by ``ca``
    untrusted: CertFiles  # self-signed, same names: verifies against nothing


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Rokt platform tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])  # fmt: skip


def _server_names() -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName([
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ])  # fmt: skip


def _builder(
    subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
    )


def _leaf(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    return (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_server_names(), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
    )


def _write(directory: Path, stem: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> CertFiles:
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return CertFiles(cert_path, key_path, fingerprint(cert))


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def make_pki(directory: Path) -> TestPki:
    """Write ``ca``, ``server`` and ``untrusted`` certificates and keys into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)

    ca_key = _key()
    ca_name = _name("Rokt test CA")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip

    server_key = _key()
    server_cert = (
        _leaf(_builder(_name("localhost"), ca_name, server_key))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    untrusted_key = _key()
    untrusted_name = _name("localhost")
    untrusted_cert = _leaf(_builder(untrusted_name, untrusted_name, untrusted_key)).sign(
        untrusted_key, hashes.SHA256()
    )

    return TestPki(
        ca=_write(directory, "ca", ca_cert, ca_key),
        server=_write(directory, "server", server_cert, server_key),
        untrusted=_write(directory, "untrusted", untrusted_cert, untrusted_key),
    )
