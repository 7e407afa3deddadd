"""``plantpulse demo``: a simulated welding line, the pipeline, SQLite and a push receiver on loopback.

The scenario (``weld-line.yaml``) and rules (``weld-rules.yaml``) next to this file are the
defaults; the scenario lists the alerts its faults must raise. Its welders are on OPC UA,
Modbus TCP and MQTT at once (``SimulatedLine``); with no ``mqtt_broker`` the line starts an
embedded MQTT broker in this process.

What it promises it shows: where each welder is served, the board's address, an API token
with a ``curl`` line that works as printed, and at the first alert a ``plantpulse ack`` line
for it (pointing at this demo's store); then every alert and every push with its
acknowledge link. One language per run (text.py), a fresh store and state unless
``resume`` (fresh.py); the console (``plantpulse.console``) colours severities on a terminal.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import shlex
import sys
from pathlib import Path
from urllib.parse import urlsplit

from plantpulse import yamlsrc
from plantpulse.alerts import AlertEvent
from plantpulse.api.config import ApiConfig
from plantpulse.app import run_pipeline
from plantpulse.config import PlantConfig, Site, SpoolConfig, StoreConfig
from plantpulse.console import Console
from plantpulse.demo.fresh import Start, prepare
from plantpulse.demo.text import in_language, team_in, translated_rules
from plantpulse.notifier.receiver import PushReceiver, Received
from plantpulse.people.roster import Roster
from plantpulse.people.schema import Language, TeamConfig
from plantpulse.ports import bind
from plantpulse.rules.loader import load_rule_files
from plantpulse.simulators.line import SimulatedLine
from plantpulse.simulators.mqtt import edge_node_id
from plantpulse.simulators.scenario import load_scenario
from plantpulse.store.sqlite import parse_sqlite_url

log = logging.getLogger(__name__)
DEMO_DIR = Path(__file__).parent
DEFAULT_RULES = DEMO_DIR / "weld-rules.yaml"
_LINK = re.compile(r"https?://\S+/ack/\S+")


def tag_count(served: int, plant: PlantConfig, lang: Language = "en") -> str:
    """``28 tags (21 configured, 7 discovered over MQTT at run time)``: the pipeline counts
    (and logs) only the tags its sources name; MQTT (Sparkplug B births) brings the rest."""
    configured = sum(len(src.tags) for src in plant.sources)
    if served == configured:
        return in_language(lang, "tags", tags=served)
    return in_language(lang, "tags_mqtt", tags=served, configured=configured, discovered=served - configured)


def _team(push_url: str, lang: Language) -> TeamConfig:
    """team.yaml in ``lang``, its contacts pointed at the receiver and a fresh link secret."""
    text = (DEMO_DIR / "team.yaml").read_text("utf-8")
    text = text.replace("@PUSH@", push_url.rpartition("/")[0]).replace("@SECRET@", secrets.token_urlsafe(24))
    return team_in(yamlsrc.validate(TeamConfig, yamlsrc.load(DEMO_DIR / "team.yaml", text=text)), lang)


def _recipients(team: TeamConfig) -> dict[str, str]:
    """Receiver path -> ``person (channel)``, to say whose phone a push went to."""
    return {
        urlsplit(url.get_secret_value()).path: f"{name} ({channel})"
        for name, person in team.people.items()
        for channel, url in person.contacts.items()
    }


def _program() -> list[str]:
    """How this process was started, so that a printed command runs as printed."""
    if Path(sys.argv[0]).name == "plantpulse":
        return [sys.argv[0]]
    return [sys.executable, "-m", "plantpulse"]


def _absolute(store_url: str) -> str:
    """A SQLite URL with an absolute path: the printed ``ack`` works from any folder."""
    if not store_url.lower().startswith("sqlite:"):
        return store_url
    path = parse_sqlite_url(store_url)
    return store_url if path == ":memory:" else f"sqlite:///{Path(path).resolve()}"


class _Narrator:
    """The demo's own lines: the banner, each alert and push, the ack example at the first raise."""

    def __init__(self, console: Console, lang: Language, team: TeamConfig, timezone: str, store: str) -> None:
        self.console = console
        self.lang = lang
        self.recipients = _recipients(team)
        self.roster = Roster(team, timezone)
        self.store = store  # for the ack example: this demo's store, absolute
        self.acked_example = False

    def say(self, key: str, **values: object) -> None:
        self.console.note(in_language(self.lang, "prefix") + in_language(self.lang, key, **values))

    def alert(self, ev: AlertEvent) -> None:
        self.console.alert(ev)
        if ev.kind == "raised" and not self.acked_example:
            self.acked_example = True
            on_shift = self.roster.on_shift(ev.asset, ev.raised_at)
            by = next((names[0] for names in on_shift.values() if names), "operator")
            command = shlex.join([*_program(), "ack", ev.alert_id, "--by", by, "--store", self.store])
            self.say("ack", command=command)

    def push(self, item: Received) -> None:
        body = item.body
        who = self.recipients.get(item.path, item.path)
        found = _LINK.search(str(body.get("message", body.get("body", ""))))
        self.console.push(who, str(body.get("title", "")), found.group(0) if found else None)


async def run_demo(
    scenario_path: Path,
    rule_paths: list[Path],
    store_url: str,
    duration: float | None,
    listen: str = "127.0.0.1:8080",
    *,
    mqtt_broker: tuple[str, int] | None = None,
    stop: asyncio.Event | None = None,
    lang: Language = "en",
    resume: bool = False,
    console: Console | None = None,
) -> int:
    console = console or Console(lang)
    scenario = load_scenario(scenario_path)
    rules = load_rule_files(rule_paths)
    if lang == "en" and [p.resolve() for p in rule_paths] == [DEFAULT_RULES.resolve()]:
        rules = translated_rules(rules, DEMO_DIR / "weld-rules.en.yaml")
    api = ApiConfig(listen=listen, token=secrets.token_urlsafe(24))
    bind(api.host, api.port, "http").close()  # a board port in use: said before anything starts
    store = StoreConfig(url=store_url, spool=SpoolConfig(lock_wait=0))  # fresh.prepare checked the lock
    start = prepare(store, resume=resume)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(api.host, api.host)
    base = f"http://{f'[{host}]' if ':' in host else host}:{api.port}"
    narrator: _Narrator | None = None

    def on_push(item: Received) -> None:
        if narrator is not None:
            narrator.push(item)

    async with (
        PushReceiver(on_push=on_push) as receiver,
        SimulatedLine(scenario, "127.0.0.1", mqtt_broker=mqtt_broker) as line,
    ):
        team = _team(receiver.url, lang)
        plant = PlantConfig(
            site=Site(name="demo welding shop", timezone="Asia/Shanghai"),
            sources=line.sources(),
            store=store,
            team=team,
            api=api,
        )
        narrator = _Narrator(console, lang, team, plant.site.timezone, _absolute(store_url))
        for text in line.describe():
            log.info("%s", text)
        _banner(
            narrator, line=line, tags=scenario.tag_names(), plant=plant, rules=len(rules),
            store_url=store_url, start=start,
        )  # fmt: skip
        narrator.say("board", url=f"{base}/")
        narrator.say("token", token=api.token.get_secret_value())
        curl = ["curl", "-sS", "-H", f"Authorization: Bearer {api.token.get_secret_value()}"]
        narrator.say("curl", command=shlex.join([*curl, f"{base}/api/alerts?limit=5"]))
        narrator.say("people")
        result = await run_pipeline(plant, rules, stop=stop, duration=duration, on_alert=narrator.alert)
    console.summary(result.stats.samples, result.stats.raised, result.stats.cleared, result.notifier_counts)
    return 0


def _banner(
    narrator: _Narrator,
    *,
    line: SimulatedLine,
    tags: list[str],
    plant: PlantConfig,
    rules: int,
    store_url: str,
    start: Start,
) -> None:
    """One line per simulator, then the counts and the store (fresh, resumed)."""
    lang = narrator.lang

    def welders(names: list[str]) -> str:
        return in_language(lang, "and").join(names)

    if line.opcua is not None:
        opcua = line.opcua
        narrator.say("opcua", welders=welders(opcua.scenario.welder_names()), endpoint=opcua.endpoint)
    for sim in line.modbus:
        units = sorted(sim.units.values())
        span = f"{units[0]}" if units[0] == units[-1] else f"{units[0]}-{units[-1]}"
        narrator.say("modbus", welders=welders(sim.scenario.welder_names()), address=sim.address, units=span)
    if line.mqtt is not None:
        m = line.mqtt
        kind = (
            in_language(lang, "sparkplug", node=edge_node_id(m.scenario))
            if m.format == "sparkplug"
            else in_language(lang, "json")
        )
        where = "embedded" if line.broker is not None else "broker"
        broker = in_language(lang, where, host=m.host, port=m.port)
        narrator.say("mqtt", welders=welders(m.scenario.welder_names()), format=kind, broker=broker)
    count = tag_count(len(tags), plant, narrator.lang)
    narrator.say("counts", tags=count, rules=rules, store=store_url + in_language(narrator.lang, start.value))
