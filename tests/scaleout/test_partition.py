"""Partitioned evaluation is the single-process evaluation: pure parts, no broker.

The demo line's truth is cut by the collectors' batcher into per-partition messages and
evaluated by one ``PartitionState`` per partition; the alerts are exactly the scenario's, for
any partition count, and across a takeover from a checkpoint with messages delivered again.
"""

from __future__ import annotations

import pytest

from plantpulse.alerts import AlertEvent
from plantpulse.samples import Sample
from plantpulse.scaleout.collect import Batcher
from plantpulse.scaleout.partition import Incoming, PartitionState
from plantpulse.scaleout.partitioning import Partitioner
from plantpulse.scaleout.wire import Route
from tests.scaleout import scenario as sc


def messages(samples: list[Sample], partitions: int, chunk: int) -> dict[int, list[Incoming]]:
    """What the collect role publishes for ``samples`` delivered ``chunk`` at a time."""
    batcher = Batcher(Partitioner(sc.scenario().tag_names(), sc.rules(), partitions))
    out: dict[int, list[Incoming]] = {p: [] for p in range(partitions)}
    for i in range(0, len(samples), chunk):
        batcher.add(Route.LIVE, samples[i : i + chunk])
        for p, value in batcher.drain(heartbeat=True):
            out[p].append(Incoming(len(out[p]), value))
    return out


@pytest.mark.parametrize(("partitions", "chunk"), [(1, 5_000), (4, 700), (16, 50_000)])
def test_partitions_raise_exactly_the_expected_alerts(partitions: int, chunk: int) -> None:
    rules = sc.rules()
    events: list[AlertEvent] = []
    for msgs in messages(sc.truth(), partitions, chunk).values():
        state = PartitionState(rules)
        for i in range(0, len(msgs), 3):
            events += [t.event for t in state.step(msgs[i : i + 3])]
    assert sc.alerts_of(events) == sc.expected()


def test_groups_keep_a_streams_inputs_together() -> None:
    part = Partitioner(sc.scenario().tag_names(), sc.rules(), 16)
    assert part.partition("line1/weld01/current") == part.partition("line1/weld01/current_sp")
    assert part.group("line9/new/tag") == "line9/new"  # a tag seen only at run time goes with its asset


def test_takeover_from_a_checkpoint_with_redelivery_gives_each_alert_once() -> None:
    """A worker checkpoints, evaluates further (raising alerts) and dies; the next one restores
    the checkpoint and is handed everything after an older committed offset again."""
    rules = sc.rules()
    events: list[AlertEvent] = []
    for msgs in messages(sc.truth(), 2, 1_000).values():
        first = PartitionState(rules)
        cut = len(msgs) // 3
        events += [t.event for t in first.step(msgs[:cut])]
        blob = first.checkpoint()
        events += [t.event for t in first.step(msgs[cut : 2 * cut])]  # lost with the worker, then sent again
        second = PartitionState(rules, blob)
        again = second.step(msgs[cut // 2 :])  # the committed offset lags the checkpoint
        assert second.stats.skipped == cut - cut // 2
        events += [t.event for t in again]
    assert sc.alerts_of(events) == sc.expected()
