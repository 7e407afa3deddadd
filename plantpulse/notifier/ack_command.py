"""``plantpulse ack ALERT_ID --by NAME``: acknowledge so that the running notifier stops at once.

The order, fastest first:
1. The config has ``api:`` and the running process answers: POST to its bearer API (token from
   the config). The escalation is stopped before the command returns.
2. Otherwise the acknowledgement is recorded in the plant's local outbox (if a notifier has one:
   ``store.state_dir / "outbox.db"``), where a running notifier notices it within ~250 ms and
   a later one on start; then written to the store. If the store is unreachable the outbox
   keeps it and the notifier forwards it once the store is back.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote

from plantpulse.alerts import Alert
from plantpulse.api.config import ApiConfig
from plantpulse.config import StoreConfig
from plantpulse.errors import StoreError
from plantpulse.notifier.outbox import Ack
from plantpulse.store import open_store
from plantpulse.store.sqlite_outbox import SQLiteOutbox, outbox_path
from plantpulse.timefmt import iso_ms


@dataclass(frozen=True, slots=True)
class Result:
    code: int  # the command's exit status
    text: str  # one line for stdout (0) or stderr (1)


def _line(alert_id: str, by: str | None, at: int | None, rule: str, tag: str) -> str:
    return f"{alert_id}: acknowledged by {by} at {iso_ms(at or 0)} ({rule} {tag})"


def _via_api(api: ApiConfig, alert_id: str, by: str, comment: str | None, timeout: float) -> Result | None:
    """Through the running process; None when it does not answer."""
    request = urllib.request.Request(
        f"{api.local_url()}/api/alerts/{quote(alert_id, safe='')}/ack",
        data=json.dumps({"by": by, "comment": comment}).encode("utf-8"),
        headers={
            "Authorization": f"Bearer {api.token.get_secret_value()}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            a = json.loads(response.read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return Result(1, f"no alert {alert_id}")
        return None  # 401 (another process on the port), 503: try the local way
    except (OSError, ValueError):
        return None
    return Result(0, _line(a["id"], a.get("acked_by"), a.get("acked_at_ns"), a["rule"], a["tag"]))


async def acknowledge(
    alert_id: str,
    by: str,
    comment: str | None,
    store: StoreConfig,
    api: ApiConfig | None = None,
    *,
    within: float = 5.0,
) -> Result:
    if api is not None:
        answered = await asyncio.to_thread(_via_api, api, alert_id, by, comment, within)
        if answered is not None:
            return answered
    ack = Ack(alert_id, by, time.time_ns(), comment, "cli")
    recorded: Ack | None = None
    outbox = None
    if outbox_path(store).exists():  # a notifier ran for this plant: tell it through its outbox
        outbox = SQLiteOutbox(outbox_path(store), lock_timeout=within)
        await outbox.open()
    try:
        if outbox is not None and await outbox.known([alert_id]):
            recorded = await outbox.acknowledge(ack)
        ack = recorded or ack
        alert, problem = await _in_store(store, ack, within)
        if outbox is not None and recorded is not None and alert is not None:
            await outbox.forwarded(recorded.seq)
    finally:
        if outbox is not None:
            await outbox.close()
    if alert is not None:
        return Result(0, _line(alert.id, alert.acked_by, alert.acked_at, alert.rule, alert.tag))
    if recorded is not None:
        why = f"the store is unreachable ({problem})" if problem else "the store has not got the alert yet"
        head = _line(alert_id, recorded.by, recorded.at, "in the notifier's outbox", "only")
        return Result(0, f"{head}; {why}: the notifier forwards it")
    if problem:
        return Result(1, f"cannot acknowledge {alert_id}: the store is unreachable: {problem}")
    return Result(1, f"no alert {alert_id}")


async def _in_store(config: StoreConfig, ack: Ack, within: float) -> tuple[Alert | None, str | None]:
    store = open_store(config)
    try:
        async with asyncio.timeout(within):
            await store.open()
            alert = await store.acknowledge(ack.alert_id, ack.by, ack.at, ack.comment, source=ack.source)
    except (StoreError, TimeoutError) as e:
        return None, str(e) or "timeout"
    finally:
        await store.close()
    return alert, None


__all__ = ["Result", "acknowledge"]
