"""The demo speaks one language per run: its narration, the alert texts and the pushes.

``--lang zh|en`` chooses; without it the locale does (``LC_ALL``, ``LC_MESSAGES``, ``LANG``:
Chinese for ``zh_*``, English otherwise). The rule texts of the demo's own rules are in
``weld-rules.yaml`` (Chinese) with their English in ``weld-rules.en.yaml``; the team's
language is the run's, for every person (the demo's director reads English otherwise).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from pydantic import RootModel

from plantpulse import yamlsrc
from plantpulse.errors import ConfigError
from plantpulse.people.schema import Language, TeamConfig
from plantpulse.rules import template
from plantpulse.rules.model import Rule
from plantpulse.schema import StrictModel

__all__ = ["TEXT", "default_language", "in_language", "team_in", "translated_rules"]

TEXT: dict[Language, dict[str, str]] = {
    "en": {
        "prefix": "demo: ",
        "opcua": "{welders} on OPC UA at {endpoint}",
        "modbus": "{welders} on Modbus TCP at {address}, unit {units}",
        "mqtt": "{welders} on MQTT ({format}) through {broker}",
        "sparkplug": "Sparkplug B, edge node {node}",
        "json": "JSON",
        "and": ", ",
        "embedded": "the embedded broker at mqtt://{host}:{port}",
        "broker": "the broker at mqtt://{host}:{port}",
        "tags": "{tags} tags",
        "tags_mqtt": "{tags} tags ({configured} configured, {discovered} discovered over MQTT at run time)",
        "counts": "{tags}, {rules} rules, store {store}",
        "new": "",
        "fresh": " (a fresh one: the previous run's store and state were removed; --resume keeps them)",
        "fresh-state": " (a fresh start: the previous run's state was removed; the store keeps its alerts)",
        "resumed": " (resumed: the previous run's alerts and escalations go on; without --resume: afresh)",
        "board": "live board on {url} ; Ctrl-C to stop",
        "token": "API token: {token}",
        "curl": "the API: {command}",
        "people": "pushes go to the people on shift, each with an acknowledge link",
        "ack": "acknowledge it here: {command}",
    },
    "zh": {
        "prefix": "演示:",
        "opcua": "{welders} 通过 OPC UA:{endpoint}",
        "modbus": "{welders} 通过 Modbus TCP:{address},从站 {units}",
        "mqtt": "{welders} 通过 MQTT({format}):{broker}",
        "sparkplug": "Sparkplug B,边缘节点 {node}",
        "json": "JSON",
        "and": "、",
        "embedded": "内置代理 mqtt://{host}:{port}",
        "broker": "代理 mqtt://{host}:{port}",
        "tags": "{tags} 个测点",
        "tags_mqtt": "{tags} 个测点(配置 {configured} 个,运行时经 MQTT 发现 {discovered} 个)",
        "counts": "{tags},{rules} 条规则,存储 {store}",
        "new": "",
        "fresh": "(全新开始:已删除上次运行的存储和状态;--resume 可保留)",
        "fresh-state": "(全新开始:已删除上次运行的状态;存储中保留以前的报警)",
        "resumed": "(继续上次运行:其报警和升级继续进行;不加 --resume 则全新开始)",
        "board": "实时看板 {url} ;按 Ctrl-C 停止",
        "token": "API 令牌:{token}",
        "curl": "调用 API:{command}",
        "people": "推送发给当班人员,每条都带确认链接",
        "ack": "在此确认:{command}",
    },
}


def default_language(env: Mapping[str, str]) -> Language:
    """The locale's language as POSIX ranks the variables; English unless it is Chinese."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def in_language(lang: Language, key: str, **values: object) -> str:
    return TEXT[lang][key].format(**values)


class _RuleText(StrictModel):
    description: str | None = None
    message: str | None = None


class _RuleTexts(RootModel[dict[str, _RuleText]]):
    pass


def translated_rules(rules: list[Rule], texts: Path) -> list[Rule]:
    """``rules`` with the descriptions and messages of ``texts`` (rule id -> texts); a message
    that is not a valid template for its rule, or an id no rule has, is a ConfigError."""
    doc = yamlsrc.load(texts)
    by_id = yamlsrc.validate(_RuleTexts, doc).root
    known = {r.id: r for r in rules}
    problems = [doc.problem((rid,), "no rule has this id", where=rid) for rid in by_id if rid not in known]
    for rid, t in by_id.items():
        if rid in known and t.message and (problem := template.check(t.message, known[rid].kind)):
            problems.append(doc.problem((rid, "message"), problem, where=rid))
    if problems:
        raise ConfigError(problems)
    out = []
    for rule in rules:
        text = by_id.get(rule.id)
        if text is None:
            out.append(rule)
            continue
        out.append(
            dataclasses.replace(
                rule, description=text.description or rule.description, message=text.message or rule.message
            )
        )
    return out


def team_in(team: TeamConfig, lang: Language) -> TeamConfig:
    """``team`` with every person reading ``lang``."""
    people = {name: p.model_copy(update={"language": None}) for name, p in team.people.items()}
    return team.model_copy(update={"language": lang, "people": people})
