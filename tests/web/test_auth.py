"""The token, the login cookie and the same-origin rule, over HTTP and WebSockets."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.web.conftest import ThreadServer
from tests.web.helpers import create_session, error_of

TOKEN = "s3cret-token"


@pytest.fixture
def guarded(make_server: Any) -> ThreadServer:
    server: ThreadServer = make_server(token=TOKEN)
    return server


def test_without_the_token_every_api_and_stream_is_401(guarded: ThreadServer) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=guarded.url, headers=bearer) as authorized:
        session_id = create_session(authorized)
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        requests = [
            ("GET", "/api/health"),
            ("GET", "/api/models"),
            ("GET", "/api/sessions"),
            ("POST", "/api/sessions"),
            ("GET", f"/api/sessions/{session_id}"),
            ("DELETE", f"/api/sessions/{session_id}"),
            ("GET", f"/api/sessions/{session_id}/events"),
            ("POST", f"/api/sessions/{session_id}/prompts"),
            ("POST", f"/api/sessions/{session_id}/cancel"),
            ("POST", f"/api/sessions/{session_id}/approvals/x"),
            ("POST", f"/api/sessions/{session_id}/model"),
            ("GET", f"/api/sessions/{session_id}/stream"),
            ("GET", "/api/openapi.json"),
            ("GET", "/metrics"),
        ]
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            for method, path in requests:
                response = client.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (method, path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
                assert "token" in error_of(response)["message"]
        for method, path in [*requests[:3], ("GET", "/metrics")]:
            assert client.request(method, path, headers=bearer).status_code == 200, path

        # The UI itself sends people to the login page; the login page and assets are open.
        page = client.get("/")
        assert page.status_code == 303 and page.headers["location"] == "/login"
        assert client.get("/login").status_code == 200
        assert client.get("/static/login.js").status_code == 200


def test_login_sets_an_httponly_cookie_that_then_works(guarded: ThreadServer) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        wrong = client.post("/api/login", json={"token": "nope"})
        assert wrong.status_code == 401
        assert "bassi_token" not in client.cookies
        assert client.post("/api/login", json={}).status_code == 422

        ok = client.post("/api/login", json={"token": TOKEN})
        assert ok.status_code == 204
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert client.get("/api/sessions").status_code == 200
        assert client.get("/").status_code == 200

        assert client.post("/api/logout").status_code == 204
        client.cookies.clear()
        assert client.get("/api/sessions").status_code == 401


async def test_websocket_needs_the_token_too(guarded: ThreadServer) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=guarded.url, headers=bearer) as client:
        session_id = create_session(client)
    url = f"{guarded.ws_url}/api/sessions/{session_id}/ws"
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers=headers):
                pass
        assert refused.value.response.status_code == 401
        body = json.loads(refused.value.response.body or b"{}")
        assert body["error"]["type"] == "Unauthorized"
    async with connect(url, additional_headers=bearer) as ws:
        assert json.loads(await ws.recv())["type"] == "session_started"
    cookie = {"Cookie": f"bassi_token={TOKEN}"}
    async with connect(url, additional_headers=cookie) as ws:
        assert json.loads(await ws.recv())["type"] == "session_started"


async def test_a_foreign_origin_websocket_is_refused(make_server: Any) -> None:
    server: ThreadServer = make_server()
    with httpx.Client(base_url=server.url) as client:
        session_id = create_session(client)
    url = f"{server.ws_url}/api/sessions/{session_id}/ws"
    for origin in ("http://evil.example", "http://127.0.0.1:1", "null"):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, origin=origin):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403, origin
        assert b"not allowed" in (refused.value.response.body or b"")
    # The page's own origin, and clients that send none, are fine.
    async with connect(url, origin=server.url) as ws:  # type: ignore[arg-type]
        assert json.loads(await ws.recv())["seq"] == 1
    async with connect(url) as ws:
        assert json.loads(await ws.recv())["seq"] == 1


def test_a_foreign_origin_cannot_change_anything_over_http(server: ThreadServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        refused = client.post("/api/sessions", json={}, headers={"Origin": "http://evil.example"})
        assert refused.status_code == 403
        assert error_of(refused)["type"] == "Forbidden"
        assert client.get("/api/sessions").json()["sessions"] == []
        same = client.post("/api/sessions", json={}, headers={"Origin": server.url})
        assert same.status_code == 201
        # Reading is not a state change; CORS keeps other sites from seeing the answer.
        assert (
            client.get("/api/sessions", headers={"Origin": "http://evil.example"}).status_code
            == 200
        )
