"""Builds what ``run_pipeline`` needs to notify people from a ``PlantConfig``, so app.py stays small.

- ``notifications.urls`` only: the plain PushNotifier (every raise and clear to fixed URLs).
- a team (people and escalation policies): the roster's ``on_shift`` for the pipeline and the
  EscalationNotifier over the outbox next to the store. Both may run together (fan-out).
- ``api:``: the HTTP API under uvicorn, in the same event loop, with ack links signed by
  ``team.links.secret`` / ``$PLANTPULSE_ACK_SECRET``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute

from plantpulse.alerts import AlertEvent
from plantpulse.api.app import Api, Handler
from plantpulse.api.config import ApiConfig
from plantpulse.config import PlantConfig
from plantpulse.dashboards.state import BoardState
from plantpulse.httpserve import serving
from plantpulse.notifier.links import ENV_SECRET, secret_from
from plantpulse.notifier.outbox import Outbox, open_outbox
from plantpulse.notifier.push import PushNotifier
from plantpulse.notifier.service import Clock, EscalationNotifier
from plantpulse.people.roster import Roster
from plantpulse.store.base import Store
from plantpulse.stream.pipeline import Notifier, OnShift

log = logging.getLogger(__name__)


class FanOut:
    """One ``Notifier`` that hands every batch to several."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = list(notifiers)

    def submit(self, events: Sequence[AlertEvent], on_shift: dict[str, dict[str, list[str]]]) -> None:
        for n in self.notifiers:
            n.submit(events, on_shift)


def has_team(plant: PlantConfig) -> bool:
    return bool(plant.team.people and plant.team.policies)


@dataclass
class Notifying:
    """Everything that notifies for one run; ``notifier``/``on_shift`` go to the Pipeline."""

    notifier: Notifier | None = None
    on_shift: OnShift | None = None
    push: PushNotifier | None = None
    escalation: EscalationNotifier | None = None
    outbox: Outbox | None = None
    api: Api | None = None
    _serving: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    _starting: asyncio.Task[None] | None = None

    @property
    def counts(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        if self.push is not None:
            out.update(self.push.counts)
        if self.escalation is not None:
            out.update({f"team {k}": v for k, v in self.escalation.counts.items()})
        return dict(out)

    async def stop(self) -> None:
        """Notifiers first (deliver what is queued), then the API, then the outbox."""
        if self.push is not None:
            await self.push.stop()
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()  # never started: what was submitted is lost, the alerts are stored
            await asyncio.gather(self._starting, return_exceptions=True)
        elif self.escalation is not None:
            await self.escalation.stop()
        await self._serving.aclose()
        if self.outbox is not None:
            await self.outbox.close()


async def _start_when(ready: Callable[[], Awaitable[None]], notifier: EscalationNotifier) -> None:
    await ready()
    await notifier.start()


async def start_notifying(
    plant: PlantConfig,
    store: Store,
    *,
    api: ApiConfig | None = None,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    ready: Callable[[], Awaitable[None]] | None = None,
    board: BoardState | None = None,
    routes: Callable[[Callable[[Handler], Handler]], Sequence[BaseRoute]] | None = None,
    **notifier_options: Any,
) -> Notifying:
    """Build and start the notifiers and the API the config asks for. With ``ready`` (a coroutine
    function, e.g. "the store is up"), the escalation notifier resumes once it returns; until
    then ``submit`` only queues."""
    env = os.environ if env is None else env
    api = api if api is not None else getattr(plant, "api", None)
    out = Notifying()
    parts: list[Notifier] = []
    if plant.notifications.urls:
        out.push = PushNotifier([u.get_secret_value() for u in plant.notifications.urls])
        out.push.start()
        parts.append(out.push)
    team = plant.team
    secret: bytes | None = None
    if team.links.secret is not None or env.get(ENV_SECRET):
        secret = secret_from(team.links.secret.get_secret_value() if team.links.secret else None, env)
    if has_team(plant):
        roster = Roster(team, plant.site.timezone)
        out.on_shift = roster.on_shift
        out.outbox = open_outbox(plant.store.url)
        await out.outbox.open()
        base = team.links.base_url or (api.ack_base() if api is not None else None)
        if secret is None or base is None:
            log.warning("ack links are off: set team.links.secret (or $%s) and api.public_url", ENV_SECRET)
        out.escalation = EscalationNotifier(
            roster, out.outbox, store, clock=clock, secret=secret, link_base=base, **notifier_options
        )
        if ready is None:
            await out.escalation.start()
        else:
            out._starting = asyncio.create_task(_start_when(ready, out.escalation), name="notifier start")
        parts.append(out.escalation)
    if api is not None:
        if out.outbox is None:
            out.outbox = open_outbox(plant.store.url)
            await out.outbox.open()
        out.api = Api(
            store, token=api.token.get_secret_value(), secret=secret, outbox=out.outbox,
            notifier=out.escalation, team=team if has_team(plant) else None, clock=clock,
            max_shelve=api.max_shelve, board=board, routes=routes,
        )  # fmt: skip
        await out._serving.enter_async_context(serving(out.api.app, api.host, api.port))
        log.info("board, API and acknowledge links on http://%s", api.listen)
    out.notifier = parts[0] if len(parts) == 1 else FanOut(parts) if parts else None
    return out


__all__ = ["FanOut", "Notifying", "has_team", "start_notifying"]
