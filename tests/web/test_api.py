"""Every REST endpoint against a real uvicorn server: happy paths and each error status."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bassi import events as ev
from tests.web.conftest import ThreadServer
from tests.web.helpers import (
    create_session,
    error_of,
    events,
    prompt,
    state,
    wait_for,
    wait_idle,
    wait_status,
)


@pytest.fixture
def client(server: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def test_health_reports_the_store_and_the_scripted_fallback(client: httpx.Client) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["store"]["healthy"] is True
    assert body["default_model"] == "scripted"
    assert body["scripted_fallback"] is True
    models = client.get("/api/models").json()
    assert models["default"] == "scripted" and models["scripted_fallback"] is True
    assert "scripted" in models["suggestions"]
    assert {p["name"] for p in models["providers"]} >= {"anthropic", "openai"}


def test_create_list_get_and_end_a_session(client: httpx.Client) -> None:
    created = client.post("/api/sessions", json={"title": "first", "system_prompt": "be brief"})
    assert created.status_code == 201
    body = created.json()
    session_id = body["id"]
    assert body["title"] == "first" and body["status"] == "idle" and body["model"] == "scripted"
    assert body["system_prompt"] == "be brief" and body["permission_mode"] == "default"
    second = create_session(client)  # an empty body is fine too

    listed = client.get("/api/sessions").json()["sessions"]
    assert [s["id"] for s in listed][:2] == [second, session_id]  # newest first
    assert listed[1]["title"] == "first" and listed[1]["status"] == "idle"

    got = state(client, session_id)
    for key in ("id", "status", "last_seq", "messages", "usage", "pending_approvals"):
        assert key in got
    assert got["last_seq"] == 1 and got["messages"] == [] and got["pending_approvals"] == []

    ended = client.delete(f"/api/sessions/{session_id}", params={"reason": "done"})
    assert ended.status_code == 200
    assert ended.json()["status"] == "ended"
    assert events(client, session_id, types="session_ended")[0]["reason"] == "done"
    refused = client.post(f"/api/sessions/{session_id}/prompts", json={"content": "hi"})
    assert refused.status_code == 409
    assert error_of(refused)["type"] == "InvalidStateError"


@pytest.mark.parametrize(
    ("body", "status", "error_type"),
    [
        ({"model": "nosuchprovider:x"}, 422, "ConfigError"),
        ({"permission_mode": "yolo"}, 422, "ValidationError"),
        ({"tools": ["no_such_tool"]}, 422, "ConfigError"),
        ({"workspace": "/definitely/not/here"}, 422, "ConfigError"),
        ({"rules": ["allow:("]}, 422, "ConfigError"),
        ({"title": "x", "colour": "red"}, 422, "ValidationError"),
        (["not", "an", "object"], 422, "ValidationError"),
        ('{"title": "half a pair: \\ud800"}', 422, "ValidationError"),
    ],
)
def test_create_refuses_bad_input_with_422(
    client: httpx.Client, body: Any, status: int, error_type: str
) -> None:
    if isinstance(body, str):  # JSON text that httpx would not produce itself
        headers = {"content-type": "application/json"}
        response = client.post("/api/sessions", content=body.encode(), headers=headers)
    else:
        response = client.post("/api/sessions", json=body)
    assert response.status_code == status, response.text
    assert error_of(response)["type"] == error_type
    assert client.get("/api/sessions").json()["sessions"] == []  # nothing was written


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/api/sessions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response)["message"] == "request body is not valid JSON"


def test_prompt_runs_and_the_event_list_is_the_wire_format_in_seq_order(
    client: httpx.Client,
) -> None:
    session_id = create_session(client)
    run_id = prompt(client, session_id, "hello there")
    final = wait_idle(client, session_id)
    assert [m["role"] for m in final["messages"]] == ["user", "assistant"]
    assert final["messages"][1]["content"][0]["text"] == "Echo #1: hello there"
    assert final["usage"]["output_tokens"] > 0

    listed = events(client, session_id)
    assert [e["seq"] for e in listed] == list(range(1, len(listed) + 1))
    assert listed[-1]["seq"] == final["last_seq"]
    for wire in listed:
        assert ev.decode(wire).to_wire() == wire  # the same TypeAdapter parses it back
    assert listed[-1]["type"] == "run_completed" and listed[-1]["run_id"] == run_id
    assert listed[-1]["recorded_at"].endswith("Z")


def test_event_list_filters_pages_and_refuses_bad_parameters(client: httpx.Client) -> None:
    session_id = create_session(client)
    prompt(client, session_id, "/stream 5")
    wait_idle(client, session_id)
    everything = events(client, session_id)

    deltas = events(client, session_id, types="token_delta")
    assert [d["text"].strip() for d in deltas] == ["t1", "t2", "t3", "t4", "t5"]
    both = events(client, session_id, types="prompt_received, run_completed")
    assert [e["type"] for e in both] == ["prompt_received", "run_completed"]

    page = client.get(f"/api/sessions/{session_id}/events", params={"after": 3, "limit": 4})
    assert page.status_code == 200
    assert [e["seq"] for e in page.json()["events"]] == [4, 5, 6, 7]
    assert page.json()["more"] is True
    rest = events(client, session_id, after=7)
    assert page.json()["events"] + rest == everything[3:]

    huge = {"after": 10**23}  # more than any database integer holds
    for params in (
        {"types": "token_delta,nope"},
        {"after": -1},
        {"limit": 0},
        {"after": "x"},
        huge,
    ):
        response = client.get(f"/api/sessions/{session_id}/events", params=params)
        assert response.status_code == 422, params
        error_of(response)
    assert (
        "'nope'"
        in error_of(client.get(f"/api/sessions/{session_id}/events", params={"types": "nope"}))[
            "message"
        ]
    )


def test_unknown_session_is_404_everywhere(client: httpx.Client) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    calls = [
        client.get(f"/api/sessions/{missing}"),
        client.delete(f"/api/sessions/{missing}"),
        client.get(f"/api/sessions/{missing}/events"),
        client.post(f"/api/sessions/{missing}/prompts", json={"content": "hi"}),
        client.post(f"/api/sessions/{missing}/cancel", json={}),
        client.post(f"/api/sessions/{missing}/approvals/abc", json={"decision": "allow"}),
        client.post(f"/api/sessions/{missing}/model", json={"model": "scripted"}),
        client.get(f"/api/sessions/{missing}/stream"),
    ]
    for response in calls:
        assert response.status_code == 404, (response.request.url, response.text)
        error = error_of(response)
        assert error["type"] == "SessionNotFound" and missing in error["message"]
    assert error_of(client.get("/api/nothing-here"))["type"] == "NotFound"


def test_second_prompt_while_running_is_409_and_cancel_stops_the_run(
    client: httpx.Client,
) -> None:
    session_id = create_session(client)
    prompt(client, session_id, "/stream 1000 20")
    wait_status(client, session_id, "running")

    busy = client.post(f"/api/sessions/{session_id}/prompts", json={"content": "again"})
    assert busy.status_code == 409
    assert "active run" in error_of(busy)["message"]
    ending = client.delete(f"/api/sessions/{session_id}")
    assert ending.status_code == 409
    switching = client.post(f"/api/sessions/{session_id}/model", json={"model": "scripted"})
    assert switching.status_code == 409

    cancelled = client.post(
        f"/api/sessions/{session_id}/cancel", json={"mode": "immediate", "reason": "wrong repo"}
    )
    assert cancelled.status_code == 202
    final = wait_idle(client, session_id)
    last = events(client, session_id)[-1]
    assert last["type"] == "run_cancelled" and last["mode"] == "immediate"
    assert last["reason"] == "wrong repo"
    assert len(events(client, session_id, types="token_delta")) < 1000
    assert final["status"] == "idle"

    again = client.post(f"/api/sessions/{session_id}/cancel")
    assert again.status_code == 409
    assert error_of(again)["type"] == "InvalidStateError"
    bad_mode = client.post(f"/api/sessions/{session_id}/cancel", json={"mode": "later"})
    assert bad_mode.status_code == 422


def test_prompt_size_and_shape_limits(make_server: Any) -> None:
    server = make_server(max_prompt_bytes=1000)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        session_id = create_session(client)
        url = f"/api/sessions/{session_id}/prompts"

        too_large = client.post(url, json={"content": "é" * 501})  # 1002 bytes
        assert too_large.status_code == 413
        assert error_of(too_large)["type"] == "PayloadTooLarge"
        huge_body = client.post(url, json={"content": "x" * 20_000})
        assert huge_body.status_code == 413
        assert error_of(huge_body)["type"] == "PayloadTooLarge"

        for body in ({}, {"content": ""}, {"content": "   "}, {"content": 5}, {"text": "hi"}):
            response = client.post(url, json=body)
            assert response.status_code == 422, body
            error_of(response)

        assert events(client, session_id, types="prompt_received") == []
        prompt(client, session_id, "x" * 1000)  # exactly at the limit is fine
        wait_idle(client, session_id)


def test_permission_prompt_allow_and_deny(client: httpx.Client) -> None:
    session_id = create_session(client)
    prompt(client, session_id, "/bash echo hi")
    waiting = wait_status(client, session_id, "awaiting_approval")
    [pending] = waiting["pending_approvals"]
    assert pending["tool_name"] == "bash" and pending["input"] == {"command": "echo hi"}
    url = f"/api/sessions/{session_id}/approvals/{pending['tool_call_id']}"

    assert client.post(url, json={"decision": "maybe"}).status_code == 422
    unknown = client.post(f"/api/sessions/{session_id}/approvals/nope", json={"decision": "allow"})
    assert unknown.status_code == 404
    assert error_of(unknown)["type"] == "ApprovalNotFound"

    allowed = client.post(url, json={"decision": "allow"})
    assert allowed.status_code == 200
    wait_idle(client, session_id)
    [done] = events(client, session_id, types="tool_call_completed")
    assert done["output"].startswith("hi")
    [decided] = events(client, session_id, types="permission_decided")
    assert decided["decision"] == "allow" and decided["decided_by"].startswith("user:")
    assert client.post(url, json={"decision": "allow"}).status_code == 404  # already answered

    prompt(client, session_id, "/bash rm -rf /tmp/nothing")
    waiting = wait_status(client, session_id, "awaiting_approval")
    tool_call_id = waiting["pending_approvals"][0]["tool_call_id"]
    denied = client.post(
        f"/api/sessions/{session_id}/approvals/{tool_call_id}",
        json={"decision": "deny", "reason": "not today"},
    )
    assert denied.status_code == 200
    wait_idle(client, session_id)
    decisions = events(client, session_id, types="permission_decided")
    assert decisions[-1]["decision"] == "deny" and decisions[-1]["reason"] == "not today"
    assert len(events(client, session_id, types="tool_call_completed")) == 1  # it never ran


def test_an_answer_that_cannot_be_kept_as_given_is_refused_and_the_call_still_waits(
    client: httpx.Client,
) -> None:
    """'Deny always' used to answer 200 and quietly deny once; a 100,000-character reason was
    stored whole. Both are refused, and the call waits for a proper answer."""
    session_id = create_session(client)
    prompt(client, session_id, "/bash echo hi")
    tool_call_id = wait_status(client, session_id, "awaiting_approval")["pending_approvals"][0][
        "tool_call_id"
    ]
    url = f"/api/sessions/{session_id}/approvals/{tool_call_id}"

    always = client.post(url, json={"decision": "deny", "always": True})
    assert always.status_code == 422
    assert "always applies to allow only" in error_of(always)["message"]
    long = client.post(url, json={"decision": "deny", "reason": "x" * 1001})
    assert long.status_code == 422
    assert "at most 1000" in error_of(long)["message"]
    cancel = client.post(f"/api/sessions/{session_id}/cancel", json={"reason": "y" * 1001})
    assert cancel.status_code == 422

    assert events(client, session_id, types="permission_decided") == []
    assert client.post(url, json={"decision": "deny", "reason": "x" * 1000}).status_code == 200
    wait_idle(client, session_id)
    [decided] = events(client, session_id, types="permission_decided")
    assert decided["decision"] == "deny" and len(decided["reason"]) == 1000


def test_allow_always_adds_a_rule(client: httpx.Client) -> None:
    session_id = create_session(client)
    prompt(client, session_id, "/bash echo one")
    tool_call_id = wait_status(client, session_id, "awaiting_approval")["pending_approvals"][0][
        "tool_call_id"
    ]
    response = client.post(
        f"/api/sessions/{session_id}/approvals/{tool_call_id}",
        json={"decision": "allow", "always": True},
    )
    assert response.status_code == 200
    wait_idle(client, session_id)
    assert events(client, session_id, types="permission_rule_added")
    prompt(client, session_id, "/bash echo one")
    wait_idle(client, session_id)  # no second question
    assert len(events(client, session_id, types="permission_requested")) == 1


def test_switch_model(client: httpx.Client) -> None:
    session_id = create_session(client)
    switched = client.post(f"/api/sessions/{session_id}/model", json={"model": "scripted:other"})
    assert switched.status_code == 200
    assert switched.json()["model"] == "scripted:other"
    [event] = events(client, session_id, types="model_switched")
    assert (event["previous"], event["model"]) == ("scripted", "scripted:other")
    bad = client.post(f"/api/sessions/{session_id}/model", json={"model": "nosuchprovider:x"})
    assert bad.status_code == 422
    assert error_of(bad)["type"] == "ConfigError"
    assert client.post(f"/api/sessions/{session_id}/model", json={}).status_code == 422


def test_metrics_count_events_commits_runs_and_sessions(client: httpx.Client) -> None:
    first = create_session(client)
    create_session(client)
    prompt(client, first, "/stream 20")
    wait_idle(client, first)
    client.delete(f"/api/sessions/{first}")

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    committed = len(events(client, first)) + 1  # the second session's session_started
    assert samples["bassi_events_committed_total"] == committed
    assert samples["bassi_events_appended_total"] >= committed
    assert samples["bassi_commit_batch_size_sum"] == committed
    assert samples["bassi_commit_batch_size_count"] >= 1
    assert samples["bassi_commit_seconds_count"] == samples["bassi_commit_batch_size_count"]
    assert samples['bassi_commit_seconds_bucket{le="+Inf"}'] >= 1
    assert samples["bassi_active_runs"] == 0
    assert samples["bassi_subscriber_drops_total"] == 0
    assert samples['bassi_sessions{status="ended"}'] == 1
    assert samples['bassi_sessions{status="idle"}'] == 1
    assert samples["bassi_store_healthy"] == 1


def test_the_ui_is_served_with_its_vendored_assets_and_a_strict_policy(
    client: httpx.Client,
) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "http://" not in page.text and "https://" not in page.text
    for asset in (
        "/static/app.js",
        "/static/markdown.js",
        "/static/style.css",
        "/static/vendor/marked.umd.js",
        "/static/vendor/purify.min.js",
    ):
        response = client.get(asset)
        assert response.status_code == 200, asset
    assert "MIT License" in client.get("/static/vendor/marked.umd.js").text[:300]
    assert "@license DOMPurify" in client.get("/static/vendor/purify.min.js").text[:300]
    assert client.get("/favicon.ico").status_code == 200
    assert client.get("/docs").status_code == 404  # the interactive docs would load a CDN


def _samples(text: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_wait_for_gives_up() -> None:
    with pytest.raises(AssertionError, match="timed out waiting for never"):
        wait_for(lambda: False, timeout=0.05, what="never")
