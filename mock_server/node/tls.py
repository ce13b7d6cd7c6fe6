"""Self-signed TLS material for the mock's XMPP STARTTLS (RFC 6120 §5), made at start-up.

One EC P-256 key and certificate per process, generated with ``cryptography`` in a few ms, and one
``ssl.SSLContext`` built from them and reused for every connection (building a context per
connection would cost tens of ms each, ENGINEERING.md). Clients must not verify it (it is
self-signed); tests build their client context with ``client_context_no_verify()``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["SelfSignedCert", "client_context_no_verify", "make_self_signed", "server_context"]

_VALID_DAYS = 30


@dataclass(frozen=True, kw_only=True)
class SelfSignedCert:
    """PEM certificate and unencrypted PEM private key."""

    cert_pem: bytes
    key_pem: bytes


def make_self_signed(hostnames: Sequence[str]) -> SelfSignedCert:
    """Generate a self-signed certificate for ``hostnames`` (DNS names or IP literals).

    Args:
        hostnames: subject alternative names; the first is also the common name.

    Raises:
        ValueError: no host name given.
        TypeError: one string instead of a sequence of names (it would name one host per letter).
    """
    if isinstance(hostnames, str):
        raise TypeError("hostnames must be a sequence of names, not one string")
    if not hostnames:
        raise ValueError("at least one host name is needed")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    sans: list[x509.GeneralName] = []
    for h in hostnames:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return SelfSignedCert(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption(),
        ),
    )


def server_context(hostnames: Sequence[str]) -> ssl.SSLContext:
    """A server ``SSLContext`` (TLS 1.2+) with a fresh self-signed certificate.

    ``ssl`` loads keys only from files: the PEMs go to a private temporary directory that is
    removed before returning.

    Args:
        hostnames: names the certificate is issued for, e.g. the presence domain and node names.
    """
    material = make_self_signed(hostnames)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        with open(cert_path, "wb") as f:
            f.write(material.cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(material.key_pem)
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


def client_context_no_verify() -> ssl.SSLContext:
    """A client context that accepts the mock's self-signed certificate (tests and benchmarks
    only: no certificate or host name check)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
