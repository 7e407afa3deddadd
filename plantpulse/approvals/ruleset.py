"""A versioned rule set: compiled rules with what hot reload compares them by. Pure.

    rs = RuleSet.from_texts({"rules/weld.yaml": text, ...}, versions={"weld-dev": 7})
    rs.rules            # compiled, in file order; ConfigError with every problem otherwise
    rs.full["weld-dev"], rs.condition["weld-dev"]   # fingerprints of the rule as written

Texts come from the change log (the live versions) or from files on disk; problems point at
the file name the log gives (``rules/weld.yaml:12:7: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from plantpulse.approvals.diff import fingerprint, items
from plantpulse.errors import ConfigError, Problem
from plantpulse.rules.loader import load_rules_text
from plantpulse.rules.model import Rule

__all__ = ["RuleSet", "compile_rules"]


def compile_rules(texts: Mapping[str, str]) -> list[Rule]:
    """Every rule of every text, in order; ConfigError listing all problems, duplicates across
    files included."""
    problems: list[Problem] = []
    out: list[Rule] = []
    first: dict[str, str] = {}
    for file, text in texts.items():
        try:
            rules = load_rules_text(text, file)
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        for r in rules:
            if r.id in first:
                problems.append(
                    Problem(file, 1, 1, f"rule {r.id}", f"duplicate rule id (also in {first[r.id]})")
                )
            else:
                first[r.id] = file
                out.append(r)
    if problems:
        raise ConfigError(problems)
    return out


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    full: dict[str, str] = field(default_factory=dict)  # id -> fingerprint of the rule as written
    condition: dict[str, str] = field(default_factory=dict)  # id -> the same without presentation keys
    versions: dict[str, int] = field(default_factory=dict)  # id -> the change that made it (approvals)
    change: int | None = None  # the change that made the set what it is (None: files on disk)
    texts: dict[str, str] = field(default_factory=dict)  # file -> text the set was compiled from

    @classmethod
    def from_texts(
        cls, texts: Mapping[str, str], versions: Mapping[str, int] | None = None, change: int | None = None
    ) -> RuleSet:
        rules = compile_rules(texts)
        written = {k: v for file, text in texts.items() for k, v in items("rules", text, file)[0].items()}
        return cls(
            rules=tuple(rules),
            full={r.id: fingerprint(written.get(r.id, {})) for r in rules},
            condition={r.id: fingerprint(written.get(r.id, {}), condition=True) for r in rules},
            versions=dict(versions or {}),
            change=change,
            texts=dict(texts),
        )

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.rules]
