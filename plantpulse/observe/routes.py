"""The HTTP side: ``/metrics``, ``/api/health/live``, ``/api/health/ready`` (docs/operations.md).

Who may ask:

* ``/metrics`` needs a bearer token: ``api.metrics_token`` when set (give Prometheus that
  one, which reads numbers and can acknowledge nothing), or the API token. Metric names and
  label values (sources, rules, channels) describe the plant, so they are not public.
* The two probes need none: load balancers and orchestrators often cannot send a header, and
  the status code is the answer. The body names what is not ready in our own words; the
  error texts behind it (a driver's message may name hosts and ports) are added only for a
  caller holding the API token, as ``plantpulse status`` does; a wrong token is a 401.

Liveness is answered by the event loop itself, so a 200 means the process and its loop run;
it never depends on the store or the devices (an orchestrator would restart a healthy process
for a PLC that is switched off). Readiness is ``ready.readiness`` over the parts' snapshots.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plantpulse.api.auth import bearer_ok, unauthorized
from plantpulse.observe.metrics import metrics_registry
from plantpulse.observe.parts import Observed
from plantpulse.observe.ready import readiness

__all__ = ["observe_routes"]


def observe_routes(observed: Observed, authorized: Callable[[Request], bool]) -> list[Route]:
    """``authorized``: the API's own check of its token."""
    registry = metrics_registry(observed)
    extra = observed.metrics_token
    metrics_token = (extra.get_secret_value().encode("utf-8"),) if extra is not None else ()

    async def metrics(request: Request) -> Response:
        if not (authorized(request) or (metrics_token and bearer_ok(request, *metrics_token))):
            return unauthorized()
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(registry), headers={"Content-Type": content_type})

    async def live(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def ready(request: Request) -> Response:
        details = authorized(request)
        if not details and "authorization" in request.headers:
            return unauthorized()  # a token that is sent must be the right one: say so, not less
        verdict = readiness(observed.vitals(), observed.ready)
        return JSONResponse(verdict.body(details=details), 200 if verdict.ok else 503)

    return [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/api/health/live", live, methods=["GET"]),
        Route("/api/health/ready", ready, methods=["GET"]),
    ]
