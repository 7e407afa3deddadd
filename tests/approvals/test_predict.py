"""A proposal's predicted load is exactly what ``rules backtest`` and ``alarm_kpis`` give by hand
over the same stored samples."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import pytest

from plantpulse.alerts import Alert
from plantpulse.cli import main
from plantpulse.config import StoreConfig
from plantpulse.kpi.alarms import alarm_kpis
from plantpulse.kpi.calendar import Calendar
from plantpulse.kpi.schema import AlarmSettings
from plantpulse.people.roster import Roster
from plantpulse.people.schema import TeamConfig
from plantpulse.samples import Quality, Sample, SampleBatch, TagRegistry
from plantpulse.store import open_store
from plantpulse.timefmt import parse_ts
from tests.approvals.helpers import edit, make_plant

S = 10**9


def faults(t0: int) -> list[Sample]:
    """An hour of a welder at 1 Hz: setpoint 200 A; deviations of 6 A (over the old limit of 5,
    under the new 8) and of 10 A (over both), each for 4 s, and a hot spell."""
    out = [Sample(t0, "line1/weld01/current_sp", 200.0)]
    for i in range(3600):
        t = t0 + i * S
        dev = 6.0 if i % 120 in range(10, 14) else 10.0 if i % 600 in range(300, 304) else 0.5
        out.append(Sample(t, "line1/weld01/current", 200.0 + dev))
        out.append(Sample(t, "line1/weld01/temp", 90.0 if 1000 <= i < 1015 else 60.0,
                          Quality.BAD if i == 2000 else Quality.GOOD))  # fmt: skip
    return out


async def _write(store_config: StoreConfig, samples: list[Sample]) -> None:
    store = open_store(store_config)
    await store.open()
    try:
        await store.write_samples(SampleBatch.from_samples(TagRegistry(), samples), "b1")
    finally:
        await store.close()


async def _read(store_config: StoreConfig, start: int, end: int, tags: TagRegistry) -> SampleBatch:
    store = open_store(store_config)
    await store.open()
    try:
        names = ["line1/weld01/current", "line1/weld01/current_sp", "line1/weld01/temp"]
        return await store.read_samples(names, start, end, tags, prior=True)
    finally:
        await store.close()


def test_predicted_load_equals_a_backtest_by_hand(
    tmp_path: Path, store_config: StoreConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    plant = make_plant(tmp_path, store_config)
    c = ["-c", str(plant)]
    t0 = (time.time_ns() - 86400 * S) // S * S  # yesterday, whole seconds
    asyncio.run(_write(store_config, faults(t0)))
    assert main(["rules", "log", *c]) == 0
    rules = tmp_path / "rules" / "weld.yaml"
    edit(rules, "limit: 5}", "limit: 8}")
    assert main(["rules", "propose", str(rules), *c, "--by", "吴芳", "--reason", "误报"]) == 0
    capsys.readouterr()
    assert main(["rules", "show", "2", *c, "--format", "json"]) == 0
    p = json.loads(capsys.readouterr().out)["prediction"]
    assert p["days"] == 2 and p["end"] - p["start"] == 2 * 86400 * S
    assert p["samples"] == len(faults(t0))

    # by hand: the same range exported to a file, rules backtest, then alarm_kpis
    tags = TagRegistry()
    batch = asyncio.run(_read(store_config, p["start"], p["end"], tags))
    data = tmp_path / "samples.csv"
    with data.open("w", encoding="utf-8") as f:
        f.write("ts,tag,value,quality\n")
        for ts, tag, value, q in zip(batch.ts, batch.tag, batch.value, batch.quality, strict=True):
            f.write(
                f"{int(ts) / S:.3f},{tags.name(int(tag))},{float(value)!r},{Quality(int(q)).name.lower()}\n"
            )
    counts: dict[str, dict[str, int]] = {}
    figures: dict[str, dict[str, object]] = {}
    operator = {"asset": "line1", "roles": ["operator"], "people": ["王强"]}
    team = TeamConfig.model_validate({"people": {"王强": {"roles": ["operator"]}}, "assignments": [operator]})
    for side, text in (("old", "limit: 5}"), ("new", "limit: 8}")):
        f = tmp_path / f"{side}.yaml"
        f.write_text(rules.read_text(encoding="utf-8").replace("limit: 8}", text), encoding="utf-8")
        assert main(["rules", "backtest", "--rules", str(f), "--data", str(data), "--format", "jsonl"]) == 0
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        counts[side] = {r: sum(1 for a in lines if a["rule"] == r) for r in ("weld-current", "weld-temp")}
        alerts = [
            Alert(id=a["id"], rule=a["rule"], tag=a["tag"], asset=a["asset"], severity=a["severity"],
                  message=a["message"], raised_at=parse_ts(a["raised_at"]),
                  value=a["value"] if a["value"] is not None else math.nan,
                  cleared_at=parse_ts(a["cleared_at"]) if a["cleared_at"] else None)
            for a in lines
        ]  # fmt: skip
        (fig,) = alarm_kpis(alerts, [], Calendar(Roster(team, "Asia/Shanghai")), AlarmSettings(),
                            start=p["start"], end=p["end"])  # fmt: skip
        figures[side] = {
            "alarms": fig.alarms, "avg_per_interval": round(fig.avg_per_interval, 6),
            "peak_per_interval": fig.peak_per_interval, "flood_share": round(fig.flood_share, 6),
            "chattering": len(fig.chattering), "verdict": fig.verdict,
        }  # fmt: skip
    assert counts["old"]["weld-current"] > counts["new"]["weld-current"] > 0
    assert p["rules"] == [
        {"id": r, "old": counts["old"][r], "new": counts["new"][r]} for r in ("weld-current", "weld-temp")
    ]
    assert p["positions"] == [{"position": "line1", "old": figures["old"], "new": figures["new"]}]
    assert p["alerts"] == {"old": sum(counts["old"].values()), "new": sum(counts["new"].values())}
