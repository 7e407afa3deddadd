"""What the live board shows, kept in memory as the pipeline runs; frames for its screens.

    state = BoardState.for_plant(plant, tags)        # screens from ``boards:``, units, roster
    state.observe(batch, events)                     # the pipeline, per micro-batch
    state.observe_alert(alert) / sync_alerts(...)    # acknowledgements and shelves (store, API)
    state.observe_kpis(results)                      # KPI results (current-shift tiles)
    state.full(screen, now) / state.delta(screen, since, now)   # what a page gets

Columnar and bounded: the newest value per tag lives in numpy arrays indexed by tag id and is
updated per micro-batch with one scatter; the sparkline history of every shown tag is a ring
of ``POINTS`` time buckets (mean per bucket) in two 2-D arrays (rows x POINTS), filled with
``np.add.at``; no Python loop per sample. Every change stamps the tag with ``version``, so a
screen's update carries only the tags changed since the one before. Alerts are the stored
``Alert`` records (ISA-18.2 state from ``Alert.state(now)``), at most ``max_alerts``: an alert
leaves when it is back to normal (cleared and acknowledged). Pure: time comes in as ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from plantpulse.alerts import SEVERITIES, Alert, AlertEvent, AlertState
from plantpulse.dashboards.screens import BoardsConfig, ScreenConfig, Selection, default_boards
from plantpulse.samples import Quality, SampleBatch, TagRegistry

if TYPE_CHECKING:
    from plantpulse.config import PlantConfig
    from plantpulse.kpi.model import Kpi
    from plantpulse.kpi.results import KpiResult

POINTS = 60
"""Buckets per sparkline: ``trend / POINTS`` each (10 s for the default 10 minutes)."""
SHOWN_ALERTS = 30
"""Alerts a screen lists at most (the rest are counted): the page's DOM stays bounded."""
NS_PER_MS = 1_000_000
_QUALITY = {int(q): q.name.lower() for q in Quality}
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
OnShift = Callable[[str, int], dict[str, list[str]]]


@dataclass
class Screen:
    """One screen's config, what it selects, and the tag ids it shows (sorted by name)."""

    config: ScreenConfig
    selection: Selection
    tids: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    layout: int = 0  # bumped when ``tids`` changes: pages then need a full frame

    @property
    def name(self) -> str:
        return self.config.name


class BoardState:
    def __init__(
        self,
        tags: TagRegistry,
        site: str = "plant",
        *,
        boards: BoardsConfig | None = None,
        units: Mapping[str, str] | None = None,
        on_shift: OnShift | None = None,
        kpis: Sequence[Kpi] = (),
        pins: Mapping[str, str] | None = None,
        language: str = "en",
        max_alerts: int = 500,
        max_rows: int = 5000,
    ) -> None:
        self.tags = tags
        self.site = site
        self.pins: dict[str, str] = dict(pins or {})
        """person -> stored PIN hash (``plantpulse.dashboards.pins``); never sent to a page."""
        self.boards = boards or default_boards(acknowledge=bool(self.pins))
        self.language = language
        self.units = dict(units or {})
        self.on_shift = on_shift
        self.kpi_defs = {k.id: k for k in kpis}
        self.screens = {s.name: Screen(s, Selection.of(s)) for s in self.boards.screens}
        self.step = self.boards.trend // POINTS
        self.max_alerts = max_alerts
        self.max_rows = max_rows
        n = 0
        self._ts = np.zeros(n, np.int64)
        self._value = np.zeros(n, np.float64)
        self._quality = np.zeros(n, np.uint8)
        self._changed = np.full(n, -1, np.int64)  # version of the tag's last change; -1 never seen
        self._row = np.full(n, -1, np.int64)  # history row of a shown tag, -1 none
        self._h_bucket = np.full((0, POINTS), -1, np.int64)
        self._h_sum = np.zeros((0, POINTS), np.float64)
        self._h_cnt = np.zeros((0, POINTS), np.int64)
        self.alerts: dict[str, Alert] = {}
        self.kpis: dict[tuple[str, str], KpiResult] = {}
        self.version = 0
        self.alerts_version = 0
        self.kpis_version = 0
        self.samples = 0
        self.dropped = {"alerts": 0, "history_rows": 0}
        self._listeners: set[Callable[[], None]] = set()
        self._sync_tags()

    @classmethod
    def for_plant(cls, plant: PlantConfig, tags: TagRegistry, kpis: Sequence[Kpi] = ()) -> BoardState:
        """Screens from ``boards:`` (or everything), units from the tags, people's PINs, and the
        roster for "who is on shift" when the plant has a team."""
        from plantpulse.people.roster import Roster

        team = plant.team
        pins = {n: p.board_pin.get_secret_value() for n, p in team.people.items() if p.board_pin is not None}
        units = {t.name: t.unit for src in plant.sources for t in src.tags if t.unit}
        roster = Roster(team, plant.site.timezone) if team.assignments else None
        return cls(
            tags, plant.site.name, boards=plant.boards, units=units, pins=pins, kpis=kpis,
            on_shift=roster.on_shift if roster is not None else None, language=team.language,
        )  # fmt: skip

    # -- feeding ------------------------------------------------------------------------------

    def listen(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` after every change; returns the function that stops it."""
        self._listeners.add(wake)
        return lambda: self._listeners.discard(wake)

    def _changed_now(self) -> None:
        for wake in list(self._listeners):
            wake()

    def observe(self, batch: SampleBatch, events: Sequence[AlertEvent]) -> None:
        """The newest sample per tag of ``batch``, its good samples into the sparklines, and
        the raises and clears of ``events``."""
        if len(batch):
            self.version += 1
            if len(self.tags) > len(self._ts):
                self._sync_tags()
            newest = np.lexsort((batch.ts, batch.tag))  # by tag, then time
            last = newest[np.r_[batch.tag[newest][1:] != batch.tag[newest][:-1], True]]
            tag = batch.tag[last]
            newer = (batch.ts[last] >= self._ts[tag]) | (self._changed[tag] < 0)
            tag, last = tag[newer], last[newer]
            self._ts[tag] = batch.ts[last]
            self._value[tag] = batch.value[last]
            self._quality[tag] = batch.quality[last]
            self._changed[tag] = self.version
            self._history(batch)
            self.samples += len(batch)
        for ev in events:
            if ev.kind == "raised":
                on_shift = self.on_shift(ev.asset, ev.raised_at) if self.on_shift is not None else {}
                self.alerts[ev.alert_id] = Alert.from_event(ev, on_shift)
            elif (a := self.alerts.get(ev.alert_id)) is not None:
                a.cleared_at = ev.at
                if a.acked_at is not None:
                    del self.alerts[ev.alert_id]  # acknowledged and back to normal
        if events:
            self._bound_alerts()
            self.alerts_version += 1
        if len(batch) or events:
            self._changed_now()

    def _history(self, batch: SampleBatch) -> None:
        r = self._row[batch.tag]
        keep = (r >= 0) & (batch.quality == Quality.GOOD) & np.isfinite(batch.value)
        if not keep.any():
            return
        r, b, v = r[keep], batch.ts[keep] // self.step, batch.value[keep]
        s = b % POINTS
        before = self._h_bucket[r, s]
        np.maximum.at(self._h_bucket, (r, s), b)  # a slot moves on to the newest bucket it sees
        after = self._h_bucket[r, s]
        moved = after > before
        self._h_sum[r[moved], s[moved]] = 0.0
        self._h_cnt[r[moved], s[moved]] = 0
        cur = b == after  # samples of a bucket the ring has passed already are left out
        np.add.at(self._h_sum, (r[cur], s[cur]), v[cur])
        np.add.at(self._h_cnt, (r[cur], s[cur]), 1)

    def observe_alert(self, alert: Alert, now: int) -> None:
        """An alert as the store or the acknowledge path returned it (acknowledged, shelved)."""
        if alert.state(now) == AlertState.NORMAL:
            if self.alerts.pop(alert.id, None) is None:
                return
        else:
            known = self.alerts.get(alert.id)
            if not alert.on_shift and known is not None:
                alert.on_shift = known.on_shift
            self.alerts[alert.id] = alert
            self._bound_alerts()
        self.alerts_version += 1
        self._changed_now()

    def sync_alerts(self, alerts: Iterable[Alert], now: int) -> None:
        """Alerts read from the store: their acknowledgements and shelves (made from the CLI, a
        link, another process) and active ones the board missed (raised before it started).
        An alert the store does not return is kept: its raise may still be on its way there."""
        changed = False
        for a in alerts:
            held = self.alerts.get(a.id)
            normal = a.state(now) == AlertState.NORMAL
            if held is None and (normal or a.cleared_at is not None):
                continue
            if held is not None and _same(held, a):
                continue
            if held is not None and not a.on_shift:
                a.on_shift = held.on_shift
            if normal:
                del self.alerts[a.id]
            else:
                self.alerts[a.id] = a
            changed = True
        if changed:
            self._bound_alerts()
            self.alerts_version += 1
            self._changed_now()

    def observe_kpis(self, results: Iterable[KpiResult]) -> None:
        """KPI results: per KPI and asset the latest shift window is the "current shift" tile
        (a running shift's interim result replaces the one before). Other windows are ignored."""
        changed = False
        for r in results:
            if r.window.by != "shift":
                continue
            key = (r.kpi, r.asset)
            held = self.kpis.get(key)
            if held is None or r.window.start >= held.window.start:
                self.kpis[key] = r
                changed = True
        if changed:
            self.kpis_version += 1
            self._changed_now()

    def _bound_alerts(self) -> None:
        over = len(self.alerts) - self.max_alerts
        if over > 0:  # cleared ones first, then the oldest
            order = sorted(self.alerts.values(), key=lambda a: (a.cleared_at is None, a.raised_at))
            for a in order[:over]:
                del self.alerts[a.id]
            self.dropped["alerts"] += over

    def _sync_tags(self) -> None:
        """Tags the registry gained: grow the arrays, add them to the screens that show them."""
        old, n = len(self._ts), len(self.tags)
        extra = n - old
        if extra <= 0:
            return
        self._ts = np.concatenate([self._ts, np.zeros(extra, np.int64)])
        self._value = np.concatenate([self._value, np.full(extra, np.nan)])
        self._quality = np.concatenate([self._quality, np.full(extra, Quality.BAD, np.uint8)])
        self._changed = np.concatenate([self._changed, np.full(extra, -1, np.int64)])
        self._row = np.concatenate([self._row, np.full(extra, -1, np.int64)])
        shown: list[int] = []
        for screen in self.screens.values():
            new = [t for t in range(old, n) if screen.selection.tag(self.tags.name(t))]
            if new:
                ids = np.concatenate([screen.tids, np.asarray(new, np.int32)])
                names = [self.tags.name(int(t)) for t in ids]
                screen.tids = ids[sorted(range(len(ids)), key=names.__getitem__)]
                screen.layout += 1
                shown.extend(new)
        rows = sorted(set(shown))
        room = max(0, self.max_rows - len(self._h_bucket))
        self.dropped["history_rows"] += max(0, len(rows) - room)
        rows = rows[:room]
        if rows:
            first = len(self._h_bucket)
            self._row[rows] = np.arange(first, first + len(rows))
            self._h_bucket = np.concatenate([self._h_bucket, np.full((len(rows), POINTS), -1, np.int64)])
            self._h_sum = np.concatenate([self._h_sum, np.zeros((len(rows), POINTS))])
            self._h_cnt = np.concatenate([self._h_cnt, np.zeros((len(rows), POINTS), np.int64)])

    # -- frames -------------------------------------------------------------------------------

    def screen(self, name: str) -> Screen | None:
        return self.screens.get(name)

    def full(self, screen: Screen, now: int) -> dict[str, Any]:
        """Everything a page needs to draw ``screen`` from nothing."""
        cfg = screen.config
        tids = screen.tids
        names = [self.tags.name(int(t)) for t in tids]
        return {
            "site": self.site,
            "screen": {
                "name": cfg.name,
                "title": cfg.title,
                "lang": cfg.language or self.language,
                "acknowledge": cfg.acknowledge and bool(self.pins),
                "refresh_ms": cfg.refresh // NS_PER_MS,
                "stale_ms": self.boards.stale_after // NS_PER_MS,
                "step_ms": self.step // NS_PER_MS,
                "points": POINTS,
                "screens": list(self.screens),
            },
            "people": sorted(self.pins) if cfg.acknowledge else [],
            "layout": screen.layout,
            "version": self.version,
            "now": now // NS_PER_MS,
            "tags": [[n.rpartition("/")[0], n.rpartition("/")[2], self.units.get(n, "")] for n in names],
            "values": self._values(tids, np.arange(len(tids))),
            "history": self._full_history(tids, now),
            "alerts": self.alert_list(screen, now),
            "kpis": self.kpi_tiles(screen),
            "on_shift": self.on_shift_of(screen, now),
        }

    def delta(self, screen: Screen, since: int, now: int) -> dict[str, Any]:
        """The values of ``screen``'s tags changed after version ``since``, each with its
        current and previous sparkline bucket (a page keeps its own ring of them)."""
        pos = np.flatnonzero(self._changed[screen.tids] > since)
        out = self._values(screen.tids[pos], pos)
        rows = self._row[screen.tids[pos]]
        b = now // self.step
        hist = [
            [p, *(self._mean(int(r), int(b - k)) for k in (0, 1))] if r >= 0 else [p, None, None]
            for p, r in zip(pos.tolist(), rows.tolist(), strict=True)
        ]
        return {
            "now": now // NS_PER_MS,
            "version": self.version,
            "bucket": int(b),
            "values": out,
            "hist": hist,
        }

    def _values(self, tids: npt.NDArray[np.int32], pos: npt.NDArray[np.int64]) -> list[list[Any]]:
        """[position, value, quality, ts ms] of every seen tag among ``tids``."""
        seen = self._changed[tids] >= 0
        tids, pos = tids[seen], pos[seen]
        values = self._value[tids]
        ts = (self._ts[tids] // NS_PER_MS).tolist()
        q = self._quality[tids].tolist()
        return [
            [p, v if math.isfinite(v) else None, _QUALITY[qq], t]
            for p, v, qq, t in zip(pos.tolist(), values.tolist(), q, ts, strict=True)
        ]

    def _mean(self, row: int, bucket: int) -> float | None:
        s = bucket % POINTS
        if self._h_bucket[row, s] != bucket or not self._h_cnt[row, s]:
            return None
        return float(self._h_sum[row, s] / self._h_cnt[row, s])

    def _full_history(self, tids: npt.NDArray[np.int32], now: int) -> dict[str, Any]:
        """Per shown tag the means of the last ``POINTS`` buckets, oldest first (None: no data)."""
        last = now // self.step
        buckets = np.arange(last - POINTS + 1, last + 1)
        slots = buckets % POINTS
        rows = self._row[tids]
        out: list[list[float | None] | None] = []
        for r in rows.tolist():
            if r < 0:
                out.append(None)
                continue
            ok = (self._h_bucket[r, slots] == buckets) & (self._h_cnt[r, slots] > 0)
            means = np.where(ok, self._h_sum[r, slots] / np.maximum(self._h_cnt[r, slots], 1), np.nan)
            out.append([None if math.isnan(m) else round(m, 6) for m in means.tolist()])
        return {"bucket": int(last), "rows": out}

    def alert_list(self, screen: Screen, now: int) -> dict[str, Any]:
        """The screen's alerts: most severe first, unacknowledged before acknowledged, newest
        first; shelved ones last. At most ``SHOWN_ALERTS``, with the counts of all."""
        sel = screen.selection
        mine = [a for a in self.alerts.values() if sel.asset(a.asset)]
        states = {a.id: a.state(now) for a in mine}
        mine = [a for a in mine if states[a.id] != AlertState.NORMAL]

        def order(a: Alert) -> tuple[int, int, int, int]:
            st = states[a.id]
            unack = st in (AlertState.UNACK_ACTIVE, AlertState.UNACK_CLEARED)
            return (st == AlertState.SHELVED, -_RANK[a.severity], not unack, -a.raised_at)

        mine.sort(key=order)
        counts: dict[str, int] = {}
        for st in states.values():
            counts[st.value] = counts.get(st.value, 0) + 1
        return {
            "items": [_alert_json(a, states[a.id]) for a in mine[:SHOWN_ALERTS]],
            "total": len(mine),
            "counts": counts,
        }

    def kpi_tiles(self, screen: Screen) -> list[dict[str, Any]]:
        sel = screen.selection
        order = list(screen.config.kpis or [])
        tiles = [r for (kpi, asset), r in self.kpis.items() if sel.kpi(kpi, asset)]
        tiles.sort(key=lambda r: (order.index(r.kpi) if r.kpi in order else len(order), r.kpi, r.asset))
        return [self._tile(r) for r in tiles[:24]]

    def _tile(self, r: KpiResult) -> dict[str, Any]:
        from plantpulse.kpi.model import FRACTION_KINDS

        k = self.kpi_defs.get(r.kpi)
        name = k.name if k is not None and k.name else {}
        percent = (k.kind in FRACTION_KINDS) if k is not None else bool(r.target and r.target.endswith("%"))
        return {
            "kpi": r.kpi,
            "asset": r.asset,
            "name": name,
            "value": r.value,
            "percent": percent,
            "unit": (k.unit if k is not None else None) or "",
            "target": r.target,
            "met": r.met,
            "status": r.status,
            "partial": r.partial,
            "coverage": r.coverage,
            "window": r.window.label or r.window.name,
            "crew": r.crew,
        }

    def on_shift_of(self, screen: Screen, now: int) -> dict[str, list[str]]:
        """role -> people on shift now for the screen's assets (merged over its lines)."""
        if self.on_shift is None:
            return {}
        assets = sorted({self.tags.name(int(t)).rpartition("/")[0] for t in screen.tids})
        out: dict[str, list[str]] = {}
        for asset in assets or [""]:
            for role, people in self.on_shift(asset, now).items():
                have = out.setdefault(role, [])
                have.extend(p for p in people if p not in have)
        return out


def _same(a: Alert, b: Alert) -> bool:
    return (a.cleared_at, a.acked_at, a.shelved_until) == (b.cleared_at, b.acked_at, b.shelved_until)


def _ms(ns: int | None) -> int | None:
    return None if ns is None else ns // NS_PER_MS


def _alert_json(a: Alert, state: AlertState) -> dict[str, Any]:
    return {
        "id": a.id,
        "rule": a.rule,
        "tag": a.tag,
        "asset": a.asset,
        "severity": a.severity,
        "message": a.message,
        "value": a.value if math.isfinite(a.value) else None,
        "state": state.value,
        "raised_at": _ms(a.raised_at),
        "cleared_at": _ms(a.cleared_at),
        "acked_at": _ms(a.acked_at),
        "acked_by": a.acked_by,
        "shelved_until": _ms(a.shelved_until),
        "on_shift": a.on_shift,
    }
