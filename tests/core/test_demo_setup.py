"""The demo's start: afresh or resumed (never deleting what it did not write), and its language."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plantpulse.config import StoreConfig
from plantpulse.demo import DEFAULT_RULES, DEMO_DIR
from plantpulse.demo.fresh import MARKER, NotADemoStore, Start, prepare
from plantpulse.demo.text import default_language, translated_rules
from plantpulse.errors import ConfigError, SpoolInUse
from plantpulse.rules.loader import load_rule_files
from plantpulse.store.spool import Spool


def _previous_run(folder: Path) -> StoreConfig:
    store = StoreConfig(url=f"sqlite:///{folder / 'demo.db'}")
    assert prepare(store, resume=False) is Start.NEW
    (folder / "demo.db").write_bytes(b"alerts of the previous run")
    (folder / "demo.db-wal").write_bytes(b"")
    (store.state_dir / "outbox.db").write_bytes(b"escalations of the previous run")
    return store


def test_a_fresh_start_removes_the_previous_runs_store_and_state(tmp_path: Path) -> None:
    store = _previous_run(tmp_path)
    assert prepare(store, resume=False) is Start.FRESH
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.db.spool"]
    assert [p.name for p in store.state_dir.iterdir()] == [MARKER]


def test_resume_keeps_them(tmp_path: Path) -> None:
    store = _previous_run(tmp_path)
    assert prepare(store, resume=True) is Start.RESUMED
    assert (store.state_dir / "outbox.db").read_bytes() == b"escalations of the previous run"
    assert (tmp_path / "demo.db").exists()


def test_a_store_the_demo_did_not_write_is_refused_not_deleted(tmp_path: Path) -> None:
    plant = tmp_path / "plant.db"
    plant.write_bytes(b"a real plant's history")
    with pytest.raises(NotADemoStore) as refused:
        prepare(StoreConfig(url=f"sqlite:///{plant}"), resume=False)
    assert str(refused.value) == f"demo: {plant} was not written by plantpulse demo (no DEMO marker)"
    assert plant.read_bytes() == b"a real plant's history"


def test_a_running_demo_is_named_not_pulled_from_under_its_feet(tmp_path: Path) -> None:
    store = _previous_run(tmp_path)
    running = Spool(store.state_dir)
    running.open()
    try:
        with pytest.raises(SpoolInUse) as refused:
            prepare(store, resume=False)
    finally:
        running.close()
    assert refused.value.pid == os.getpid()
    assert (store.state_dir / "outbox.db").exists()


@pytest.mark.parametrize(
    ("env", "lang"),
    [
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "zh_CN.UTF-8", "LC_ALL": "C.UTF-8"}, "en"),  # LC_ALL first, as POSIX says
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_TW.UTF-8"}, "zh"),
        ({}, "en"),
    ],
)
def test_the_default_language_follows_the_locale(env: dict[str, str], lang: str) -> None:
    assert default_language(env) == lang


def test_the_english_texts_of_the_demo_rules() -> None:
    rules = translated_rules(load_rule_files([DEFAULT_RULES]), DEMO_DIR / "weld-rules.en.yaml")
    assert all(not any("\u4e00" <= c <= "\u9fff" for c in r.message + (r.description or "")) for r in rules)
    stale = next(r for r in rules if r.kind == "stale")
    assert stale.render("line1/weld04/current", 180.0) == "no welding current update for 2s"


def test_a_bad_translation_is_a_positioned_error(tmp_path: Path) -> None:
    texts = tmp_path / "en.yaml"
    texts.write_text(
        "weld-voltage-band:\n  message: '{deviation} off'\nno-such-rule: {message: x}\n", "utf-8"
    )
    with pytest.raises(ConfigError) as bad:
        translated_rules(load_rule_files([DEFAULT_RULES]), texts)
    assert [str(p) for p in bad.value.problems] == [
        f"{texts}:2:3: weld-voltage-band: unknown message field {{deviation}}; outside rules know "
        "asset, duration, high, low, rule, severity, tag, value",
        f"{texts}:3:1: no-such-rule: no rule has this id",
    ]
