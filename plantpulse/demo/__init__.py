"""``plantpulse demo``: a simulated welding line, the pipeline, SQLite and a push receiver on loopback.

The scenario (``weld-line.yaml``) and rules (``weld-rules.yaml``) next to this file are the
defaults; the scenario lists the alerts its faults must raise, and the summary compares.
Its welders are on OPC UA, Modbus TCP and MQTT at once (``SimulatedLine``); with no
``mqtt_broker`` the line starts an embedded MQTT broker in this process.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path

from plantpulse import yamlsrc
from plantpulse.api.config import ApiConfig
from plantpulse.app import run_pipeline
from plantpulse.commands import _print_alert, _print_summary
from plantpulse.config import NotificationsConfig, PlantConfig, Site, StoreConfig
from plantpulse.notifier.receiver import PushReceiver, Received
from plantpulse.people.schema import TeamConfig
from plantpulse.rules.loader import load_rule_files
from plantpulse.simulators.line import SimulatedLine
from plantpulse.simulators.scenario import load_scenario

log = logging.getLogger(__name__)
DEMO_DIR = Path(__file__).parent


def _print_push(item: Received) -> None:
    title = item.body.get("title", "")
    to = f" to {item.path.rpartition('/')[2]}" if item.path.startswith("/team/") else ""
    print(f"         push received{to}: {title}", flush=True)


def tag_count(served: int, plant: PlantConfig) -> str:
    """``28 tags (21 configured, 7 discovered over MQTT at run time)``: the pipeline counts
    (and logs) only the tags its sources name; MQTT (Sparkplug B births) brings the rest."""
    configured = sum(len(src.tags) for src in plant.sources)
    if served == configured:
        return f"{served} tags"
    return f"{served} tags ({configured} configured, {served - configured} discovered over MQTT at run time)"


def _team(push_url: str) -> TeamConfig:
    """team.yaml with its contacts pointed at the receiver and a fresh link secret."""
    text = (DEMO_DIR / "team.yaml").read_text("utf-8")
    text = text.replace("@PUSH@", push_url.rpartition("/")[0]).replace("@SECRET@", secrets.token_urlsafe(24))
    return yamlsrc.validate(TeamConfig, yamlsrc.load(DEMO_DIR / "team.yaml", text=text))


async def run_demo(
    scenario_path: Path,
    rule_paths: list[Path],
    store_url: str,
    duration: float | None,
    listen: str = "127.0.0.1:8080",
    *,
    mqtt_broker: tuple[str, int] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    scenario = load_scenario(scenario_path)
    rules = load_rule_files(rule_paths)
    async with (
        PushReceiver(on_push=_print_push) as receiver,
        SimulatedLine(scenario, "127.0.0.1", mqtt_broker=mqtt_broker) as line,
    ):
        plant = PlantConfig(
            site=Site(name="demo welding shop", timezone="Asia/Shanghai"),
            sources=line.sources(),
            store=StoreConfig(url=store_url),
            notifications=NotificationsConfig(urls=[receiver.url]),
            team=_team(receiver.url),
            api=ApiConfig(listen=listen, token=secrets.token_urlsafe(24)),
        )
        print(
            "".join(f"demo: {text}\n" for text in line.describe())
            + f"demo: {tag_count(len(scenario.tag_names()), plant)}, {len(rules)} rules, "
            f"store {store_url}, pushes to {receiver.url}\n"
            f"demo: live board on http://{listen}/ ; Ctrl-C to stop",
            flush=True,
        )
        result = await run_pipeline(plant, rules, stop=stop, duration=duration, on_alert=_print_alert)
    _print_summary(result.stats.samples, result.stats.raised, result.stats.cleared, result.notifier_counts)
    return 0
