"""The WebSocket and SSE streams against a real server, with real clients."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from bassi.web.streams import BATCH_BYTES, BATCH_EVENTS, batch_frames
from tests.web.conftest import ThreadServer
from tests.web.helpers import create_session, events, prompt, wait_idle


@pytest.fixture
def client(server: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
async def aclient(server: ThreadServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


async def read_until_seq(ws: ClientConnection, seq: int) -> list[dict[str, Any]]:
    """Event frames until the one with `seq` (other frames are skipped)."""
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["seq"] < seq:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if "seq" in frame:
            frames.append(frame)
    return frames


async def read_until_type(ws: ClientConnection, event_type: str) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1].get("type") != event_type:
        frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    return frames


async def test_websocket_events_equal_the_event_list_and_resume_after_n(
    server: ThreadServer, client: httpx.Client
) -> None:
    session_id = create_session(client)
    prompt(client, session_id, "/stream 30")
    wait_idle(client, session_id)
    prompt(client, session_id, "hello")
    wait_idle(client, session_id)
    listed = events(client, session_id)
    last = listed[-1]["seq"]
    url = f"{server.ws_url}/api/sessions/{session_id}/ws"

    async with connect(f"{url}?after=0") as ws:
        assert await read_until_seq(ws, last) == listed

    async with connect(f"{url}?after=17") as ws:
        rest = await read_until_seq(ws, last)
        assert rest == listed[17:]
        # Exactly the rest: the next frame is the next new event, not a repeat.
        await ws.send(json.dumps({"type": "prompt", "content": "more", "id": "p1"}))
        following = await read_until_type(ws, "run_completed")
        replies = [f for f in following if f["type"] == "reply"]
        assert replies == [
            {
                "type": "reply",
                "id": "p1",
                "command": "prompt",
                "ok": True,
                "run_id": replies[0]["run_id"],
            }
        ]
        live = [f for f in following if "seq" in f]
        assert [f["seq"] for f in live] == list(range(last + 1, last + 1 + len(live)))
        assert live == events(client, session_id, after=last)


async def test_websocket_follows_a_live_run_from_the_start(
    server: ThreadServer, aclient: httpx.AsyncClient
) -> None:
    session_id = (await aclient.post("/api/sessions", json={})).json()["id"]
    async with connect(f"{server.ws_url}/api/sessions/{session_id}/ws") as ws:
        await aclient.post(f"/api/sessions/{session_id}/prompts", json={"content": "/stream 50 2"})
        frames = await read_until_type(ws, "run_completed")
    listed = (await aclient.get(f"/api/sessions/{session_id}/events")).json()["events"]
    assert frames == listed


async def test_a_run_another_process_made_reaches_the_stream_and_the_next_prompt_works(
    server: ThreadServer, aclient: httpx.AsyncClient
) -> None:
    from bassi.manager import SessionManager

    session_id = (await aclient.post("/api/sessions", json={})).json()["id"]
    async with connect(f"{server.ws_url}/api/sessions/{session_id}/ws") as ws:
        await aclient.post(f"/api/sessions/{session_id}/prompts", json={"content": "one"})
        await read_until_type(ws, "run_completed")
        # `bassi run --session ...` beside the daemon: another process, the same database.
        settings = server.settings
        async with SessionManager.open(settings.database, settings=settings, recover=False) as cli:
            theirs = await cli.get(session_id)
            await theirs.prompt("two")
            await theirs.wait()
        response = await aclient.post(
            f"/api/sessions/{session_id}/prompts", json={"content": "three"}
        )
        assert response.status_code == 202, response.text  # not a ConcurrencyError first
        frames = await read_until_type(ws, "run_completed")  # the other process's run
        frames += await read_until_type(ws, "run_completed")  # then this one's
    state = (await aclient.get(f"/api/sessions/{session_id}")).json()
    listed = (await aclient.get(f"/api/sessions/{session_id}/events")).json()["events"]
    seen = [f for f in frames if "seq" in f]
    assert [f["seq"] for f in seen] == list(range(seen[0]["seq"], listed[-1]["seq"] + 1))
    assert [f["content"] for f in seen if f["type"] == "prompt_received"] == ["two", "three"]
    assert len([m for m in state["messages"] if m["role"] == "user"]) == 3  # "two" included


async def test_a_stream_follows_another_process_run_while_it_runs(
    server: ThreadServer, aclient: httpx.AsyncClient
) -> None:
    from bassi.manager import SessionManager

    session_id = (await aclient.post("/api/sessions", json={})).json()["id"]
    async with connect(f"{server.ws_url}/api/sessions/{session_id}/ws") as ws:
        await read_until_seq(ws, 1)
        settings = server.settings
        async with SessionManager.open(settings.database, settings=settings, recover=False) as cli:
            theirs = await cli.get(session_id)
            await theirs.prompt("/stream 40 100")  # four seconds of tokens, in the other process
            frames = await read_until_type(ws, "token_delta")
            assert theirs.run_active  # seen live, not once the daemon next wrote something
            frames += await read_until_type(ws, "run_completed")
            await theirs.wait()
    seen = [f["seq"] for f in frames if "seq" in f]
    assert seen == list(range(2, seen[-1] + 1))  # every event once, in order


def _small_receive_buffer(port: int) -> socket.socket:
    """A connected socket whose kernel receive buffer is tiny, so the server feels the slowness."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_a_slow_client_never_slows_the_agent_and_still_gets_every_event(
    make_server: Any,
) -> None:
    server: ThreadServer = make_server(app_options={"stream_queue_size": 8})
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        session_id = (await http.post("/api/sessions", json={})).json()["id"]
        url = f"{server.ws_url}/api/sessions/{session_id}/ws?after=0"
        sock = _small_receive_buffer(server.settings.port)
        async with connect(url, sock=sock, max_queue=4) as ws:
            await http.post(f"/api/sessions/{session_id}/prompts", json={"content": "/stream 3000"})
            # Read one frame every 50 ms (the agent makes one every fraction of a millisecond)
            # until the run has finished on the server.
            frames: list[dict[str, Any]] = []
            while True:
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
                status = (await http.get(f"/api/sessions/{session_id}")).json()["status"]
                if status == "idle":
                    break
                await asyncio.sleep(0.05)
            read_while_running = len(frames)
            listed = (
                await http.get(f"/api/sessions/{session_id}/events", params={"limit": 10_000})
            ).json()["events"]
            assert len(listed) > 3000
            assert read_while_running < len(listed) / 10  # the run did not wait for the reader
            frames += await read_until_seq(ws, listed[-1]["seq"])
        metrics = (await http.get("/metrics")).text

    assert frames == listed  # every event, once, in order
    drops = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("bassi_subscriber_drops_total")
    )
    assert drops > 0  # it really fell behind, and caught up from the log


async def read_batches_until_seq(ws: ClientConnection, seq: int) -> list[list[dict[str, Any]]]:
    """Batch frames (JSON arrays of events) until the one holding `seq`; pings are skipped."""
    frames: list[list[dict[str, Any]]] = []
    while not frames or frames[-1][-1]["seq"] < seq:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if isinstance(frame, list):
            assert frame, "a batch frame is never empty"
            frames.append(frame)
        else:
            assert frame["type"] in ("ping", "reply", "pong"), frame
    return frames


async def test_batch_frames_hold_every_event_once_in_order(
    server: ThreadServer, aclient: httpx.AsyncClient
) -> None:
    session_id = (await aclient.post("/api/sessions", json={})).json()["id"]
    url = f"{server.ws_url}/api/sessions/{session_id}/ws"
    async with connect(f"{url}?after=0&batch=1") as live, connect(f"{url}?after=0") as single:
        await aclient.post(f"/api/sessions/{session_id}/prompts", json={"content": "/stream 2000"})
        singles = await read_until_type(single, "run_completed")
        last = singles[-1]["seq"]
        batches = await read_batches_until_seq(live, last)
    listed = (
        await aclient.get(f"/api/sessions/{session_id}/events", params={"limit": 10_000})
    ).json()["events"]
    assert [e for frame in batches for e in frame] == listed  # complete, in order, no repeats
    assert singles == listed  # the default protocol is unchanged: one event per frame
    assert max(len(frame) for frame in batches) > 1  # a fast run really was coalesced
    assert max(len(frame) for frame in batches) <= BATCH_EVENTS

    # Resuming mid-history in batch mode (read from the log) gives exactly the rest.
    async with connect(f"{url}?after=17&batch=1") as resumed:
        rest = await read_batches_until_seq(resumed, last)
    assert [e for frame in rest for e in frame] == listed[17:]


def test_batch_frames_split_by_size_and_keep_order() -> None:
    texts = [json.dumps({"seq": n, "text": "x" * 1000}) for n in range(1, 1001)]
    frames = list(batch_frames(texts))
    assert len(frames) > 1
    assert all(len(f) <= BATCH_BYTES + 2 for f in frames)
    assert [e["seq"] for f in frames for e in json.loads(f)] == list(range(1, 1001))
    big = "y" * (2 * BATCH_BYTES)
    alone = list(batch_frames(['{"seq": 1}', json.dumps({"seq": 2, "text": big}), '{"seq": 3}']))
    assert [[e["seq"] for e in json.loads(f)] for f in alone] == [[1], [2], [3]]
    assert list(batch_frames([])) == []


async def test_many_streams_of_a_session_share_one_subscriber_and_a_stalled_one_is_left_behind(
    make_server: Any,
) -> None:
    """Healthy clients (one-event and batch frames, SSE) all get every event while a client that
    never reads falls out of the window; once it reads, it catches up from the log."""
    server: ThreadServer = make_server(app_options={"stream_queue_size": 50})
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        session_id = (await http.post("/api/sessions", json={})).json()["id"]
        url = f"{server.ws_url}/api/sessions/{session_id}/ws?after=0"
        stalled_sock = _small_receive_buffer(server.settings.port)
        async with (
            connect(url) as single,
            connect(f"{url}&batch=1") as batched,
            connect(url, sock=stalled_sock, max_queue=1) as stalled,
            http.stream("GET", f"/api/sessions/{session_id}/stream") as sse,
        ):
            subscribers = (await http.get("/metrics")).text
            assert _metric(subscribers, "bassi_subscribers") == 1  # one feed, four streams
            assert _metric(subscribers, 'bassi_open_streams{kind="websocket"}') == 3
            await http.post(f"/api/sessions/{session_id}/prompts", json={"content": "/stream 3000"})
            singles = await read_until_type(single, "run_completed")
            last = singles[-1]["seq"]
            batches = await read_batches_until_seq(batched, last)
            received: list[dict[str, Any]] = []
            lines = sse.aiter_lines()
            async for line in lines:
                if line.startswith("data: "):
                    received.append(json.loads(line.removeprefix("data: ")))
                    if received[-1]["seq"] >= last:
                        break
            # The stalled client has read nothing; now it reads everything.
            late = await read_until_seq(stalled, last)
        metrics = (await http.get("/metrics")).text
        listed = (
            await http.get(f"/api/sessions/{session_id}/events", params={"limit": 10_000})
        ).json()["events"]

    assert singles == listed
    assert [e for frame in batches for e in frame] == listed
    assert received == listed
    assert late == listed
    assert _metric(metrics, "bassi_subscriber_drops_total") > 0  # it did read from the log


def _metric(text: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


async def test_websocket_commands_prompt_approve_cancel_and_errors(
    server: ThreadServer, aclient: httpx.AsyncClient
) -> None:
    session_id = (await aclient.post("/api/sessions", json={})).json()["id"]
    async with connect(f"{server.ws_url}/api/sessions/{session_id}/ws") as ws:
        seen: list[dict[str, Any]] = []  # event frames that arrived while awaiting a reply

        async def command(body: Any) -> dict[str, Any]:
            await ws.send(body if isinstance(body, str | bytes) else json.dumps(body))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] in ("reply", "pong"):
                    return frame
                seen.append(frame)

        assert (await command({"type": "ping", "id": 7}))["type"] == "pong"
        idle_cancel = await command({"type": "cancel", "id": 1})
        assert idle_cancel["ok"] is False and idle_cancel["status"] == 409
        assert idle_cancel["error"]["type"] == "InvalidStateError"
        lone_surrogate = {"type": "prompt", "content": "half a pair: \ud800"}
        for bad in (
            "not json",
            b"\x00binary",
            {"type": "launch"},
            {"type": "prompt"},
            lone_surrogate,
        ):
            reply = await command(bad)
            assert reply["ok"] is False and reply["status"] == 422, bad

        # A client matches replies to commands by id: an invalid command's reply repeats it too.
        for bad, echoed in (
            ({"type": "prompt", "id": 42}, {"id": 42, "command": "prompt"}),
            ({"type": "cancel", "id": 44, "mode": "x"}, {"id": 44, "command": "cancel"}),
            ({"type": "approval", "id": "a1"}, {"id": "a1", "command": "approval"}),
            ({"type": "launch", "id": "l"}, {"id": "l", "command": None}),
            ({"type": ["prompt"], "id": True}, {"id": None, "command": None}),
            ([{"type": "ping", "id": 1}], {"id": None, "command": None}),
            ("[" * 100_000, {"id": None, "command": None}),
        ):
            reply = await command(bad)
            assert reply["ok"] is False and reply["status"] == 422, bad
            assert {k: reply[k] for k in echoed} == echoed, (bad, reply)

        started = await command({"type": "prompt", "content": "/bash echo hi"})
        assert started["ok"] is True
        busy = await command({"type": "prompt", "content": "again"})
        assert busy["ok"] is False and busy["status"] == 409
        frames = await read_until_type(ws, "permission_requested")
        tool_call_id = frames[-1]["tool_call_id"]
        wrong = await command({"type": "approval", "tool_call_id": "nope", "decision": "allow"})
        assert wrong["ok"] is False and wrong["status"] == 404
        approved = await command(
            {"type": "approval", "tool_call_id": tool_call_id, "decision": "allow", "id": "a"}
        )
        assert approved == {"type": "reply", "id": "a", "command": "approval", "ok": True}
        frames = await read_until_type(ws, "run_completed")
        [done] = [f for f in frames if f.get("type") == "tool_call_completed"]
        assert done["output"].startswith("hi")

        await command({"type": "prompt", "content": "/stream 1000 20"})
        await read_until_type(ws, "token_delta")
        cancelled = await command({"type": "cancel", "mode": "immediate"})
        assert cancelled["ok"] is True
        if seen[-1]["type"] != "run_cancelled":
            seen += await read_until_type(ws, "run_cancelled")
        assert seen[-1]["mode"] == "immediate"


async def test_websocket_handshake_errors(server: ThreadServer, client: httpx.Client) -> None:
    session_id = create_session(client)
    base = f"{server.ws_url}/api/sessions"
    cases = [
        (f"{base}/00000000-0000-0000-0000-000000000000/ws", 404, "SessionNotFound"),
        (f"{base}/{session_id}/ws?after=-1", 422, "ConfigError"),
        (f"{base}/{session_id}/ws?after=abc", 422, "ConfigError"),
        (f"{base}/{session_id}/ws?after={10**23}", 422, "ConfigError"),
        (f"{base}/{session_id}/ws?batch=yes", 422, "ConfigError"),
    ]
    for url, status, error_type in cases:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url):
                pass
        response = refused.value.response
        assert response.status_code == status, url
        assert json.loads(response.body or b"{}")["error"]["type"] == error_type


def _sse(
    lines: Iterator[str], until_seq: int = 0, until_type: str = ""
) -> list[tuple[str, dict[str, Any]]]:
    """(id, data) of SSE messages until the one with seq `until_seq` or type `until_type`."""
    received: list[tuple[str, dict[str, Any]]] = []
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                data = json.loads(fields["data"])
                received.append((fields.get("id", ""), data))
                if data["type"] == until_type or (until_seq and data["seq"] >= until_seq):
                    return received
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
    raise AssertionError("the stream ended early")


def test_sse_ids_are_seqs_and_last_event_id_resumes(
    server: ThreadServer, client: httpx.Client
) -> None:
    session_id = create_session(client)
    prompt(client, session_id, "/stream 10")
    wait_idle(client, session_id)
    listed = events(client, session_id)
    last = listed[-1]["seq"]
    url = f"/api/sessions/{session_id}/stream"

    with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        received = _sse(response.iter_lines(), last)
    assert [data for _, data in received] == listed
    assert [int(event_id) for event_id, _ in received] == [e["seq"] for e in listed]

    with client.stream("GET", url, headers={"Last-Event-ID": "5"}) as response:
        resumed = _sse(response.iter_lines(), last)
    assert [data for _, data in resumed] == listed[5:]

    with client.stream("GET", url, params={"after": 8}) as response:
        assert [data for _, data in _sse(response.iter_lines(), last)] == listed[8:]

    for cursor in ("x", str(10**23)):
        bad = client.get(url, headers={"Last-Event-ID": cursor})
        assert bad.status_code == 422, cursor
    assert client.get(url, params={"after": 10**23}).status_code == 422


def test_sse_follows_a_live_run(server: ThreadServer, client: httpx.Client) -> None:
    session_id = create_session(client)
    with (
        httpx.Client(base_url=server.url, timeout=10) as other,
        other.stream("GET", f"/api/sessions/{session_id}/stream", params={"after": 1}) as response,
    ):
        lines = response.iter_lines()
        prompt(client, session_id, "/stream 20 5")
        received = _sse(lines, until_type="run_completed")
    assert [data for _, data in received] == events(client, session_id, after=1)


async def test_quiet_streams_get_keepalives(make_server: Any) -> None:
    server: ThreadServer = make_server(app_options={"ping_interval": 0.2})
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        session_id = (await client.post("/api/sessions", json={})).json()["id"]
        async with client.stream("GET", f"/api/sessions/{session_id}/stream") as response:
            lines = response.aiter_lines()
            assert ": ping" in [await anext(lines) for _ in range(8)]
    async with connect(f"{server.ws_url}/api/sessions/{session_id}/ws") as ws:
        assert json.loads(await ws.recv())["type"] == "session_started"
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "ping"}
