"""Golden cases for JSON extraction: cases/<name>/{config.yaml, messages.jsonl, expected.csv},
one per payload shape documented in docs/mqtt.md (flat fields, nested objects, patterns, arrays of
readings and of objects, Telegraf JSON, several subscriptions on one topic, report by exception).

``config.yaml`` holds ``subscriptions:`` as in plant.yaml; each line of ``messages.jsonl`` is
``{"topic", "json" | "payload" | "payload_hex", "received" (ns), "error"?}`` (``error``: the
expected DecodeError cause); ``expected.csv`` is the samples interchange format (SPEC §3)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from plantpulse.collectors.mqtt_config import JsonSubscription
from plantpulse.collectors.mqtt_json import DecodeError, JsonDecoder
from plantpulse.samples import Quality, Sample
from plantpulse.timefmt import parse_ts

CASES = sorted(p for p in (Path(__file__).parent / "cases").iterdir() if p.is_dir())


def _payload(line: dict[str, object]) -> bytes:
    if "json" in line:
        return json.dumps(line["json"]).encode()
    if "payload_hex" in line:
        return bytes.fromhex(str(line["payload_hex"]))
    return str(line["payload"]).encode()


def _expected(path: Path) -> list[Sample]:
    with path.open(encoding="utf-8") as f:
        return [
            Sample(parse_ts(r["ts"]), r["tag"], float(r["value"]), Quality.parse(r.get("quality") or "good"))
            for r in csv.DictReader(f)
        ]


def _key(s: Sample) -> tuple[int, str, float, Quality]:
    return (s.ts, s.tag, -math.inf if math.isnan(s.value) else s.value, s.quality)


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "generic"])
@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_golden_case(case: Path, typed: bool) -> None:
    """Every case twice: with the typed shapes the decoder generates per topic, and without."""
    config = yaml.safe_load((case / "config.yaml").read_text(encoding="utf-8"))
    decoder = JsonDecoder([JsonSubscription.model_validate(s) for s in config["subscriptions"]], typed=typed)
    got: list[Sample] = []
    errors: list[str | None] = []
    expected_errors: list[str | None] = []
    for raw in (case / "messages.jsonl").read_text(encoding="utf-8").splitlines():
        line = json.loads(raw)
        expected_errors.append(line.get("error"))
        try:
            got.extend(decoder.decode(line["topic"], _payload(line), int(line["received"])))
            errors.append(None)
        except DecodeError as e:
            errors.append(e.cause)
    assert errors == expected_errors
    assert [_key(s) for s in got] == [_key(s) for s in _expected(case / "expected.csv")]


def test_every_case_has_its_files() -> None:
    assert len(CASES) >= 14
    for case in CASES:
        assert {p.name for p in case.iterdir()} >= {"config.yaml", "messages.jsonl", "expected.csv"}
