"""Builds what ``run_pipeline`` needs to notify people from a ``PlantConfig``, so app.py stays small.

- ``notifications.urls`` only: the plain PushNotifier (every raise and clear to fixed URLs).
- a team (people and escalation policies): the roster's ``on_shift`` for the pipeline and the
  EscalationNotifier over the local outbox (``plant.store.state_dir / "outbox.db"``), whatever
  the store is. It starts at once and never waits for the store: its journal goes through
  ``journal`` (the pipeline's spool writer). Both may run together (fan-out).
- ``api:``: the HTTP API under uvicorn, in the same event loop, with ack links signed by
  ``team.links.secret`` / ``$PLANTPULSE_ACK_SECRET``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute

from plantpulse.alerts import AlertEvent
from plantpulse.api.app import Api, Handler
from plantpulse.api.config import ApiConfig
from plantpulse.config import PlantConfig
from plantpulse.dashboards.state import BoardState
from plantpulse.httpserve import serving
from plantpulse.notifier.clock import Clock
from plantpulse.notifier.escalator import EscalationNotifier
from plantpulse.notifier.journal import JournalSink
from plantpulse.notifier.links import ENV_SECRET, secret_from
from plantpulse.notifier.outbox import Outbox
from plantpulse.notifier.push import PushNotifier
from plantpulse.observe.parts import Observed
from plantpulse.people.roster import Roster
from plantpulse.store.base import Store
from plantpulse.store.sqlite_outbox import SQLiteOutbox
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
        if self.escalation is not None:
            await self.escalation.stop()
        await self._serving.aclose()
        if self.outbox is not None:
            await self.outbox.close()


async def start_notifying(
    plant: PlantConfig,
    store: Store,
    *,
    journal: JournalSink | None = None,
    api: ApiConfig | None = None,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    board: BoardState | None = None,
    observed: Observed | None = None,
    routes: Callable[[Callable[[Handler], Handler]], Sequence[BaseRoute]] | None = None,
    **notifier_options: Any,
) -> Notifying:
    """Build and start the notifiers and the API the config asks for. ``store`` need not be
    reachable (nor open yet): the notifier only forwards acknowledgements to it and watches it
    for those made elsewhere, each in a task of its own. ``journal``: where journal entries go
    (the spool writer); without it the notifier journals nothing. ``observed``: what the API's
    /metrics and health probes read."""
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
        out.outbox = SQLiteOutbox.for_store(plant.store)
        await out.outbox.open()
        base = team.links.base_url or (api.ack_base() if api is not None else None)
        if secret is None or base is None:
            log.warning("ack links are off: set team.links.secret (or $%s) and api.public_url", ENV_SECRET)
        out.escalation = EscalationNotifier(
            roster, out.outbox, store=store, journal=journal, clock=clock, secret=secret, link_base=base,
            **notifier_options,
        )  # fmt: skip
        await out.escalation.start()
        parts.append(out.escalation)
    if api is not None:
        if out.outbox is None:
            out.outbox = SQLiteOutbox.for_store(plant.store)
            await out.outbox.open()
        out.api = Api(
            store, token=api.token.get_secret_value(), secret=secret, outbox=out.outbox,
            notifier=out.escalation, team=team if has_team(plant) else None, clock=clock,
            max_shelve=api.max_shelve, board=board, routes=routes, observed=observed,
        )  # fmt: skip
        await out._serving.enter_async_context(serving(out.api.app, api.host, api.port))
        log.info("board, API and acknowledge links on http://%s", api.listen)
    out.notifier = parts[0] if len(parts) == 1 else FanOut(parts) if parts else None
    return out


__all__ = ["FanOut", "Notifying", "has_team", "start_notifying"]
