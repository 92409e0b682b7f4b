"""`python -m bassi.web.server`: refusing unsafe binds, clean SIGTERM, recovery after SIGKILL."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest

from bassi.errors import ConfigError
from bassi.settings import Settings
from bassi.web.server import check_bind, is_loopback, run_server
from tests.web.helpers import create_session, events, prompt, wait_for, wait_idle, wait_status


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_non_loopback_needs_a_token() -> None:
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0 without a token"):
        run_server(settings=Settings(host="0.0.0.0"))
    check_bind(Settings(host="0.0.0.0", token="t"))  # with a token it may listen
    check_bind(Settings(host="127.0.0.1"))


def test_non_loopback_bind_without_token_exits_non_zero_with_its_reason(
    process_server: Any,
) -> None:
    server = process_server(args=("--host", "0.0.0.0"))
    server.start(wait=False)
    assert server.process.wait(timeout=30) == 2
    output = server.log.read_text().strip()
    assert output == (
        "bassi: refusing to listen on 0.0.0.0 without a token: set --token or BASSI_TOKEN"
    )


def test_sigterm_shuts_down_cleanly_with_streams_open(process_server: Any) -> None:
    server = process_server().start()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        session_id = create_session(client)
        prompt(client, session_id, "hello")
        wait_idle(client, session_id)
        before = events(client, session_id)
        with client.stream("GET", f"/api/sessions/{session_id}/stream") as stream:
            next(stream.iter_lines())
            started = time.monotonic()
            assert server.terminate() == 0
            assert time.monotonic() - started < 8  # an open stream does not hold shutdown up
    assert "Application shutdown complete" in server.log.read_text()

    server.start()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert events(client, session_id) == before
        assert state_of(client, session_id)["status"] == "idle"


def state_of(client: httpx.Client, session_id: str) -> dict[str, Any]:
    result: dict[str, Any] = client.get(f"/api/sessions/{session_id}").json()
    return result


def test_sigkill_mid_run_then_restart_recovers_the_run(process_server: Any) -> None:
    server = process_server().start()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        session_id = create_session(client)
        prompt(client, session_id, "/bash sleep 1; echo done")
        tool_call_id = wait_status(client, session_id, "awaiting_approval")["pending_approvals"][0][
            "tool_call_id"
        ]
        client.post(
            f"/api/sessions/{session_id}/approvals/{tool_call_id}", json={"decision": "allow"}
        )
        wait_for(
            lambda: events(client, session_id, types="tool_call_started"), what="the tool to start"
        )
    server.kill()

    server.start()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        final = wait_idle(client, session_id)
        [recovered] = events(client, session_id, types="session_recovered")
        assert recovered["action"] == "continue"
        assert recovered["interrupted_tool_calls"] == [tool_call_id]
        [failed] = events(client, session_id, types="tool_call_failed")
        assert failed["interrupted"] is True and failed["tool_call_id"] == tool_call_id
        assert events(client, session_id)[-1]["type"] == "run_completed"
        assert "interrupted" in json.dumps(final["messages"])


def test_a_taken_port_fails_before_the_database_is_touched(process_server: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = process_server(port=taken.getsockname()[1])
        server.start(wait=False)
        assert server.process.wait(timeout=60) == 1
    assert f"bassi: cannot serve on 127.0.0.1:{server.port}" in server.log.read_text()
    assert not server.db.exists()  # recovery never ran against a daemon that may own it
