"""What ``plantpulse run`` starts when ``approvals:`` is on, so app.py stays small.

    a = await start_approvals(loaded)
    Pipeline(Engine(a.live.rules, tags), ..., rules=a.live)      # the approved versions, swapped live
    start_notifying(..., routes=a.routes(token, store))          # the API and page, when api: is set
    ...
    await a.close()                                              # after the pipeline stopped

The live set comes from the change log. Each time it changes it is also written to
``<state dir>/approved-rules.json``, so a pipeline that starts while the database is down runs
the last approved set it knew (and says so) instead of refusing to start or falling back to
files on disk nobody approved; it switches once the log is readable again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from starlette.routing import BaseRoute

from plantpulse.approvals.api import ApprovalsApi, Handler
from plantpulse.approvals.changelog import ChangeLog, open_change_log
from plantpulse.approvals.live import LiveRules
from plantpulse.approvals.notify import ApprovalNotifier
from plantpulse.approvals.ruleset import RuleSet
from plantpulse.approvals.service import Plant
from plantpulse.config import LoadedConfig
from plantpulse.errors import StoreError, StoreUnavailable
from plantpulse.notifier.clock import Clock, SystemClock
from plantpulse.store.base import Store

log = logging.getLogger(__name__)

__all__ = ["Approvals", "load_cache", "save_cache", "start_approvals"]

CACHE = "approved-rules.json"


@dataclass
class Approvals:
    plant: Plant
    log: ChangeLog
    live: LiveRules
    notifier: ApprovalNotifier
    clock: Clock
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # ends the watchers
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def routes(
        self, token: bytes, store: Store
    ) -> Callable[[Callable[[Handler], Handler]], Sequence[BaseRoute]]:
        """The approvals API and page, for ``api.app.Api(routes=...)``."""
        return ApprovalsApi(self.plant, self.log, store, self.clock, token).routes

    async def close(self) -> None:
        """After the pipeline stopped: end the watchers, record a last switch (made while the
        queue drained), close the log."""
        self.stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        try:
            await self.live.flush()
        except Exception:  # the run is over; the log just misses the record of the last switch
            log.exception("approved rules: the last switch could not be recorded in the change log")
        await self.log.close()


def save_cache(path: Path, rs: RuleSet) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        data = {"change": rs.change, "versions": rs.versions, "texts": rs.texts}
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        log.warning("cannot cache the approved rules in %s: %s", path, e)


def load_cache(path: Path) -> RuleSet | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        return RuleSet.from_texts(d["texts"], d["versions"], d["change"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def start_approvals(
    loaded: LoadedConfig, *, clock: Clock | None = None, page_url: str | None = None
) -> Approvals:
    """Open the change log, adopt new files, load the live set (or the cached one while the
    database is down), and start watching for approvals and sending approval notices."""
    plant = Plant.of(loaded)
    clock = clock or SystemClock()
    cache = loaded.plant.store.state_dir / CACHE
    change_log = open_change_log(loaded.plant.store)
    try:
        await change_log.open()
        live = await LiveRules.start(plant, change_log, now=clock.now(), clock=clock.now)
    except StoreUnavailable as e:
        cached = await asyncio.to_thread(load_cache, cache)
        if cached is None:
            raise StoreError(
                f"approvals: the change log is unreachable ({e}) and no approved rules are cached in {cache}"
            ) from e
        log.warning("change log unreachable (%s): running the cached rules of change #%s", e, cached.change)
        live = LiveRules(plant, change_log, cached, clock=clock.now)
    else:
        await asyncio.to_thread(save_cache, cache, live.ruleset)
    live.on_change = lambda rs: save_cache(cache, rs)
    notifier = ApprovalNotifier(plant, change_log, clock=clock, page_url=page_url)
    out = Approvals(plant, change_log, live, notifier, clock)
    out.tasks = [
        asyncio.create_task(live.run(out.stop), name="approved rules"),
        asyncio.create_task(notifier.run(out.stop), name="approval notices"),
    ]
    log.info("approvals on: %d rules of change #%s", len(live.rules), live.ruleset.change)
    return out
