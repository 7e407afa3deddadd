"""What ``rules propose | approve | reject`` do, for the command line and the HTTP API alike.

    plant = Plant.of(load_config("plant.yaml"))
    change = await propose(plant, log, store, [Path("rules/weld.yaml")], by="吴芳", reason="...", now=t)
    change = await decide(plant, log, 7, by="李娜", approve=True, text="ok", now=t)

Each operation reads the log, decides with the pure parts (``chain``, ``diff``, ``predict``)
and appends its records in one transaction on the head it read; if someone appended
meanwhile, it reads and decides again (``Conflict``). A person's request that the rules refuse
raises ``Refused`` with one line to show them. Every append also writes the new head to
``<state dir>/changelog.head``: a witness outside the database that ``rules log --verify``
checks, so deleting the newest records is found too.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from plantpulse.approvals import chain as ch
from plantpulse.approvals.changelog import ChangeLog, Conflict
from plantpulse.approvals.changes import Change, History, fold, sha256
from plantpulse.approvals.config import ApprovalsConfig, ChainSpec, relative
from plantpulse.approvals.diff import FileDiff, Kind, diff_file
from plantpulse.approvals.holders import roles_of
from plantpulse.approvals.log import Entry, Record
from plantpulse.approvals.predict import alarm_settings, predict
from plantpulse.approvals.ruleset import compile_rules
from plantpulse.config import LoadedConfig
from plantpulse.errors import ConfigError, PlantPulseError
from plantpulse.kpi.model import KpiSet
from plantpulse.people.schema import TeamConfig
from plantpulse.rules.model import Rule
from plantpulse.store.base import Store

log = logging.getLogger(__name__)

__all__ = ["Plant", "Refused", "adopt", "decide", "history", "propose", "read_witness"]

DAY = 86400 * 10**9
RETRIES = 5
T = TypeVar("T")


class Refused(PlantPulseError):
    """A request the approval rules refuse; the message is one line for the person."""


@dataclass(frozen=True)
class Plant:
    """What the approval operations need of a loaded plant.yaml."""

    loaded: LoadedConfig
    approvals: ApprovalsConfig
    files: dict[str, tuple[Kind, Path]]  # name in the log (relative to plant.yaml) -> kind, path

    @classmethod
    def of(cls, loaded: LoadedConfig) -> Plant:
        cfg = loaded.plant.approvals
        if cfg is None:
            raise Refused(f"{loaded.path}: approvals are off (add an approvals: section, docs/approvals.md)")
        base = loaded.path.parent
        files: dict[str, tuple[Kind, Path]] = {}
        for kind, paths in (("rules", loaded.rule_files), ("kpis", loaded.kpi_files)):
            for p in paths:
                files[relative(p, base)] = (kind, p)  # type: ignore[assignment]
        return cls(loaded, cfg, files)

    @property
    def team(self) -> TeamConfig:
        return self.loaded.plant.team

    @property
    def witness_file(self) -> Path:
        return self.loaded.plant.store.state_dir / "changelog.head"

    def name(self, path: Path) -> str:
        name = relative(path, self.loaded.path.parent)
        if name not in self.files:
            raise Refused(
                f"{path} is not a rule or KPI file of {self.loaded.path} (see its rules: and kpis:)"
            )
        return name

    def chain(self, name: str) -> tuple[int, ChainSpec]:
        found = self.approvals.chain_for(name)
        if found is None:  # load_config refuses such a plant; kept for files named since
            raise Refused(f"{name} matches no chain in approvals.chains")
        return found

    def person(self, name: str) -> str:
        if name not in self.team.people:
            raise Refused(f"unknown person {name!r}: approvals are signed by people of team.people")
        return name

    def disk(self) -> dict[str, str]:
        return {name: path.read_text(encoding="utf-8") for name, (_, path) in sorted(self.files.items())}


# -- reading ------------------------------------------------------------------------------------


async def history(log_: ChangeLog) -> tuple[History, list[Record]]:
    records = await log_.records()
    return fold(records), records


def write_witness(path: Path, record: Record) -> None:
    """Keep (seq, hash) of the newest record this machine appended, atomically."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{record.seq} {record.hash}\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:  # the log itself is written; only the extra witness is missing
        log.warning("cannot write the change log witness %s: %s", path, e)


def read_witness(path: Path) -> tuple[int, str] | None:
    try:
        seq, h = path.read_text(encoding="utf-8").split()
        return int(seq), h
    except (OSError, ValueError):
        return None


async def _append(
    log_: ChangeLog, plant: Plant | None, decide_: Callable[[History], Awaitable[tuple[list[Entry], T]]]
) -> tuple[list[Record], T]:
    """Read, decide, append on the head read; again on Conflict."""
    for attempt in range(RETRIES):
        h, _ = await history(log_)
        entries, result = await decide_(h)
        if not entries:
            return [], result
        try:
            recs = await log_.append(entries, head=h.head)
        except Conflict:
            if attempt == RETRIES - 1:
                raise
            continue
        if plant is not None:
            write_witness(plant.witness_file, recs[-1])
        return recs, result
    raise AssertionError("unreachable")


# -- baseline -----------------------------------------------------------------------------------


async def adopt(plant: Plant, log_: ChangeLog, *, now: int, actor: str = "plantpulse") -> History:
    """Record, as a ``baseline`` change, every plant file the log has no version of yet (its
    text on disk now): approvals were just switched on, or a file was added to plant.yaml."""

    async def decide_(h: History) -> tuple[list[Entry], None]:
        new = {n: t for n, t in plant.disk().items() if n not in h.live}
        if not new:
            return [], None
        compile_rules({n: t for n, t in new.items() if plant.files[n][0] == "rules"})
        files = [
            {"file": n, "kind": plant.files[n][0], "text": t, "sha256": sha256(t)} for n, t in new.items()
        ]
        return [Entry(h.next_id, now, "baseline", actor, {"files": files})], None

    recs, _ = await _append(log_, plant, decide_)
    if recs:
        log.info("change log: baseline #%d adopted %s from disk", recs[0].change, ", ".join(plant.disk()))
    return (await history(log_))[0]


# -- propose ------------------------------------------------------------------------------------


def _emergency_problem(plant: Plant, by: str, diffs: Sequence[FileDiff]) -> str | None:
    em = plant.approvals.emergency
    if em is None:
        return "emergency changes are off (approvals.emergency in plant.yaml)"
    if not roles_of(plant.team, by) & set(em.roles):
        return f"{by} may not make emergency changes (approvals.emergency.roles: {', '.join(em.roles)})"
    if em.changes == "disable":
        for d in diffs:
            kept = [x for x in d.items if x.status not in ("removed", "unchanged")]
            if kept or d.settings:
                what = kept[0].id if kept else d.settings[0][0]
                return (
                    f"an emergency change may only remove rules or KPIs (approvals.emergency.changes:"
                    f" disable); {d.file}: {what} is {kept[0].status if kept else 'changed'}"
                )
    return None


async def propose(
    plant: Plant,
    log_: ChangeLog,
    store: Store,
    paths: Sequence[Path],
    *,
    by: str,
    reason: str,
    now: int,
    days: int | None = None,
    emergency: bool = False,
    texts: Mapping[str, str] | None = None,
    source: str = "",
) -> Change:
    """Record a proposal of the files at ``paths`` as they are on disk (or ``texts``: name ->
    text, from the API) with its diffs and predicted load; an emergency goes live at once."""
    plant.person(by)
    if not reason.strip():
        raise Refused("a proposal needs a reason (--reason)")
    new_texts = (
        dict(texts) if texts is not None else {plant.name(p): p.read_text(encoding="utf-8") for p in paths}
    )
    for name in new_texts:
        if name not in plant.files:
            raise Refused(f"{name} is not a rule or KPI file of {plant.loaded.path}")
    if not new_texts:
        raise Refused("name at least one rule or KPI file")
    chains = {plant.chain(n)[0] for n in new_texts}
    if len(chains) > 1:
        raise Refused(f"{', '.join(new_texts)} have different approval chains: propose them separately")
    spec = plant.chain(next(iter(new_texts)))[1]
    days = plant.approvals.backtest_days if days is None else days
    if days < 1:
        raise Refused("--days must be at least 1")

    async def decide_(h: History) -> tuple[list[Entry], int]:
        live_rules = h.versions("rules")
        all_rules = {**live_rules, **{n: t for n, t in new_texts.items() if plant.files[n][0] == "rules"}}
        new_rules = compile_rules(all_rules)  # ConfigError: every problem, FILE:LINE:COL
        _check_kpis(plant, new_texts, {r.id for r in new_rules})
        diffs = []
        for name, text in new_texts.items():
            live = h.live.get(name)
            if live is not None and live.text == text:
                continue
            diffs.append(diff_file(name, plant.files[name][0], live.text if live else None, text))
        if not diffs:
            raise Refused(f"nothing to propose: {', '.join(new_texts)} is the live version")
        if emergency and (problem := _emergency_problem(plant, by, diffs)) is not None:
            raise Refused(problem)
        changed = {d.file for d in diffs}
        files = [
            {"file": n, "kind": plant.files[n][0], "text": t, "sha256": sha256(t),
             "base": h.live[n].change if n in h.live else None}
            for n, t in new_texts.items() if n in changed
        ]  # fmt: skip
        prediction = await _predict(
            plant, store=store, h=h, diffs=diffs, live_rules=live_rules, all_rules=all_rules,
            new_texts=new_texts, days=days, now=now,
        )  # fmt: skip
        cid = h.next_id
        detail = {
            "source": source,
            "files": files,
            "reason": reason,
            "diffs": [d.to_json() for d in diffs],
            "prediction": prediction,
            "emergency": emergency,
            "chain": {
                "files": list(spec.files),
                "levels": list(spec.levels),
                "remind": spec.remind,
                "escalate_after": spec.escalate.after if spec.escalate else None,
                "escalate_to": list(spec.escalate.to) if spec.escalate else [],
            },
        }
        entries = [Entry(cid, now, "proposed", by, detail)]
        if emergency:
            entries.append(Entry(cid, now, "activated", by, {"files": sorted(changed), "emergency": True}))
        return entries, cid

    _, cid = await _append(log_, plant, decide_)
    return (await history(log_))[0].changes[cid]


def _check_kpis(plant: Plant, texts: Mapping[str, str], rule_ids: set[str]) -> None:
    kpis = {n: t for n, t in texts.items() if plant.files[n][0] == "kpis"}
    if kpis:
        load_kpi_texts(kpis, team=plant.team, rule_ids=rule_ids)


def load_kpi_texts(texts: Mapping[str, str], *, team: TeamConfig, rule_ids: set[str] | None) -> KpiSet:
    """KPI files from their texts (the KPI loader reads paths), problems named by file."""
    from plantpulse.kpi.loader import load_kpi_files

    with tempfile.TemporaryDirectory(prefix="plantpulse-kpis-") as tmp:
        names: dict[str, str] = {}
        for i, (name, text) in enumerate(texts.items()):
            p = Path(tmp) / f"{i}.yaml"
            p.write_text(text, encoding="utf-8")
            names[str(p)] = name
        try:
            kset = load_kpi_files(list(names), team=team, rule_ids=rule_ids)
        except ConfigError as e:
            raise ConfigError([replace(p, file=names.get(p.file, p.file)) for p in e.problems]) from None
    return replace(kset, files=tuple(names.values()))


def approved(loaded: LoadedConfig) -> tuple[list[Rule], KpiSet]:
    """The approved rules and KPIs of a plant with approvals on (what ``kpi report|alarms|trace``
    evaluate), read from the change log; the files on disk are adopted first if it has none."""
    import asyncio
    import time

    from plantpulse.approvals.changelog import open_change_log

    plant = Plant.of(loaded)

    async def read() -> History:
        log_ = open_change_log(loaded.plant.store)
        await log_.open()
        try:
            return await adopt(plant, log_, now=time.time_ns())
        finally:
            await log_.close()

    h = asyncio.run(read())
    rules = compile_rules(h.versions("rules"))
    kset = load_kpi_texts(h.versions("kpis"), team=plant.team, rule_ids={r.id for r in rules})
    return rules, kset


async def _predict(
    plant: Plant,
    *,
    store: Store,
    h: History,
    diffs: Sequence[FileDiff],
    live_rules: Mapping[str, str],
    all_rules: Mapping[str, str],
    new_texts: Mapping[str, str],
    days: int,
    now: int,
) -> dict[str, Any] | None:
    from plantpulse.kpi.calendar import Calendar
    from plantpulse.people.roster import Roster

    altered = {d.id for f in diffs if f.kind == "rules" for d in f.items if d.status != "unchanged"}
    live_kpis = h.versions("kpis")
    new_kpis = {**live_kpis, **{n: t for n, t in new_texts.items() if plant.files[n][0] == "kpis"}}
    settings = (alarm_settings(live_kpis), alarm_settings(new_kpis))
    if not altered and settings[0] == settings[1]:
        return None
    report = list(dict.fromkeys(d.id for f in diffs if f.kind == "rules" for d in f.items))
    roster = Roster(plant.team, plant.loaded.plant.site.timezone)
    p = await predict(
        store,
        compile_rules(live_rules),
        compile_rules(all_rules),
        altered=altered,
        report=report,
        calendar=Calendar(roster),
        settings=settings,
        start=now - days * DAY,
        end=now,
    )
    return {**p.to_json(), "days": days}


# -- approve / reject ---------------------------------------------------------------------------


async def decide(
    plant: Plant,
    log_: ChangeLog,
    change: int,
    *,
    by: str,
    approve: bool,
    text: str | None,
    now: int,
    source: str = "",
) -> Change:
    """Approve (``text``: an optional comment) or reject (``text``: the reason) ``change``."""
    plant.person(by)
    roles = roles_of(plant.team, by)

    async def decide_(h: History) -> tuple[list[Entry], None]:
        c = h.changes.get(change)
        if c is None:
            raise Refused(f"no change #{change}")
        if c.chain is None:
            raise Refused(f"change #{change} is a baseline (files adopted from disk): nothing to approve")
        if approve and c.activated_at is None and (stale := h.stale(c)):
            raise Refused(
                f"change #{change} was proposed against an older version of {', '.join(stale)}:"
                " reject it and propose again"
            )
        event: ch.Event = (
            ch.Approve(now, by, roles, text or None) if approve else ch.Reject(now, by, roles, text or "")
        )
        _, actions = ch.advance(c.chain, event)
        for a in actions:
            if isinstance(a, ch.Refuse):
                raise Refused(a.reason)
        entries: list[Entry] = []
        for a in actions:
            if isinstance(a, ch.Accept):
                detail = {"level": a.level, "role": a.role, "source": source}
                detail.update({"comment": text} if approve and text else {"reason": text} if text else {})
                entries.append(Entry(change, now, "approved" if approve else "rejected", by, detail))
            elif isinstance(a, ch.Activate):
                files = sorted(v.file for v in c.files)
                entries.append(Entry(change, now, "activated", by, {"files": files, "emergency": False}))
        return entries, None

    await _append(log_, plant, decide_)
    return (await history(log_))[0].changes[change]


async def record(
    log_: ChangeLog, plant: Plant | None, entries_of: Callable[[History], list[Entry]]
) -> list[Record]:
    """Append what ``entries_of`` makes of the current log (adapters: notified, applied)."""

    async def decide_(h: History) -> tuple[list[Entry], None]:
        return entries_of(h), None

    return (await _append(log_, plant, decide_))[0]
