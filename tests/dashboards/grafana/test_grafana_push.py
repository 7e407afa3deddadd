"""``plantpulse dashboards push`` against a local stand-in for Grafana's HTTP API.

No Grafana server can be installed here: grafana_server implements the few endpoints push
uses as Grafana's HTTP API documentation describes them, records every request, and the tests
check those requests (bearer token, payloads, overwrite, version message) and that a second
push writes nothing. Error cases: 401, 403, 404, a server that never answers, a closed port.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from grafana_seed import write_plant
from grafana_server import FakeGrafana, serve

from plantpulse.cli import main

TOKEN = "glsa_test_token"
STORE = "postgresql://plantpulse:st0re-secret@db.plant.local:5432/plant"
GRAFANA = """\
grafana:
  token: ${PP_TEST_GRAFANA_TOKEN}
  timeout: 300ms
  folder: {uid: pp-weld, title: 焊装车间}
  datasource: {url: "pg.plant.local:5432", user: grafana_reader}
"""


@pytest.fixture
def plant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PP_TEST_GRAFANA_TOKEN", TOKEN)
    monkeypatch.setenv("PLANTPULSE_PG_PASSWORD", "reader-secret")
    return write_plant(tmp_path, STORE, GRAFANA)


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    with serve(FakeGrafana(token=TOKEN)) as g:
        yield g


def push(plant: Path, url: str, *extra: str) -> int:
    return main(["dashboards", "push", "-c", str(plant), "--grafana", url, "--flavor", "plain", *extra])


def test_push_creates_everything_then_changes_nothing(
    plant: Path, grafana: FakeGrafana, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert push(plant, grafana.url) == 0
    out = capsys.readouterr().out
    assert f"pushed to {grafana.url}: 6 created, 0 updated, 0 unchanged" in out
    assert "folder     pp-weld                      created  焊装车间" in out

    # every request but the health check carries the token
    assert all(r.authorization == f"Bearer {TOKEN}" for r in grafana.requests if r.path != "/api/health")
    assert grafana.writes() == [
        ("POST", "/api/folders"),
        ("POST", "/api/datasources"),
        *[("POST", "/api/dashboards/db")] * 4,
    ]
    posts = [r.body for r in grafana.requests if r.method == "POST"]
    assert posts[0] == {"title": "焊装车间", "uid": "pp-weld"}
    assert posts[1] == {
        "uid": "plantpulse",
        "name": "PlantPulse",
        "type": "grafana-postgresql-datasource",
        "access": "proxy",
        "url": "pg.plant.local:5432",
        "user": "grafana_reader",
        "jsonData": {"database": "plant", "sslmode": "disable", "timescaledb": False},
        "secureJsonData": {"password": "reader-secret"},
    }
    for body in posts[2:]:
        assert body["overwrite"] is True and body["folderUid"] == "pp-weld"
        assert body["message"] == "plantpulse 0.1.0: generated from plant.yaml"
        assert "id" not in body["dashboard"] and "version" not in body["dashboard"]
    assert "st0re-secret" not in json.dumps([r.body for r in grafana.requests])

    # what Grafana holds is what generate writes for file provisioning
    assert (
        main(
            ["dashboards", "generate", "-c", str(plant), "--out", str(tmp_path / "out"), "--flavor", "plain"]
        )
        == 0
    )
    for path in (tmp_path / "out" / "dashboards").glob("*.json"):
        stored = dict(grafana.dashboards[path.stem]["dashboard"])
        assert stored.pop("version") == 1 and isinstance(stored.pop("id"), int)
        assert stored == json.loads(path.read_text(encoding="utf-8"))
    capsys.readouterr()

    # idempotent: the second push reads, compares and writes nothing
    grafana.requests.clear()
    assert push(plant, grafana.url) == 0
    assert f"pushed to {grafana.url}: 0 created, 0 updated, 6 unchanged" in capsys.readouterr().out
    assert grafana.writes() == []


def test_dry_run_shows_what_would_change_and_writes_nothing(
    plant: Path, grafana: FakeGrafana, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert push(plant, grafana.url, "--dry-run") == 0
    out = capsys.readouterr().out
    assert grafana.writes() == []
    assert (
        f"dry run against {grafana.url}: would leave 6 created, 0 updated, 0 unchanged; nothing written"
        in out
    )

    assert push(plant, grafana.url) == 0
    text = plant.read_text(encoding="utf-8")
    plant.write_text(
        text.replace("title: 焊装车间", "title: Welding").replace("pg.plant.local", "pg2.plant.local"),
        encoding="utf-8",
    )
    capsys.readouterr()
    grafana.requests.clear()
    assert push(plant, grafana.url, "--dry-run", "--flavor", "timescale") == 0
    lines = capsys.readouterr().out.splitlines()
    assert grafana.writes() == []
    assert "folder     pp-weld                      updated (title)  Welding" in lines
    assert "datasource plantpulse                   updated (url, jsonData.timescaledb)  PlantPulse" in lines
    # the trend panels use time_bucket now; the other dashboards are the same SQL
    assert "dashboard  plantpulse-asset             updated (panels)  焊装车间 · Asset trends" in lines
    assert "dashboard  plantpulse-overview          unchanged  焊装车间 · Plant overview" in lines

    assert push(plant, grafana.url, "--flavor", "timescale", "--message", "new PLC tags") == 0
    assert grafana.folders["pp-weld"]["title"] == "Welding"
    assert grafana.datasources["plantpulse"]["jsonData"]["timescaledb"] is True
    assert grafana.datasources["plantpulse"]["secureJsonFields"] == {"password": True}
    assert grafana.versions["plantpulse-asset"] == [
        "plantpulse 0.1.0: generated from plant.yaml",
        "new PLC tags",
    ]
    assert grafana.versions["plantpulse-overview"] == ["plantpulse 0.1.0: generated from plant.yaml"]


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_refused_token_is_one_line(plant: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve(FakeGrafana(token="another-token")) as g:
        assert push(plant, g.url) == 1
        assert error_line(capsys) == (
            f"grafana: 401 Unauthorized at {g.url} (GET /api/folders/pp-weld):"
            " the token was refused; give a valid service-account token"
        )


def test_forbidden_is_one_line(plant: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve(FakeGrafana(token=TOKEN, forbidden={("POST", "/api/datasources")})) as g:
        assert push(plant, g.url) == 1
        assert error_line(capsys) == (
            f"grafana: 403 Forbidden at {g.url} (POST /api/datasources):"
            " the token may not do this (folders and dashboards need Editor, data sources Admin)"
        )
        assert g.writes() == [("POST", "/api/folders"), ("POST", "/api/datasources")]


def test_wrong_url_is_one_line(plant: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve(FakeGrafana(token=TOKEN, not_found=True)) as g:
        assert push(plant, g.url + "/not-grafana") == 1
        assert error_line(capsys) == (
            f"grafana: 404 Not Found at {g.url}/not-grafana (GET /api/health):"
            " no Grafana API there; give Grafana's root URL, e.g. http://grafana:3000"
        )
        assert g.requests[0].path == "/not-grafana/api/health"


def test_silent_server_times_out_in_one_line(plant: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a listening socket that never accepts: the connection opens, no answer ever comes
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        assert push(plant, url) == 1
    assert error_line(capsys) == f"grafana: no answer from {url} (GET /api/health) within 0.3 s"


def test_closed_port_is_one_line(plant: Path, capsys: pytest.CaptureFixture[str], port: int) -> None:
    assert push(plant, f"http://127.0.0.1:{port}") == 1
    assert error_line(capsys) == f"grafana: cannot connect to http://127.0.0.1:{port}: connection refused"


def test_missing_token_and_url(
    plant: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert push(plant, "http://127.0.0.1:9", "--token-env", "PP_TEST_UNSET_TOKEN") == 1
    assert error_line(capsys) == (
        "plantpulse dashboards: --token-env PP_TEST_UNSET_TOKEN: that environment variable is not set"
    )
    assert main(["dashboards", "push", "-c", str(plant), "--flavor", "plain"]) == 1
    assert error_line(capsys) == (
        "plantpulse dashboards: no Grafana URL: pass --grafana URL or set grafana.url in plant.yaml"
    )
    assert push(plant, "ftp://grafana") == 1
    assert "is not an http(s) URL" in error_line(capsys)
