"""A server that cannot listen says why and what to change (exit 2), not asyncio's OSError
traceback: `mock-smsc` and `serve` on a port another process holds."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from _pytest.capture import CaptureResult

from broadcaster.cli import main


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another socket listens on, for the length of the test."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def _run(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, CaptureResult[str]]:
    monkeypatch.setattr("broadcaster.cli.configure_logging", lambda **_: None)
    code = main(argv)
    return code, capsys.readouterr()


def test_the_mock_smsc_on_a_port_in_use_says_so(
    taken_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(["mock-smsc", "--port", str(taken_port)], monkeypatch, capsys)
    assert code == 2, out.err
    assert f"the mock SMSC cannot listen on 127.0.0.1:{taken_port}: the port is in use" in out.err
    assert "pick another with --port" in out.err
    assert "Traceback" not in out.err and "OSError" not in out.err
    assert '"listening"' not in out.out  # it never said it listened


def test_the_mock_smscs_statistics_on_a_port_in_use_say_so(
    taken_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["mock-smsc", "--port", "0", "--stats-port", str(taken_port)]
    code, out = _run(argv, monkeypatch, capsys)
    assert code == 2, out.err
    assert "the mock SMSC's statistics cannot listen" in out.err
    assert "pick another with --stats-port" in out.err
    assert "Traceback" not in out.err


def test_serve_on_a_port_in_use_says_so_before_binding_anything(
    taken_port: int,
    db_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    argv = ["serve", "--host", "127.0.0.1", "--port", str(taken_port), "--mock-smsc"]
    code, out = _run(argv, monkeypatch, capsys)
    assert code == 2, out.err
    assert f"the HTTP API and console cannot listen on 127.0.0.1:{taken_port}" in out.err
    assert "the port is in use" in out.err
    assert "Traceback" not in out.err and "never retrieved" not in out.err
