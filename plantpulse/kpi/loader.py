"""Load KPI files, collecting every problem before failing (like the rule loader).

Each file is parsed, each KPI validated on its own so one bad KPI does not hide the next,
then checks that span keys, KPIs and files run: OEE components, one counter modulus, running
set, band or histogram per tag template, duplicate ids, and, when the plant's team and rules
are given, the shifts, people, roles, policies and rules a KPI names. All problems of all
files are raised together as one ConfigError, each at ``FILE:LINE:COL: kpi ID: key: what``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from plantpulse import yamlsrc
from plantpulse.errors import ConfigError, Problem
from plantpulse.kpi.model import INPUTS, Break, Kpi, KpiSet, compile_globs
from plantpulse.kpi.schema import KIND_NAMES, AlarmSettings, KpiFileSpec, KpiSpec, OeeSpec, TimeWeightedSpec
from plantpulse.people.schema import TeamConfig
from plantpulse.rules.model import glob_regex, is_glob

__all__ = ["default_shifts", "load_kpi_files"]

_SPEC: TypeAdapter[Any] = TypeAdapter(KpiSpec)
_WHERE = re.compile(r"kpis\.(\d+)(?:\.(.*))?")
_OEE_PARTS = {
    "availability": ("availability",),
    "performance": ("performance",),
    "quality": ("yield", "ratio"),
}


@dataclass
class _Item:
    """One KPI that passed the schema, with what cross-file checks need."""

    kpi: Kpi
    spec: Any
    doc: yamlsrc.Document
    path: yamlsrc.Path_
    ok: bool = True  # False: its own problems are reported; other KPIs may still name it

    def problem(self, sub: tuple[str | int, ...], what: str) -> Problem:
        return self.doc.problem((*self.path, *sub), what, f"kpi {self.kpi.id}")

    @property
    def here(self) -> str:
        line, col = self.doc.position((*self.path, "id"))
        return f"{self.doc.file}:{line}:{col}"


def default_shifts(team: TeamConfig) -> tuple[str, ...]:
    """Shift windows when a file names none: the shifts the rotations use, else every shift."""
    used = [s for rot in team.rotations.values() for s in rot.pattern]
    return tuple(dict.fromkeys(used)) if used else tuple(team.shifts)


def load_kpi_files(
    paths: Sequence[Path | str],
    *,
    team: TeamConfig | None = None,
    rule_ids: Collection[str] | None = None,
) -> KpiSet:
    """Every KPI of every file, in file order; raises ConfigError listing all problems.

    ``team`` and ``rule_ids`` (from plant.yaml) enable the checks of names they define."""
    problems: list[Problem] = []
    items: list[_Item] = []
    parameters: list[str] = []
    alarms: tuple[AlarmSettings, str] | None = None
    for path in paths:
        try:
            doc = yamlsrc.load(path)
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        problems.extend(doc.problems)
        if doc.data is None:
            continue
        try:
            top = KpiFileSpec.model_validate(doc.data)
        except ValidationError as e:
            problems.extend(yamlsrc.problems_from(e, doc))
            raw = doc.data.get("kpis") if isinstance(doc.data, dict) else None
            if not isinstance(raw, list):
                continue
            top = KpiFileSpec(kpis=raw)  # still check every KPI, with the file defaults
        if team is not None:
            for i, name in enumerate(top.shifts or []):
                if name not in team.shifts:
                    problems.append(doc.problem(("shifts", i), f"unknown shift {name!r}", "shifts"))
        parameters.extend(top.parameters)
        if top.alarms is not None:
            line, col = doc.position(("alarms",))
            if alarms is not None:
                problems.append(
                    doc.problem(("alarms",), f"alarm settings are already given at {alarms[1]}", "alarms")
                )
            else:
                alarms = (top.alarms, f"{doc.file}:{line}:{col}")
        for i, raw in enumerate(top.kpis):
            item = _load_one(doc, i, raw, top=top, team=team, rule_ids=rule_ids, problems=problems)
            if item is not None:
                items.append(item)
    kpis = _cross_check(items, problems)
    if problems:
        raise ConfigError(problems)
    return KpiSet(
        kpis=tuple(kpis),
        parameters=tuple(dict.fromkeys(parameters)),
        alarms=alarms[0] if alarms else AlarmSettings(),
        files=tuple(str(p) for p in paths),
    )


def _name(raw: Any, i: int) -> str:
    kid = raw.get("id") if isinstance(raw, dict) else None
    return f"kpi {kid}" if isinstance(kid, str) and kid else f"kpi #{i + 1}"


def _renamed(problems: list[Problem], name: str) -> list[Problem]:
    """``kpis.0.target`` -> ``kpi weld-fpy: target``."""
    out = []
    for p in problems:
        m = _WHERE.fullmatch(p.where)
        if m:
            out.append(replace(p, where=f"{name}: {m.group(2)}" if m.group(2) else name))
        else:
            out.append(p)
    return out


def _schema_problems(e: ValidationError, doc: yamlsrc.Document, i: int, raw: Any) -> list[Problem]:
    path: yamlsrc.Path_ = ("kpis", i)
    name = _name(raw, i)
    kinds = ", ".join(KIND_NAMES)
    found = []
    for err in e.errors(include_url=False):
        if err["type"] == "union_tag_not_found":
            found.append(doc.problem(path, f"missing required key 'kind' (one of {kinds})", name))
        elif err["type"] == "union_tag_invalid":
            what = f"unknown kind {raw.get('kind')!r}: use one of {kinds}"
            found.append(doc.problem((*path, "kind"), what, name))
    if found:
        return found
    return _renamed(yamlsrc.problems_from(e, doc, prefix=path), name)


def _load_one(
    doc: yamlsrc.Document,
    i: int,
    raw: Any,
    *,
    top: KpiFileSpec,
    team: TeamConfig | None,
    rule_ids: Collection[str] | None,
    problems: list[Problem],
) -> _Item | None:
    path: yamlsrc.Path_ = ("kpis", i)
    try:
        spec = _SPEC.validate_python(raw)
    except ValidationError as e:
        problems.extend(_schema_problems(e, doc, i, raw))
        return None
    kpi = _compile(spec, top)
    item = _Item(kpi, spec, doc, path)
    found: list[Problem] = []

    def bad(sub: tuple[str | int, ...], what: str) -> None:
        found.append(item.problem(sub, what))

    for key, template in zip(INPUTS[kpi.kind], kpi.inputs, strict=True):
        what = _template_problem(template)
        if what:
            bad((key,), what)
    if kpi.inputs and is_glob(kpi.assets) and not any("{asset}" in t for t in kpi.inputs):
        bad(("assets",), "with a glob in assets, name the tags with {asset} (e.g. {asset}/good_count)")
    if isinstance(spec, TimeWeightedSpec):
        _check_stat(spec, bad)
    _check_target(kpi, bad)
    if team is not None:
        _check_team(kpi, team, bad)
    if rule_ids is not None:
        for j, pattern in enumerate(kpi.rules):
            rx = glob_regex(pattern)
            if not any(rx.match(r) for r in rule_ids):
                bad(("rules", j), f"no rule id matches {pattern!r}")
    problems.extend(found)
    item.ok = not found
    return item


def _compile(spec: Any, top: KpiFileSpec) -> Kpi:
    name = spec.name if isinstance(spec.name, dict) else ({"": spec.name} if spec.name else {})
    kind = spec.kind
    args: dict[str, Any] = {}
    if isinstance(spec, OeeSpec):
        args["components"] = (spec.availability, spec.performance, spec.quality)
    else:
        args["assets"] = spec.assets
        args["inputs"] = tuple(getattr(spec, key) for key in INPUTS[kind])
    for key in ("modulus", "stat", "p"):
        if hasattr(spec, key):
            args[key] = getattr(spec, key)
    if hasattr(spec, "running"):
        args["running"] = tuple(sorted(set(spec.running)))
    if kind == "performance":
        args["ideal_cycle"] = spec.ideal_cycle
    if kind == "time_weighted":
        args["band"] = spec.band
        args["bins"] = (spec.bins.from_, spec.bins.to, spec.bins.width) if spec.bins else None
    if kind == "alert_count":
        args["rules"] = tuple(spec.rules)
        args["severities"] = tuple(spec.severities) if spec.severities else None
    return Kpi(
        id=spec.id,
        kind=kind,
        name=name,
        windows=tuple(spec.windows),
        target=spec.target,
        warning=spec.warning,
        notify=tuple(spec.notify) if isinstance(spec.notify, list) else spec.notify,
        min_coverage=spec.min_coverage if spec.min_coverage is not None else top.min_coverage,
        rollup=spec.rollup,
        unit=spec.unit,
        shifts=tuple(top.shifts) if top.shifts is not None else None,
        breaks=tuple(Break(b.start, b.end, tuple(b.days) if b.days else None) for b in top.breaks),
        **args,
    )


def _template_problem(template: str) -> str | None:
    try:
        names = [n for _, n, spec, conv in string.Formatter().parse(template) if n is not None]
    except ValueError as e:
        return f"invalid tag name template: {e}"
    for n in names:
        if n != "asset":
            return f"unknown placeholder {{{n}}} in a tag name: only {{asset}} is known"
    return None


def _check_stat(spec: TimeWeightedSpec, bad: Any) -> None:
    if spec.stat == "percentile":
        if spec.p is None:
            bad(("stat",), "stat: percentile needs p (e.g. p: 95)")
        if spec.bins is None:
            bad(("stat",), "stat: percentile needs bins: {from, to, width}")
    else:
        for key in ("p", "bins"):
            if getattr(spec, key) is not None:
                bad((key,), f"{key} is only used with stat: percentile")
    if spec.stat == "outside":
        if spec.band is None:
            bad(("stat",), "stat: outside needs band: [low, high]")
        elif spec.band[0] > spec.band[1]:
            bad(("band",), "band: [low, high] needs low <= high")
    elif spec.band is not None:
        bad(("band",), "band is only used with stat: outside")


def _check_target(kpi: Kpi, bad: Any) -> None:
    t, w = kpi.target, kpi.warning
    for key, lv in (("target", t), ("warning", w)):
        if lv is None:
            continue
        if kpi.fraction and not lv.percent and not 0 <= lv.value <= 1:
            bad((key,), f"this KPI is a share: write {lv.value:g}% or {lv.value / 100:g}")
        if not kpi.fraction and lv.percent:
            bad((key,), "this KPI is in the tag's units (or a count): write the level without %")
    if w is not None:
        if t is None:
            bad(("warning",), "a warning level needs a target")
        elif (w.value < t.value) if t.higher_is_better else (w.value > t.value):
            side = "at or above" if t.higher_is_better else "at or below"
            bad(("warning",), f"the warning level must be {side} the target ({t.text})")


def _check_team(kpi: Kpi, team: TeamConfig, bad: Any) -> None:
    if "shift" in kpi.windows and not team.shifts:
        bad(("windows",), "shift windows need shifts in the team config (docs/people.md)")
    if isinstance(kpi.notify, str):
        if kpi.notify not in team.policies:
            bad(("notify",), f"unknown policy {kpi.notify!r}")
    elif kpi.notify is not None:
        roles = team.roles
        for j, who in enumerate(kpi.notify):
            if who not in roles and who not in team.people:
                bad(("notify", j), f"{who!r} is neither a role nor a person")


def _cross_check(items: list[_Item], problems: list[Problem]) -> list[Kpi]:
    by_id: dict[str, _Item] = {}
    for it in items:
        first = by_id.get(it.kpi.id)
        if first is not None:
            problems.append(
                it.problem(("id",), f"duplicate kpi id {it.kpi.id!r} (first defined at {first.here})")
            )
        else:
            by_id[it.kpi.id] = it
    bad_ids: set[str] = set()
    seen: dict[tuple[str, str], tuple[Any, _Item]] = {}

    def one_per_tag(it: _Item, what: str, template: str, value: Any, key: str) -> None:
        prev = seen.setdefault((what, template), (value, it))
        if prev[0] != value:
            problems.append(
                it.problem(
                    (key,),
                    f"{template} is read with another {what} by kpi {prev[1].kpi.id} ({prev[1].here});"
                    f" one {what} per tag",
                )
            )
            bad_ids.add(it.kpi.id)

    for it in items:
        k = it.kpi
        if by_id[k.id] is not it or not it.ok:
            continue  # a duplicate, or a KPI with problems of its own: reported above
        if k.kind in ("yield", "ratio", "performance"):
            for key, template in zip(INPUTS[k.kind], k.inputs, strict=True):
                if key != "state":
                    one_per_tag(it, "modulus", template, k.modulus, "modulus")
        if k.kind in ("availability", "performance"):
            one_per_tag(it, "running set", k.inputs[INPUTS[k.kind].index("state")], k.running, "running")
        if k.kind == "time_weighted":
            if k.stat == "outside":
                one_per_tag(it, "band", k.inputs[0], k.band, "band")
            if k.stat == "percentile":
                one_per_tag(it, "bins", k.inputs[0], k.bins, "bins")
    out: list[Kpi] = []
    for it in items:
        k = it.kpi
        if by_id.get(k.id) is not it or k.id in bad_ids or not it.ok:
            continue
        if k.kind == "oee":
            oee = _oee(it, by_id, problems)
            if oee is None:
                continue
            k = oee
        out.append(compile_globs(k))
    return out


def _oee(it: _Item, by_id: dict[str, _Item], problems: list[Problem]) -> Kpi | None:
    k = it.kpi
    ok = True
    parts: list[Kpi] = []
    for key, ref in zip(_OEE_PARTS, k.components, strict=True):
        other = by_id.get(ref)
        kinds = _OEE_PARTS[key]
        if other is None:
            problems.append(it.problem((key,), f"unknown kpi {ref!r}"))
            ok = False
            continue
        if other.kpi.kind not in kinds:
            problems.append(
                it.problem((key,), f"kpi {ref!r} is a {other.kpi.kind} kpi; {key} needs {' or '.join(kinds)}")
            )
            ok = False
            continue
        missing = [w for w in k.windows if w not in other.kpi.windows]
        if missing:
            problems.append(it.problem((key,), f"kpi {ref!r} has no {', '.join(missing)} windows"))
            ok = False
        parts.append(other.kpi)
    if ok and len({p.assets.strip("/") for p in parts}) > 1:
        problems.append(it.problem(("availability",), "the three components must have the same assets"))
        ok = False
    if not ok or not all(by_id[c].ok for c in k.components):
        return None
    return replace(k, assets=parts[0].assets)
