"""Small helpers the web tests share: polling, and driving a session over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


def wait_for(check: Callable[[], T], *, timeout: float = 15.0, what: str = "condition") -> T:
    """Call `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def create_session(client: httpx.Client, **body: Any) -> str:
    response = client.post("/api/sessions", json=body)
    assert response.status_code == 201, response.text
    session_id: str = response.json()["id"]
    return session_id


def prompt(client: httpx.Client, session_id: str, content: str) -> str:
    response = client.post(f"/api/sessions/{session_id}/prompts", json={"content": content})
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def state(client: httpx.Client, session_id: str) -> dict[str, Any]:
    response = client.get(f"/api/sessions/{session_id}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def wait_idle(client: httpx.Client, session_id: str, timeout: float = 15.0) -> dict[str, Any]:
    return wait_for(
        lambda: (s := state(client, session_id))["status"] in ("idle", "ended") and s,
        timeout=timeout,
        what="the run to end",
    )


def wait_status(client: httpx.Client, session_id: str, status: str) -> dict[str, Any]:
    return wait_for(
        lambda: (s := state(client, session_id))["status"] == status and s,
        what=f"status {status}",
    )


def events(client: httpx.Client, session_id: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/api/sessions/{session_id}/events", params={"limit": 10_000, **params})
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["events"]
    return result


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The `{"type", "message"}` of an error answer (fails if the shape is wrong)."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["type"], str) and isinstance(body["error"]["message"], str)
    assert "Traceback" not in body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error
