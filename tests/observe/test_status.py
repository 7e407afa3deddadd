"""``plantpulse status -c plant.yaml`` against a real HTTP server on loopback: its lines and exit codes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from test_routes import TOKEN, app

from plantpulse.api.app import Api
from plantpulse.cli import main
from plantpulse.httpserve import free_port, serving
from plantpulse.observe.status import status_lines


def plant_yaml(tmp_path: Path, port: int, token: str = TOKEN) -> Path:
    path = tmp_path / "plant.yaml"
    path.write_text(
        yaml.safe_dump({"api": {"listen": f"127.0.0.1:{port}", "token": token}}), encoding="utf-8"
    )
    return path


async def run_status(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], list[str]]:
    code = await asyncio.to_thread(main, ["status", "-c", str(config)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


async def test_ready_then_not_ready_lines_and_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with app(tmp_path) as a:
        port = free_port()
        api = Api(a.writer.store, token=TOKEN, observed=a.observed)
        async with serving(api.app, "127.0.0.1", port):
            config = plant_yaml(tmp_path, port)
            code, out, err = await run_status(config, capsys)
            assert (code, err) == (1, [])
            assert out[0] == f"plantpulse at http://127.0.0.1:{port}: not ready (pipeline)"
            assert out[1].split()[:3] == ["pipeline", "FAIL", "starting:"]
            a.pipeline()
            code, out, err = await run_status(config, capsys)
            assert (code, err) == (0, [])
            assert out[0] == f"plantpulse at http://127.0.0.1:{port}: ready"
            assert [line.split()[:2] for line in out[1:]] == [
                ["pipeline", "ok"],
                ["store", "ok"],
                ["spool", "ok"],
            ]


async def test_nothing_listening_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    code, out, err = await run_status(plant_yaml(tmp_path, port), capsys)
    assert (code, out) == (1, [])
    assert err == [
        "plantpulse status: plantpulse is not running or not reachable at "
        f"http://127.0.0.1:{port}: Connection refused"
    ]


async def test_a_process_that_does_not_answer_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await held.wait()  # accepts the connection, never answers (a hung process)
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        config = plant_yaml(tmp_path, port)
        code = await asyncio.to_thread(main, ["status", "-c", str(config), "--timeout", "0.3"])
    finally:
        held.set()
        server.close()
        await server.wait_closed()
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err == (
        f"plantpulse status: plantpulse is not running or not reachable at http://127.0.0.1:{port}: "
        "no answer within 0.3 s\n"
    )


async def test_another_token_or_another_program_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with app(tmp_path) as a:
        port = free_port()
        async with serving(Api(a.writer.store, token=TOKEN, observed=a.observed).app, "127.0.0.1", port):
            code, out, err = await run_status(
                plant_yaml(tmp_path, port, token="another-token-0123456789"), capsys
            )
        assert (code, out) == (1, [])
        assert err == [
            f"plantpulse status: http://127.0.0.1:{port} refused the API token (401): "
            "another program on that port, or api.token differs"
        ]
        port = free_port()
        async with serving(Api(a.writer.store, token=TOKEN).app, "127.0.0.1", port):  # an API without probes
            code, out, err = await run_status(plant_yaml(tmp_path, port), capsys)
        assert (code, out) == (1, [])
        assert err == [
            f"plantpulse status: http://127.0.0.1:{port} answered 404 Not Found: not a plantpulse with "
            "/api/health/ready"
        ]


async def test_a_config_without_api_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "plant.yaml"
    config.write_text("site: {name: 车间}\n", encoding="utf-8")
    code, out, err = await run_status(config, capsys)
    assert (code, out) == (1, [])
    assert err == [
        f"plantpulse status: {config} has no api: section; "
        "status asks the running process through its HTTP API"
    ]


def test_lines_show_errors_and_the_watermark() -> None:
    body = {
        "status": "not ready",
        "failing": ["store", "source 压机"],
        "checks": [
            {"name": "pipeline", "ok": True, "state": "running", "why": "the engine evaluates",
             "watermark_lag_seconds": 0.25},
            {"name": "store", "ok": False, "state": "unreachable", "why": "the store does not take writes",
             "error": "connection refused"},
            {"name": "source 压机", "ok": False, "state": "unavailable", "why": "unavailable for 12s"},
        ],
    }  # fmt: skip
    assert status_lines("http://127.0.0.1:8080", body) == [
        "plantpulse at http://127.0.0.1:8080: not ready (store, source 压机)",
        "  pipeline   ok    running: the engine evaluates; watermark 0.2 s behind wall time",
        "  store      FAIL  unreachable: the store does not take writes; connection refused",
        "  source 压机  FAIL  unavailable for 12s",
    ]
