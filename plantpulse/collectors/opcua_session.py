"""Opening an OPC UA session (asyncua): security, the certificate pin, login, and our errors.

Shared by the collector (``opcua.OpcUaCollector``) and ``plantpulse discover opcua``, so both
connect and fail the same way.

Choices, and why:

* **The pin is checked before any secure channel.** A secured connection first asks for the
  endpoints over an unsecured channel (GetEndpoints: what OPC UA provides for discovery). The
  chosen endpoint carries the server's certificate; when ``server_certificate`` pins one and
  the two differ, the connection stops with CertificateRejected "server certificate does not
  match the pinned one". asyncua alone only encrypts with the pin and never compares it: the
  server cannot decrypt what was meant for another key, drops the request, and the user saw
  "timed out", retried as an outage. The endpoint's certificate then secures the channel, so
  one round trip serves the check and the channel.
* **Refusals are named.** A refused client certificate (untrusted, expired, revoked, wrong
  application URI) is CertificateRejected with what to do; a refused login is
  AuthenticationError; both are retried slowly by the runner. Everything else (refused
  connection, timeout, lost socket) is SourceUnavailable, retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.crypto.uacrypto import CertProperties
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from plantpulse.collectors.opcua_certs import application_uri, der, load_certificate, thumbprint
from plantpulse.config import OpcUaSecurity, OpcUaSource
from plantpulse.errors import AuthenticationError, CertificateRejected, SourceError, SourceUnavailable

__all__ = ["Target", "close_client", "describe", "open_client", "translate"]

APPLICATION_URI = "urn:plantpulse:collector"
"""Our ApplicationUri without a certificate (with one, the URI in the certificate)."""

_CERT_REFUSALS: dict[int, str] = {
    StatusCodes.BadCertificateUntrusted: "the server does not trust our client certificate{cert}: "
    "add it to the server's trusted certificates",
    StatusCodes.BadCertificateTimeInvalid: "the server refused our client certificate{cert} as expired "
    "or not yet valid: make a new one",
    StatusCodes.BadCertificateRevoked: "the server revoked our client certificate{cert}",
    StatusCodes.BadCertificateUriInvalid: "the server refused our client certificate{cert}: its "
    "application URI does not match the one we announce",
    StatusCodes.BadCertificateUseNotAllowed: "the server refused our client certificate{cert}: its key "
    "usage does not allow a client",
    StatusCodes.BadCertificateInvalid: "the server refused our client certificate{cert} as invalid",
    StatusCodes.BadCertificateIssuerRevoked: "the server refused our client certificate{cert}: its "
    "issuer is revoked",
    StatusCodes.BadCertificateIssuerTimeInvalid: "the server refused our client certificate{cert}: its "
    "issuer is expired",
    StatusCodes.BadSecurityChecksFailed: "the server's security checks failed{cert}: usually it does not "
    "trust our client certificate yet (add it to the server's trusted certificates)",
}
_LOGIN_CODES = frozenset(
    (
        StatusCodes.BadUserAccessDenied,
        StatusCodes.BadIdentityTokenRejected,
        StatusCodes.BadIdentityTokenInvalid,
        StatusCodes.BadUserSignatureInvalid,
    )
)
_POLICY_CODES = frozenset((StatusCodes.BadSecurityPolicyRejected, StatusCodes.BadSecurityModeRejected))


@dataclass(frozen=True)
class Target:
    """Where and how to connect: the connection part of an ``OpcUaSource``."""

    name: str
    endpoint: str
    security: OpcUaSecurity
    username: str | None = None
    password: str | None = None
    timeout: float = 5.0  # seconds, for each step

    @classmethod
    def of(cls, source: OpcUaSource) -> Target:
        return cls(
            source.name,
            source.endpoint,
            source.security,
            source.username,
            source.password.get_secret_value() if source.password is not None else None,
            source.timeout / 1e9,
        )


async def open_client(
    target: Target,
    *,
    watchdog: float | None = None,
    on_lost: Callable[[Exception], Coroutine[Any, Any, None]] | None = None,
) -> Client:
    """A connected, activated session; SourceError (translated) when that fails."""
    client = Client(
        target.endpoint,
        timeout=target.timeout,
        watchdog_intervall=watchdog if watchdog is not None else target.timeout,
        auto_reconnect=False,
    )
    client.name = client.description = f"plantpulse {target.name}"
    client.application_uri = APPLICATION_URI
    if target.username is not None:
        client.set_user(target.username)
    if target.password is not None:
        client.set_password(target.password)
    if on_lost is not None:
        client.connection_lost_callback = on_lost
    try:
        await asyncio.wait_for(_secure(client, target), target.timeout)
        await asyncio.wait_for(client.connect(), target.timeout)
    except asyncio.CancelledError:
        await close_client(client, target.timeout)
        raise
    except SourceError:
        await close_client(client, target.timeout)
        raise
    except (OSError, TimeoutError, UaError, ValueError) as e:
        await close_client(client, target.timeout)
        raise translate(target, e) from None
    return client


async def close_client(client: Client, seconds: float) -> None:
    """Tear down within ``seconds``, without letting asyncua's own teardown noise or errors escape."""
    quiet = logging.getLogger("asyncua.client.client")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        with contextlib.suppress(OSError, TimeoutError, UaError, ConnectionError):
            await asyncio.wait_for(client.disconnect(), seconds)
    finally:
        quiet.setLevel(level)


async def _secure(client: Client, target: Target) -> None:
    """Pick the endpoint, compare its certificate with the pin, then secure the channel with it."""
    sec = target.security
    if sec.policy == "None":
        return
    assert sec.certificate is not None and sec.private_key is not None  # checked by the schema
    try:
        uri = application_uri(load_certificate(sec.certificate))
    except (OSError, ValueError) as e:
        raise _files(target, "client certificate", sec.certificate, e) from None
    if uri:
        client.application_uri = uri
    mode = ua.MessageSecurityMode.Sign if sec.mode == "Sign" else ua.MessageSecurityMode.SignAndEncrypt
    policy_uri = SecurityPolicyBasic256Sha256.URI
    endpoints = await client.connect_and_get_server_endpoints()
    endpoint = next(
        (e for e in endpoints if e.SecurityMode == mode and e.SecurityPolicyUri == policy_uri), None
    )
    if endpoint is None:
        offered = sorted({f"{_policy_name(e.SecurityPolicyUri)} {e.SecurityMode.name}" for e in endpoints})
        raise AuthenticationError(
            target.name,
            target.endpoint,
            f"security: the server offers no Basic256Sha256 {sec.mode} endpoint "
            f"(it offers: {', '.join(offered) or 'none'})",
        )
    presented = _first_certificate(endpoint.ServerCertificate or b"")
    if sec.server_certificate is not None:
        try:
            pinned = der(load_certificate(sec.server_certificate))
        except (OSError, ValueError) as e:
            raise _files(target, "pinned server certificate", sec.server_certificate, e) from None
        if pinned != presented:
            raise CertificateRejected(
                target.name,
                target.endpoint,
                f"server certificate does not match the pinned one ({sec.server_certificate}): "
                f"the server presents SHA-1 {thumbprint(presented)}, the pin is {thumbprint(pinned)}",
            )
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        str(sec.certificate),
        str(sec.private_key),
        server_certificate=CertProperties(presented, extension="der"),
        mode=mode,
    )


def _policy_name(uri: str) -> str:
    return uri.rpartition("#")[2] or uri


def _first_certificate(blob: bytes) -> bytes:
    """The leading certificate of a DER chain (servers may send the chain concatenated)."""
    if len(blob) < 4 or blob[1] != 0x82:
        return blob
    return blob[: int.from_bytes(blob[2:4], "big") + 4]


def _files(target: Target, who: str, path: Path, e: Exception) -> AuthenticationError:
    why = e.strerror if isinstance(e, OSError) and e.strerror else "not a PEM or DER certificate"
    return AuthenticationError(target.name, target.endpoint, f"cannot use the {who} {path}: {why}")


def translate(target: Target, e: BaseException) -> SourceError:
    """An asyncua or socket error as ours, keeping the source and endpoint."""
    name, address = target.name, target.endpoint
    cert = f" ({target.security.certificate})" if target.security.certificate is not None else ""
    if isinstance(e, UaStatusCodeError):
        code = e.code
        status = ua.StatusCode(code).name
        if code in _CERT_REFUSALS:
            return CertificateRejected(name, address, f"{_CERT_REFUSALS[code].format(cert=cert)} ({status})")
        if code in _LOGIN_CODES:
            who = f"user {target.username!r}" if target.username is not None else "anonymous login"
            return AuthenticationError(name, address, f"login refused for {who} ({status})")
        if code in _POLICY_CODES:
            return AuthenticationError(name, address, f"security: the server rejected {status}")
    if isinstance(e, UaError) and "certificate mismatch" in str(e).lower():
        return CertificateRejected(
            name, address, "server certificate changed between GetEndpoints and CreateSession"
        )
    if isinstance(e, UaError | ValueError) and "endpoint" in str(e).lower():
        return AuthenticationError(name, address, f"security: {e}")
    return SourceUnavailable(name, address, describe(e))


def describe(e: BaseException) -> str:
    if isinstance(e, UaStatusCodeError):
        return str(ua.StatusCode(e.code).name)
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    return str(e) or type(e).__name__
