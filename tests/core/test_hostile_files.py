"""Hostile files through every YAML loader: each problem is one ``FILE:LINE:COL: message`` line
and exit 1, never a traceback, and never gigabytes of memory.

The billion-laughs CLI runs in a child with a 512 MiB address-space limit, so a regression fails
fast with a MemoryError instead of taking the machine down; tracemalloc measures what the
command allocated. (Rule values and expressions are golden cases: rules/cases/check/hostile.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from plantpulse import yamlsrc
from plantpulse.cli import main
from plantpulse.config import load_config
from plantpulse.errors import ConfigError
from plantpulse.people.cli import _load as load_roster
from plantpulse.rules.loader import load_rule_files
from plantpulse.simulators.scenario import load_scenario

CHILD = textwrap.dedent(
    """
    import contextlib, io, resource, sys, tracemalloc
    resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))
    from plantpulse.cli import main
    with contextlib.redirect_stderr(io.StringIO()):  # (a plant.yaml with no source is refused)
        main([*sys.argv[1:-1], "warm.yaml"])  # the same command on an empty file: imports are not measured
    tracemalloc.start()
    rc = main(sys.argv[1:])
    print(f"peak {tracemalloc.get_traced_memory()[1]}")
    sys.exit(rc)
    """
)


def cli_child(*args: str, cwd: Path) -> tuple[int, str, int]:
    """(exit code, stderr, bytes traced at the peak) of ``plantpulse ARGS`` in a limited child."""
    (cwd / "warm.yaml").write_text("{}\n", encoding="utf-8")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    peak = int(r.stdout.rpartition("peak ")[2]) if "peak " in r.stdout else -1
    return r.returncode, r.stderr, peak


def laughs() -> str:
    """The classic: nine lists of nine aliases, nine deep: 9**9 strings from about 500 bytes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_billion_laughs_is_refused_before_anything_is_expanded(tmp_path: Path) -> None:
    bomb = laughs()
    assert len(bomb.encode()) < 600
    (tmp_path / "plant.yaml").write_text(bomb, encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(bomb + "rules: []\n", encoding="utf-8")
    for args in (("check", "-c", "plant.yaml"), ("rules", "check", "rules.yaml")):
        code, err, peak = cli_child(*args, cwd=tmp_path)
        # the first *a3 (in a4) passes 10,000 expanded nodes: 90 + 819 + 7380 + 7381
        assert (code, err) == (1, f"{args[-1]}:5:10: aliases expand to more than 10000 nodes in this file\n")
        assert 0 <= peak < 4 << 20, f"{args}: {peak / 2**20:.1f} MiB traced"


def _rules(path: Path) -> object:
    return load_rule_files([path])


LOADERS: dict[str, Callable[[Path], object]] = {
    "plant.yaml": load_config,
    "rule file": _rules,
    "scenario": load_scenario,
    "roster": load_roster,
}


def problems(load: Callable[[Path], object], path: Path, text: str) -> list[str]:
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load(path)
    return [str(p).removeprefix(f"{path}:") for p in e.value.problems]


@pytest.mark.parametrize("kind", LOADERS)
def test_every_loader_refuses_deep_nesting_at_its_spot(kind: str, tmp_path: Path) -> None:
    flow = "a: " + "[" * 5000 + "]" * 5000 + "\n"
    assert problems(LOADERS[kind], tmp_path / "x.yaml", flow) == ["1:67: nested more than 64 levels deep"]
    block = "".join(f"{'  ' * i}k{i}:\n" for i in range(200))
    assert problems(LOADERS[kind], tmp_path / "x.yaml", block) == [
        "64:127: nested more than 64 levels deep"
    ]  # the key k63 is level 65


def test_check_and_rules_check_print_one_line_for_deep_nesting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("deep.yaml").write_text("rules: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    Path("plant.yaml").write_text("rules: [deep.yaml]\n", encoding="utf-8")
    for args, file in (
        (["rules", "check", "deep.yaml"], "deep.yaml"),
        (["check", "-c", "plant.yaml"], str(tmp_path / "deep.yaml")),
    ):
        assert main(args) == 1
        assert capsys.readouterr().err == f"{file}:1:71: nested more than 64 levels deep\n"


def test_depth_counts_through_aliases(tmp_path: Path) -> None:
    text = "a: &a " + "[" * 60 + "]" * 60 + "\nb: [[[[[[*a]]]]]]\n"
    assert problems(load_config, tmp_path / "x.yaml", text) == [
        "2:10: nested more than 64 levels deep (through *a)"
    ]


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    assert problems(load_config, tmp_path / "x.yaml", "a: &a [1, [*a]]\n") == [
        "1:12: alias *a refers to a node that contains it"
    ]


def test_aliases_within_the_limit_work(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        textwrap.dedent(
            """
            rules:
              - {id: a, tag: line1/x, above: 5, for: 2s, clear: &hyst {limit: 4, for: 1s}, severity: low}
              - {id: b, tag: line1/y, above: 5, for: 2s, clear: *hyst, severity: low}
            """
        ),
        encoding="utf-8",
    )
    assert [(r.id, r.condition.clear_limit, r.clear_for_ns) for r in load_rule_files([path])] == [
        ("a", 4, 10**9),
        ("b", 4, 10**9),
    ]


def test_files_larger_than_4_mib_are_refused_without_reading_them_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * (yamlsrc.MAX_BYTES // 10) + "rules: []\n", encoding="utf-8")
    assert problems(_rules, path, path.read_text(encoding="utf-8")) == ["1:1: file is larger than 4 MiB"]
    with pytest.raises(ConfigError, match="larger than 4 MiB"):
        yamlsrc.load("/dev/zero")  # endless: only MAX_BYTES + 1 bytes are ever read
    with pytest.raises(ConfigError, match="larger than 4 MiB"):
        yamlsrc.load("inline.yaml", text="a: 1\n" * (yamlsrc.MAX_BYTES // 5 + 1))


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("9" * 400, "integer out of range (64 bits at most; write a float such as 1e30 for a larger number)"),
        (
            "9" * 5000,
            "integer out of range (64 bits at most; write a float such as 1e30 for a larger number)",
        ),
        ("!!float abc", "cannot read 'abc' as float: could not convert string to float: 'abc'"),
        ("2026-02-30", "cannot read '2026-02-30' as timestamp: day is out of range for month"),
    ],
)
def test_values_yaml_cannot_read_are_problems_at_their_key(value: str, what: str, tmp_path: Path) -> None:
    text = f"store:\n  pool_size: {value}\n"
    assert problems(load_config, tmp_path / "x.yaml", text) == [f"2:3: store.pool_size: {what}"]


def test_a_duration_longer_than_100_years_is_refused(tmp_path: Path) -> None:
    text = "stream:\n  batch_interval: 36501d\n"
    assert problems(load_config, tmp_path / "x.yaml", text) == [
        "2:3: stream.batch_interval: duration '36501d' is longer than 100 years (36500d)"
    ]
