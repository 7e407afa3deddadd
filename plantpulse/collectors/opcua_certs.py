"""OPC UA application certificates on disk: loading, identity and validity (no asyncua).

Used where asyncua is not wanted (``plantpulse check``) and by the connection code, which
compares a pinned server certificate with the one the server presents.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = ["application_uri", "der", "load_certificate", "thumbprint", "validity_problem"]


def load_certificate(path: Path) -> x509.Certificate:
    """A certificate file, PEM or DER; OSError or ValueError when it is neither."""
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def thumbprint(der_bytes: bytes) -> str:
    """SHA-1 over the DER bytes, as OPC UA tools (UaExpert, server trust lists) show it."""
    return hashlib.sha1(der_bytes, usedforsecurity=False).hexdigest().upper()


def application_uri(cert: x509.Certificate) -> str | None:
    """The URI in the subjectAltName: OPC UA requires our ApplicationUri to equal it."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def validity_problem(cert: x509.Certificate, now: datetime) -> str | None:
    """Why the certificate is not valid at ``now`` (timezone-aware), or None."""
    if now >= cert.not_valid_after_utc:
        return f"expired on {_iso(cert.not_valid_after_utc)}"
    if now < cert.not_valid_before_utc:
        return f"not valid before {_iso(cert.not_valid_before_utc)} (check this machine's clock)"
    return None


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
