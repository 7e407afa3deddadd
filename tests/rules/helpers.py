"""Shared helpers: run the engine over samples cut into batches, as reference Alerts."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence

from plantpulse.alerts import AlertEvent
from plantpulse.rules.engine import Engine
from plantpulse.rules.loader import load_rules_text
from plantpulse.rules.model import Rule
from plantpulse.samples import Sample, SampleBatch, TagRegistry

from .reference import Alert, _v

S = 1_000_000_000


def rules(text: str) -> list[Rule]:
    return load_rules_text(text, "test.yaml")


def alerts_of(events: Sequence[AlertEvent]) -> list[Alert]:
    """Pair raised/cleared events into alerts; checks each stream alternates properly."""
    open_: dict[tuple[str, str], AlertEvent] = {}
    out: list[Alert] = []
    for ev in events:
        key = (ev.rule, ev.tag)
        if ev.kind == "raised":
            assert key not in open_, f"second raise while active: {ev}"
            open_[key] = ev
        else:
            r = open_.pop(key)
            assert r.raised_at == ev.raised_at and ev.at >= r.raised_at, (r, ev)
            out.append(Alert(ev.rule, ev.tag, ev.raised_at, ev.at, _v(ev.value)))
    out += [Alert(e.rule, e.tag, e.raised_at, None, _v(e.value)) for e in open_.values()]
    return sorted(out, key=lambda a: (a.rule, a.tag, a.raised_at))


def batches(samples: Sequence[Sample], cuts: Sequence[int]) -> list[tuple[int, int]]:
    """The (start, stop) rows of each batch when ``samples`` are cut at ``cuts``."""
    return list(itertools.pairwise([0, *sorted(set(cuts)), len(samples)]))


def run(
    rule_list: list[Rule],
    samples: Sequence[Sample],
    cuts: Sequence[int] = (),
    *,
    restore_at: int | None = None,
    end: int | None = None,
    beats: Mapping[int, int] | None = None,
) -> list[AlertEvent]:
    """Feed ``samples`` in batches split at ``cuts``; optionally snapshot/restore (through
    JSON) into a fresh engine and registry before batch ``restore_at``; after batch ``i``
    advance the watermark to ``beats[i]`` (a heartbeat); at the end advance to ``end``."""
    tags = TagRegistry()
    eng = Engine(rule_list, tags)
    events: list[AlertEvent] = []
    for i, (a, b) in enumerate(batches(samples, cuts)):
        if restore_at is not None and i == restore_at:
            state = json.loads(json.dumps(eng.snapshot(), allow_nan=False))
            tags = TagRegistry(["zz/unrelated"])  # a differently numbered registry
            eng = Engine(rule_list, tags).restore(state)
        if a < b:
            events += eng.process(SampleBatch.from_samples(tags, list(samples[a:b])))
        if beats and i in beats:
            events += eng.advance(beats[i])
    if end is None and samples:
        end = max(s.ts for s in samples)
    if end is not None:
        events += eng.advance(end)
    return events
