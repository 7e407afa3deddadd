"""Bearer tokens, compared in constant time; the one 401 every protected route answers."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = ["bearer_ok", "unauthorized"]


def bearer_ok(request: Request, *tokens: bytes) -> bool:
    """True when ``Authorization: Bearer <t>`` carries one of ``tokens`` (each compared in full)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    raw = given.strip().encode("utf-8")
    matches = [hmac.compare_digest(raw, t) for t in tokens]  # no short cut: every token is compared
    return scheme.lower() == "bearer" and any(matches)


def unauthorized() -> JSONResponse:
    challenge = {"WWW-Authenticate": 'Bearer realm="plantpulse"'}
    return JSONResponse({"error": "unauthorized"}, 401, headers=challenge)
