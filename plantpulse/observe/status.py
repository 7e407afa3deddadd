"""``plantpulse status -c plant.yaml``: the running process's readiness, for a person on a shell.

It asks the process (``GET /api/health/ready`` with the API token, so the error texts come
too) and prints one line for the verdict and one per check. Exit 0 when ready; 1 when not
ready, and 1 with one line on stderr when nothing answers or the answer is not plantpulse's.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plantpulse import yamlsrc
from plantpulse.api.config import ApiConfig
from plantpulse.config import PlantConfig

__all__ = ["Status", "register", "status", "status_lines"]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("status", help="is the running pipeline ready: store, spool, sources (asks its API)")
    p.add_argument("-c", "--config", type=Path, required=True, help="plant.yaml (its api: section)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default: %(default)s)")
    p.set_defaults(func=_status)


@dataclass(frozen=True, slots=True)
class Status:
    code: int  # the command's exit status
    lines: list[str]  # for stdout when the process answered; else one line for stderr
    answered: bool


def _status(args: argparse.Namespace) -> int:
    plant = yamlsrc.validate(PlantConfig, yamlsrc.load(args.config, interpolate_env=True))
    result = status(plant.api, args.timeout, source=str(args.config))
    print("\n".join(result.lines), file=sys.stdout if result.answered else sys.stderr)
    return result.code


def status(api: ApiConfig | None, timeout: float = 5.0, *, source: str = "plant.yaml") -> Status:
    """Ask the running process described by ``api`` (``source`` names the config in messages)."""
    if api is None:
        why = f"{source} has no api: section; status asks the running process through its HTTP API"
        return Status(1, [f"plantpulse status: {why}"], answered=False)
    url = api.local_url()
    answer = _ask(url, api.token.get_secret_value(), timeout)
    if isinstance(answer, str):
        return Status(1, [f"plantpulse status: {answer}"], answered=False)
    code, body = answer
    return Status(0 if code == 200 else 1, status_lines(url, body), answered=True)


def _ask(url: str, token: str, timeout: float) -> tuple[int, dict[str, Any]] | str:
    """(HTTP status, body) of the readiness probe, or one line saying why there is none."""
    request = urllib.request.Request(f"{url}/api/health/ready", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            code, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        if e.code == 401:
            return f"{url} refused the API token (401): another program on that port, or api.token differs"
        if e.code != 503:
            return f"{url} answered {e.code} {e.reason}: not a plantpulse with /api/health/ready"
        code, raw = e.code, e.read()
    except urllib.error.URLError as e:  # connecting failed
        return f"plantpulse is not running or not reachable at {url}: {_why(e.reason, timeout)}"
    except OSError as e:  # the answer did not come (TimeoutError included)
        return f"plantpulse is not running or not reachable at {url}: {_why(e, timeout)}"
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("checks"), list):
        return f"{url} answered {code} without plantpulse's readiness body"
    return code, body


def _why(reason: object, timeout: float) -> str:
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror  # "Connection refused", without the errno
    return str(reason) or type(reason).__name__


def status_lines(url: str, body: dict[str, Any]) -> list[str]:
    """The verdict, then one aligned line per check (``ok`` or ``FAIL``, its state, why, error)."""
    failing = body.get("failing") or []
    head = f"plantpulse at {url}: {body.get('status', '?')}"
    if failing:
        head += f" ({', '.join(failing)})"
    checks = [c for c in body["checks"] if isinstance(c, dict)]
    width = max((len(str(c.get("name", ""))) for c in checks), default=0)
    lines = [head]
    for c in checks:
        state, why = str(c.get("state", "")), str(c.get("why", ""))
        text = why if why.startswith(state) else f"{state}: {why}"
        lag = c.get("watermark_lag_seconds")
        if isinstance(lag, int | float):
            text += f"; watermark {lag:.1f} s behind wall time"
        if c.get("error"):
            text += f"; {c['error']}"
        mark = "ok  " if c.get("ok") else "FAIL"
        lines.append(f"  {c.get('name', '')!s:<{width}}  {mark}  {text}")
    return lines
