"""Hot reload: the engine for a new rule set, built from the old engine's snapshot. Pure.

    r = reload(old_engine.snapshot(), old_set, new_set, tags)
    r.engine        # evaluates the new set from here on
    r.closed        # "cleared" events for the alerts the switch closes: hand them on like any
    r.kept, r.carried, r.fresh, r.removed          # rule ids, by what happened to their streams

What happens to each rule, compared by its YAML as written (``ruleset.RuleSet`` fingerprints):

* **kept**: the rule is the same: every (rule, tag) stream goes on exactly as it was, pending
  ``for`` windows and active alerts included; a window pending across the switch fires on time.
* **carried**: only ``description``, ``severity``, ``message`` or ``notify`` changed: the
  streams keep their state too (the condition is the one they were judged by); raises from
  here on use the new severity, message and policy, and an active alert stays the alert it was.
* **fresh**: the condition changed (threshold, tag, ``for``, clear band, kind) or the rule is
  new: its streams start inactive from the tags' held values (zero-order hold), so the next
  sample is judged by the new condition at once. A pending window is dropped (it was timed
  against the old condition) and an active alert is *closed* at the switch: a ``cleared``
  event at the engine's watermark. If the fault is still there, the new condition raises a
  new alert, which records the new rule version.
* **removed**: the rule is gone: its active alerts are closed the same way.

Closing rather than carrying an active alert over to a changed condition is deliberate: the
alert was raised by a rule that no longer exists, and "acknowledge an alert whose threshold
was changed under it" is not a question an operator should have to answer.

The closing events read the per-stream keys ``active``, ``raised_at``, ``raised_val`` and
``message`` of ``Engine.snapshot()`` (``StreamSet._alert_state``); the rule tests pin them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plantpulse.alerts import AlertEvent
from plantpulse.approvals.ruleset import RuleSet
from plantpulse.rules.engine import Engine
from plantpulse.samples import TagRegistry

__all__ = ["Reloaded", "reload"]


@dataclass(frozen=True)
class Reloaded:
    engine: Engine
    closed: list[AlertEvent] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    watermark: int | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "watermark": self.watermark,
            "kept": len(self.kept),
            "carried": len(self.carried),
            "fresh": len(self.fresh),
            "removed": len(self.removed),
            "closed": len(self.closed),
            "rules": {"carried": self.carried, "fresh": self.fresh, "removed": self.removed},
        }


def _closing(why: str) -> str:
    return f"closed at a rule change: {why}"


def reload(snapshot: Mapping[str, Any], old: RuleSet, new: RuleSet, tags: TagRegistry) -> Reloaded:
    """The engine for ``new`` continuing ``snapshot`` (taken of an engine running ``old``)."""
    old_rules = {r.id: r for r in old.rules}
    kept, carried, fresh = [], [], []
    for r in new.rules:
        if r.id not in old_rules or old.condition.get(r.id) != new.condition.get(r.id):
            fresh.append(r.id)
        elif old.full.get(r.id) == new.full.get(r.id):
            kept.append(r.id)
        else:
            carried.append(r.id)
    removed = [i for i in old_rules if i not in {r.id for r in new.rules}]
    keep = set(kept) | set(carried)
    rules_state = snapshot.get("rules", {})
    state = {**snapshot, "rules": {i: rs for i, rs in rules_state.items() if i in keep}}
    engine = Engine(list(new.rules), tags).restore(dict(state))
    watermark = snapshot.get("watermark")
    closed: list[AlertEvent] = []
    for rid in [*fresh, *removed]:
        rule = old_rules.get(rid)
        rs = rules_state.get(rid)
        if rule is None or rs is None or watermark is None:
            continue
        why = f"rule {rid} removed" if rid in removed else f"rule {rid} changed"
        if new.change is not None:
            why += f" by change #{new.change}"
        for tag, st in sorted(rs["streams"].items()):
            if not st.get("active") or st.get("raised_at") is None:
                continue
            value = st.get("raised_val")
            raised_at = int(st["raised_at"])
            val = math.nan if value is None else float(value)
            ev = AlertEvent(
                "cleared", rid, tag, rule.severity, raised_at, int(watermark), val, _closing(why),
                rule.notify, rule.for_ns,
            )  # fmt: skip
            closed.append(ev)
    return Reloaded(engine, closed, kept, carried, fresh, removed, watermark)
