"""JSON parsers on our MQTT payload shapes: json, orjson, msgspec (generic and typed), one run.

    .venv/bin/python benchmarks/bench_json.py [--repeat 3]

For each payload shape documented in docs/mqtt.md (one value, three fields, a nested ``d``
object, Telegraf's JSON output, 20 readings in an array) it times, in the same process and
run: ``json.loads`` (the baseline), ``orjson.loads`` (when installed: ``pip install orjson``;
it is not a plantpulse dependency), msgspec's generic decoder, msgspec
decoding into a Struct of the fields we read (what ``mqtt_json`` generates per topic), and the
whole ``JsonDecoder.decode_into`` (parse + extract into columns). Prints µs per message (best
of ``--repeat``) and the ratio against ``json.loads``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

try:
    import orjson
except ImportError:  # not a plantpulse dependency: pip install orjson to compare it
    orjson = None

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plantpulse.collectors.columns import Columns
from plantpulse.collectors.mqtt_config import JsonSubscription
from plantpulse.collectors.mqtt_json import JsonDecoder

T0 = 1_767_254_400_000

Reading = msgspec.defstruct("Reading", [("signal", Any), ("value", Any)])
THREE = {"current": "{asset}/current", "voltage": "{asset}/voltage", "current_sp": "{asset}/current_sp"}
TIME = {"timestamp": "$.ts", "timestamp_format": "ms"}
SHAPES: dict[str, tuple[bytes, dict[str, Any], Any]] = {
    "single value": (
        json.dumps({"ts": T0, "value": 180.2}).encode(),
        {"topic": "p/+/+", "tag": "{1}/{2}/current", "value": "$.value", **TIME},
        msgspec.defstruct("One", [("ts", Any), ("value", Any)]),
    ),
    "three fields": (
        json.dumps({"ts": T0, "current": 180.2, "voltage": 24.1, "current_sp": 180}).encode(),
        {"topic": "p/+/+", "asset": "{1}/{2}", "fields": THREE, **TIME},
        msgspec.defstruct("Three", [("ts", Any), ("current", Any), ("voltage", Any), ("current_sp", Any)]),
    ),
    "nested d (pattern)": (
        json.dumps(
            {"ts": T0, "d": {"current": 180.2, "voltage": 24.1, "wire_speed": 8.5, "running": True}}
        ).encode(),
        {"topic": "p/+/+", "asset": "{1}/{2}", "fields": "$.d.*", **TIME},
        msgspec.defstruct("Nested", [("ts", Any), ("d", dict[str, Any])]),
    ),
    "telegraf json": (
        json.dumps(
            {
                "fields": {"current": 180.2, "voltage": 24.1},
                "name": "weld",
                "tags": {"host": "gw1", "line": "line1", "welder": "weld01"},
                "timestamp": T0 // 1000,
            }
        ).encode(),
        {
            "topic": "telegraf/+/+",
            "asset": "{$.tags.line}/{$.tags.welder}",
            "fields": "$.fields.*",
            "timestamp": "$.timestamp",
            "timestamp_format": "s",
        },
        msgspec.defstruct(
            "Telegraf", [("fields", dict[str, Any]), ("tags", dict[str, Any]), ("timestamp", Any)]
        ),
    ),
    "20 readings (array)": (
        json.dumps(
            {"ts": T0, "readings": [{"signal": f"s{j}", "value": 1.5 * j} for j in range(20)]}
        ).encode(),
        {"topic": "p/+/+", "tag": "{1}/{2}/{signal}", "array": "$.readings", "value": "value", **TIME},
        msgspec.defstruct("Batch", [("ts", Any), ("readings", list[Reading])]),  # type: ignore[valid-type]
    ),
}


def per_call_us(fn: Callable[[], object], seconds: float = 0.3) -> float:
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t
        if elapsed >= seconds:
            return elapsed / n * 1e6
        n *= 2 if elapsed < seconds / 8 else 1 + int(seconds / max(elapsed, 1e-9))


def parsers(
    payload: bytes, sub: dict[str, Any], struct: Any, generic: msgspec.json.Decoder[Any], topic: bytes
) -> dict[str, Callable[[], object]]:
    typed = msgspec.json.Decoder(struct)
    decoder = JsonDecoder([JsonSubscription.model_validate(sub)])
    cols = Columns(decoder.tags)

    def into() -> None:
        decoder.decode_into(cols, topic, payload, 0)
        if len(cols) > 100_000:
            cols.take()

    return {
        "json": lambda: json.loads(payload),
        "orjson": (lambda: orjson.loads(payload)) if orjson is not None else (lambda: json.loads(payload)),
        "msgspec": lambda: generic.decode(payload),
        "typed": lambda: typed.decode(payload),
        "into": into,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    generic = msgspec.json.Decoder()
    print(f"{'payload':22} {'bytes':>5}  {'json':>7} {'orjson':>14} {'msgspec':>14} {'msgspec typed':>14}"
          f" {'decode_into':>14}")  # fmt: skip
    for name, (payload, sub, struct) in SHAPES.items():
        topic = b"telegraf/line1/weld01" if name.startswith("telegraf") else b"p/line1/weld01"
        best = {
            k: min(per_call_us(f) for _ in range(args.repeat))
            for k, f in parsers(payload, sub, struct, generic, topic).items()
        }
        base = best["json"]
        cells = [f"{best[k]:6.2f}µs ({base / best[k]:4.1f}×)" for k in ("orjson", "msgspec", "typed", "into")]
        print(f"{name:22} {len(payload):5d}  {base:5.2f}µs " + " ".join(f"{c:>14}" for c in cells))
    print("(×: json.loads time / this time, same run; decode_into parses and fills columns)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
