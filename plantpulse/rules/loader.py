"""Load rule files into compiled rules, collecting every problem before failing.

Like Prometheus' rulefmt, a bad rule never silently disappears: each file is parsed, each rule
validated on its own (so one bad rule does not hide the problems of the next), and checks that
span several keys run on every rule that passed the schema. All problems of all files are
raised together as one ConfigError, each pointing at the offending key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from plantpulse import yamlsrc
from plantpulse.errors import ConfigError, Problem
from plantpulse.rules import template
from plantpulse.rules.expr import FUNCTIONS, ExprError
from plantpulse.rules.expr import parse as parse_expr
from plantpulse.rules.model import Kind, Rule, default_message, glob_regex, is_glob
from plantpulse.rules.schema import CONDITION_KEYS, RuleFileSpec, RuleSpec

__all__ = ["load_rule_files", "load_rules_text"]


def load_rule_files(paths: Sequence[Path | str]) -> list[Rule]:
    """Every rule of every file, in file order; raises ConfigError listing all problems."""
    problems: list[Problem] = []
    rules: list[Rule] = []
    first_seen: dict[str, str] = {}
    for path in paths:
        try:
            doc = yamlsrc.load(path)
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        rules.extend(_load_doc(doc, problems, first_seen))
    if problems:
        raise ConfigError(problems)
    return rules


def load_rules_text(text: str, file: str = "<rules>") -> list[Rule]:
    """Rules from YAML text (rule unit tests may inline their rules)."""
    doc = yamlsrc.load(file, text=text)
    problems: list[Problem] = []
    rules = _load_doc(doc, problems, {})
    if problems:
        raise ConfigError(problems)
    return rules


def _load_doc(doc: yamlsrc.Document, problems: list[Problem], first_seen: dict[str, str]) -> list[Rule]:
    problems.extend(doc.problems)  # duplicate keys found while parsing
    if doc.data is None:
        return []
    try:
        top = RuleFileSpec.model_validate(doc.data)
    except ValidationError as e:
        problems.extend(yamlsrc.problems_from(e, doc))
        return []
    out: list[Rule] = []
    for i, item in enumerate(top.rules):
        path: yamlsrc.Path_ = ("rules", i)
        try:
            spec = RuleSpec.model_validate(item)
        except ValidationError as e:
            problems.extend(yamlsrc.problems_from(e, doc, prefix=path))
            continue
        if any(bad[: len(path)] == path for bad in doc.unreadable):
            continue  # a value YAML could not read is already reported; nothing to compile
        where = f"rule {spec.id}"
        found: list[Problem] = []

        def bad(
            sub: tuple[str | int, ...],
            what: str,
            found: list[Problem] = found,
            where: str = where,
            path: yamlsrc.Path_ = path,
        ) -> None:
            found.append(doc.problem((*path, *sub), what, where))

        rule = _compile(spec, cast(Mapping[str, Any], item), bad)
        line, col = doc.position((*path, "id"))
        here = f"{doc.file}:{line}:{col}"
        if spec.id in first_seen:
            bad(("id",), f"duplicate rule id {spec.id!r} (first defined at {first_seen[spec.id]})")
        else:
            first_seen[spec.id] = here
        problems.extend(found)
        if rule is not None and not found:
            out.append(rule)
    return out


def _compile(spec: RuleSpec, raw: Mapping[str, Any], bad: Any) -> Rule | None:
    present = [k for k in raw if k in CONDITION_KEYS]
    if (empty := next((k for k in present if raw[k] is None), None)) is not None:
        bad((empty,), f"{empty} needs a value")
        return None
    if not present:
        bad((), "a rule needs one condition: " + ", ".join(CONDITION_KEYS))
        return None
    if len(present) > 1:
        bad((present[1],), f"a rule has exactly one condition; {present[0]!r} is already given")
        return None
    kind = cast(Kind, present[0])
    args: dict[str, Any] = {}
    clear = spec.clear
    clear_limit = clear.limit if clear else None
    if clear_limit is not None and kind in ("stale", "expr"):
        bad(("clear", "limit"), f"clear.limit makes no sense for {kind} rules")
        clear_limit = None
    if clear is not None and kind == "stale" and clear.for_:
        bad(("clear", "for"), "a stale alert clears at the next sample; clear.for makes no sense here")
    if spec.vars is not None and kind != "expr":
        bad(("vars",), "vars is only used by expr rules")
    single = clear_limit if isinstance(clear_limit, float | int) else None
    if clear_limit is not None and kind != "outside" and single is None:
        bad(("clear", "limit"), "clear.limit is a single number for this rule")
    if kind in ("above", "below", "rate"):
        if kind == "rate":
            assert spec.rate is not None
            if (spec.rate.above is None) == (spec.rate.below is None):
                bad(("rate",), "rate needs exactly one of above or below")
                return None
            if spec.rate.per <= 0:
                bad(("rate", "per"), "rate.per must be longer than zero")
            direction = "above" if spec.rate.above is not None else "below"
            x = spec.rate.above if spec.rate.above is not None else spec.rate.below
            args.update(direction=direction, per_ns=spec.rate.per)
        else:
            direction = kind
            x = spec.above if kind == "above" else spec.below
        assert x is not None
        lim = x if single is None else single
        if direction == "above" and lim > x:
            bad(
                ("clear", "limit"),
                f"clear.limit {lim:g} must be <= {x:g} (it clears when the value is back at or below it)",
            )
        if direction == "below" and lim < x:
            bad(
                ("clear", "limit"),
                f"clear.limit {lim:g} must be >= {x:g} (it clears when the value is back at or above it)",
            )
        args.update(threshold=x, clear_threshold=lim)
    elif kind == "outside":
        assert spec.outside is not None
        lo, hi = spec.outside
        if lo > hi:
            bad(("outside",), f"outside: [low, high] needs low <= high, got [{lo:g}, {hi:g}]")
        clo, chi = lo, hi
        if clear_limit is not None:
            if isinstance(clear_limit, tuple):
                clo, chi = clear_limit
                if not lo <= clo <= chi <= hi:
                    bad(
                        ("clear", "limit"),
                        f"clear.limit [{clo:g}, {chi:g}] must be an inner band of [{lo:g}, {hi:g}]",
                    )
            else:
                bad(("clear", "limit"), "clear.limit of an outside rule is an inner band [low, high]")
        args.update(low=lo, high=hi, clear_low=clo, clear_high=chi)
    elif kind == "deviation":
        dev = spec.deviation
        assert dev is not None
        lim = dev.limit if single is None else single
        if not 0 <= lim <= dev.limit:
            bad(("clear", "limit"), f"clear.limit {lim:g} must be between 0 and the limit {dev.limit:g}")
        args.update(threshold=dev.limit, clear_threshold=lim)
        if isinstance(dev.setpoint, str):
            if not dev.setpoint.strip():
                bad(("deviation", "setpoint"), "setpoint is a number or a tag name")
            args["inputs"] = (dev.setpoint,)
        else:
            args["setpoint"] = float(dev.setpoint)
    elif kind == "stale":
        assert spec.stale is not None
        if spec.stale <= 0:
            bad(("stale",), "stale needs a duration longer than zero")
        args["stale_ns"] = spec.stale
    else:
        assert spec.expr is not None
        try:
            compiled = parse_expr(spec.expr)
        except ExprError as e:
            bad(("expr",), f"expr column {e.col}: {e}")
            return None
        variables = spec.vars or {}
        for name in variables:
            if not name.isidentifier() or name in FUNCTIONS or name == "value":
                bad(("vars", name), f"{name!r} cannot be a variable name")
        inputs: list[str] = []
        slots: list[tuple[str, int]] = []
        for name in compiled.names:
            if name == "value":
                slots.append((name, 0))
                continue
            inputs.append(variables.get(name, "{asset}/" + name))
            slots.append((name, len(inputs)))
        args.update(expr=compiled, expr_slots=tuple(slots), inputs=tuple(inputs))
    message = spec.message if spec.message is not None else default_message(kind, spec.for_ > 0)
    problem = template.check(message, kind)
    if problem:
        bad(("message",), problem)
    return Rule(
        id=spec.id,
        tag=spec.tag,
        kind=kind,
        severity=spec.severity,
        for_ns=spec.for_,
        clear_for_ns=clear.for_ if clear else 0,
        message=message,
        description=spec.description,
        notify=spec.notify,
        _regex=glob_regex(spec.tag) if is_glob(spec.tag) else None,
        **args,
    )
