"""The `e2e`, `restart` and `fanout` suites: `bassi serve` as a real process on 127.0.0.1.

e2e: N sessions (1, 10, 100) each run `/stream T 10` (the scripted model sends T tokens 10 ms
  apart, about an LLM's pace) while one WebSocket client per session reads its events. Figures:
  tokens/s delivered to the clients, and append-to-client latency (client receive time minus
  the event's `recorded_at`) p50/p99 over every event of the runs. Baseline: a bare WebSocket
  server (the `websockets` library, no agent, no store) sending the same JSON frames at the same
  pace to the same clients.
restart: `bassi serve` from spawn to `/api/health` 200 with 1,000 sessions x 200 events in the
  database (two completed runs each, token deltas included), clean and with 1% of the sessions
  left mid-run as after a crash. Baseline: the same start on an empty database.
fanout: one session streams `/stream T 0` (as fast as the agent can) to 50 WebSocket clients,
  one of which never reads (a raw socket with a 4 KiB receive buffer). Figure: the producer's
  rate (tokens / time from run_started to run_completed, from the log) with the stalled client,
  against the same 49 healthy clients without it (baseline) and against no client at all. Both client protocols:
  one event per frame (the default) and `?batch=1` (arrays of events, what the web UI asks
  for). A fresh session per round; the clients only count events, to leave the two cores to the
  server; the five configurations are interleaved (in a rotating order) and the median of
  the repeats is reported.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets
from daemon import Daemon, create_session, events, parse_time, prompt, running

from bassi import events as ev
from bassi.messages import TextBlock
from bassi.settings import database_url
from bassi.store.eventstore import EventStore

PACE_MS = 10

# --- clients --------------------------------------------------------------------------------


class Reader:
    """One WebSocket client: reads frames until its run ends, timing each event."""

    def __init__(self, url: str, *, light: bool = False) -> None:
        self.url = url
        self.light = light
        """Only count tokens (no JSON parsing): clients that cost the machine little CPU."""
        self.latencies: list[float] = []
        self.tokens = 0
        self.seqs: list[int] = []
        self.done_at = 0.0
        self.connected = asyncio.Event()

    async def run(self, until: str = "run_completed") -> None:
        async with websockets.connect(self.url, max_size=None, compression=None) as ws:
            self.connected.set()
            async for frame in ws:
                if self.light:
                    # A frame holds one event, or several with `?batch=1` (a JSON array).
                    assert isinstance(frame, str)
                    self.tokens += frame.count('"type":"token_delta"')
                    if '"type":"run_completed"' in frame or '"type":"run_failed"' in frame:
                        self.done_at = time.monotonic()
                        return
                    continue
                now = time.time()
                data = json.loads(frame)
                for item in data if isinstance(data, list) else [data]:
                    kind = item.get("type")
                    if kind in ("ping", "reply", "pong"):
                        continue
                    self.latencies.append(now - parse_time(item["recorded_at"]))
                    if "seq" in item:
                        self.seqs.append(item["seq"])
                    if kind == "token_delta":
                        self.tokens += 1
                    if kind == until or kind in ("run_failed", "run_cancelled"):
                        self.done_at = time.monotonic()
                        return


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _latency_row(readers: list[Reader], started: float, ended: float) -> dict[str, Any]:
    lat = [x for r in readers for x in r.latencies]
    tokens = sum(r.tokens for r in readers)
    return {
        "tokens": tokens,
        "tokens_per_s": round(tokens / (ended - started)),
        "p50_ms": round(percentile(lat, 0.50) * 1000, 2),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        "max_ms": round(max(lat) * 1000, 2) if lat else None,
    }


# --- baseline: a bare WebSocket server -------------------------------------------------------

_BARE = """
import asyncio, json, sys, uuid
from datetime import datetime, timezone
from urllib.parse import urlparse, parse_qs
import websockets

async def handler(ws):
    q = parse_qs(urlparse(ws.request.path).query)
    tokens, pace = int(q["tokens"][0]), int(q["ms"][0]) / 1000
    sid = str(uuid.uuid4())
    for n in range(1, tokens + 2):
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        kind = "token_delta" if n <= tokens else "run_completed"
        await ws.send(json.dumps({"type": kind, "event_id": str(uuid.uuid4()), "session_id": sid,
            "run_id": sid, "seq": n, "position": n, "recorded_at": now, "v": 1,
            "message_id": sid, "index": 0, "channel": "text", "text": f" t{n}"}))
        if pace and n <= tokens:
            await asyncio.sleep(pace)
    await ws.wait_closed()

async def main():
    async with websockets.serve(handler, "127.0.0.1", int(sys.argv[1]), compression=None):
        print("ready", flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


async def _bare_round(sessions: int, tokens: int) -> dict[str, Any]:
    from daemon import free_port

    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, read through a thread
        [sys.executable, "-c", _BARE, str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        await asyncio.to_thread(proc.stdout.readline)
        url = f"ws://127.0.0.1:{port}/?tokens={tokens}&ms={PACE_MS}"
        readers = [Reader(url) for _ in range(sessions)]
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(r.run() for r in readers)), 600)
        ended = max(r.done_at for r in readers)
        return _latency_row(readers, started, ended)
    finally:
        proc.terminate()
        proc.wait(10)


# --- e2e --------------------------------------------------------------------------------------


async def _bassi_round(daemon: Daemon, sessions: int, tokens: int) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60.0, limits=httpx.Limits(max_connections=200)) as http:
        made = await asyncio.gather(
            *(create_session(http, daemon.url, title="e2e") for _ in range(sessions))
        )
        readers = []
        for session in made:
            url = f"{daemon.ws_url}/api/sessions/{session['id']}/ws?after={session['last_seq']}"
            readers.append(Reader(url))
        tasks = [asyncio.create_task(r.run()) for r in readers]
        await asyncio.gather(*(r.connected.wait() for r in readers))
        started = time.monotonic()
        await asyncio.gather(
            *(prompt(http, daemon.url, s["id"], f"/stream {tokens} {PACE_MS}") for s in made)
        )
        await asyncio.wait_for(asyncio.gather(*tasks), 600)
        ended = max(r.done_at for r in readers)
    row = _latency_row(readers, started, ended)
    row["expected_tokens"] = sessions * tokens
    return row


async def e2e(quick: bool) -> dict[str, Any]:
    levels = {1: 200, 10: 100, 100: 20} if quick else {1: 1000, 10: 500, 100: 100}
    out: dict[str, Any] = {"pace_ms": PACE_MS, "levels": {}}
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(Path(tmp) / "bassi.db", Path(tmp))
        async with running(daemon):
            await _bassi_round(daemon, 1, 10)  # warm-up: imports, first queries
            for sessions, tokens in levels.items():
                bassi = await _bassi_round(daemon, sessions, tokens)
                bare = await _bare_round(sessions, tokens)
                out["levels"][str(sessions)] = {
                    "tokens_per_session": tokens,
                    "bassi": bassi,
                    "bare_websocket": bare,
                    "throughput_ratio": round(bassi["tokens_per_s"] / bare["tokens_per_s"], 2),
                    "p99_ratio": round(bassi["p99_ms"] / bare["p99_ms"], 1)
                    if bare["p99_ms"]
                    else None,
                }
    ten = out["levels"].get("10")
    if ten:
        out["target_p99_under_50ms_at_10"] = ten["bassi"]["p99_ms"] < 50
    return out


# --- restart ----------------------------------------------------------------------------------


def _session_events(sid: str, open_run: bool) -> list[ev.Event]:
    out: list[ev.Event] = [ev.SessionStarted(session_id=sid, model="scripted", title=sid)]
    for n, deltas in enumerate((92, 93)):
        run = f"{sid}-run{n}"
        msg = f"{sid}-msg{n}"
        ids = {"session_id": sid, "run_id": run}
        out += [
            ev.PromptReceived(**ids, content=f"/stream {deltas}"),
            ev.RunStarted(**ids, model="scripted"),
            ev.MessageStarted(**ids, message_id=msg, model="scripted", provider="scripted"),
            ev.ContentBlockStarted(**ids, message_id=msg, index=0, block_type="text"),
        ]
        out += [
            ev.TokenDelta(**ids, message_id=msg, index=0, channel="text", text=f" t{k}")
            for k in range(deltas)
        ]
        out.append(ev.ContentBlockStopped(**ids, message_id=msg, index=0))
        if open_run and n == 1:
            out.append(ev.TokenDelta(**ids, message_id=msg, index=0, channel="text", text=" ."))
            break  # the crash came here: no message_completed, no run_completed
        text = " ".join(f"t{k}" for k in range(deltas))
        out.append(
            ev.MessageCompleted(
                **ids, message_id=msg, content=[TextBlock(text=text)], stop_reason="end_turn"
            )
        )
        out.append(ev.RunCompleted(**ids, stop_reason="end_turn", turns=1))
    return out


async def build_db(path: Path, sessions: int, crashed_every: int | None) -> int:
    """A database of `sessions` x 200 events, written fast through EventStore.append_many."""
    store = await EventStore.open(database_url(str(path)), max_batch=20_000)
    total = 0
    pending: list[ev.Event] = []
    for n in range(sessions):
        open_run = crashed_every is not None and n % crashed_every == 0
        pending += _session_events(f"session-{n:05d}", open_run)
        if len(pending) >= 10_000:
            total += len(pending)
            await store.append_many(pending)
            pending = []
    total += len(pending)
    await store.append_many(pending)
    await store.flush()
    await store.close()
    return total


async def _ready_times(db: Path, workdir: Path, repeats: int) -> list[float]:
    daemon = Daemon(db, workdir)
    times = []
    for _ in range(repeats):
        times.append(await daemon.start())
        daemon.stop()
    return times


async def _connect_s(db: Path, home: Path) -> float:
    """In this process (imports already paid): SessionManager.connect, which migrates and
    recovers, as `bassi serve`'s lifespan does."""
    from bassi.manager import SessionManager
    from bassi.settings import Settings

    settings = Settings.load(
        {"home": home, "database": str(db), "default_model": "scripted"}, environ={}
    )
    started = time.perf_counter()
    manager = await SessionManager.connect(settings=settings)
    elapsed = time.perf_counter() - started
    await manager.close()
    return elapsed


def _import_s() -> float:
    """A fresh interpreter importing what `bassi serve` imports, and nothing else."""
    code = "import time; t = time.perf_counter(); import bassi.cli, bassi.web.app, uvicorn; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


async def restart(quick: bool) -> dict[str, Any]:
    sessions = 100 if quick else 1_000
    repeats = 1 if quick else 3
    out: dict[str, Any] = {"sessions": sessions, "events_per_session": 200}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        empty = base / "empty.db"
        store = await EventStore.open(database_url(str(empty)))
        await store.close()
        clean, crashed = base / "clean.db", base / "crashed.db"
        built = time.perf_counter()
        out["events"] = await build_db(clean, sessions, None)
        out["build_events_per_s"] = round(out["events"] / (time.perf_counter() - built))
        await build_db(crashed, sessions, 100)
        empty_t = await _ready_times(empty, base / "w-empty", repeats)
        clean_t = await _ready_times(clean, base / "w-clean", repeats)
        # Recovery changes the database (it continues the interrupted runs), so each start
        # of the crashed case gets a fresh copy.
        crashed_t = []
        for n in range(repeats):
            copy = base / f"crashed-{n}.db"
            copy.write_bytes(crashed.read_bytes())
            crashed_t += await _ready_times(copy, base / f"w-crashed-{n}", 1)
        home = base / "home"
        home.mkdir()
        connect = {
            "empty": await _connect_s(empty, home),
            "clean": await _connect_s(clean, home),
        }
        copy = base / "crashed-connect.db"
        copy.write_bytes(crashed.read_bytes())
        connect["crashed"] = await _connect_s(copy, home)
        imports = statistics.median([await asyncio.to_thread(_import_s) for _ in range(repeats)])
    med = statistics.median
    out.update(
        {
            "empty_s": round(med(empty_t), 3),
            "clean_s": round(med(clean_t), 3),
            "crashed_1pct_s": round(med(crashed_t), 3),
            "clean_ratio_to_empty": round(med(clean_t) / med(empty_t), 2),
            "crashed_ratio_to_empty": round(med(crashed_t) / med(empty_t), 2),
            "all_s": {"empty": empty_t, "clean": clean_t, "crashed": crashed_t},
            "import_s": round(imports, 3),
            "manager_connect_s": {k: round(v, 3) for k, v in connect.items()},
            "target_under_2s": max(med(clean_t), med(crashed_t)) < 2.0,
        }
    )
    return out


# --- fanout -----------------------------------------------------------------------------------


def _stalled_socket(port: int, path: str) -> socket.socket:
    """A WebSocket handshake, then never a read: the server's sends back up into its buffers."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock


async def _fanout_round(
    daemon: Daemon,
    http: httpx.AsyncClient,
    healthy: int,
    stalled: bool,
    tokens: int,
    batch: bool = False,
) -> dict[str, Any]:
    # A fresh session each time, so no round streams into a longer history than another.
    made = await create_session(http, daemon.url, title="fanout")
    sid, head = made["id"], made["last_seq"]
    path = f"/api/sessions/{sid}/ws?after={head}" + ("&batch=1" if batch else "")
    readers = [Reader(f"{daemon.ws_url}{path}", light=True) for _ in range(healthy)]
    tasks = [asyncio.create_task(r.run()) for r in readers]
    await asyncio.gather(*(r.connected.wait() for r in readers))
    sock = _stalled_socket(daemon.port, path) if stalled else None
    try:
        await asyncio.sleep(0.2)
        await prompt(http, daemon.url, sid, f"/stream {tokens} 0")
        if tasks:
            await asyncio.wait_for(asyncio.gather(*tasks), 600)
        while True:  # the log says when the run ended (cheap: one small query)
            marks = await events(http, daemon.url, sid, types="run_started,run_completed")
            if marks and marks[-1]["type"] == "run_completed":
                break
            await asyncio.sleep(0.1)
    finally:
        if sock is not None:
            sock.close()
    t0 = parse_time(marks[0]["recorded_at"])
    t1 = parse_time(marks[-1]["recorded_at"])
    complete = all(r.tokens == tokens for r in readers)
    return {"producer_tokens_per_s": round(tokens / (t1 - t0)), "clients_complete": complete}


HEALTHY = 49
"""Healthy clients in the fanout suite; with the stalled one, 50."""


async def fanout(quick: bool) -> dict[str, Any]:
    tokens = 1_000 if quick else 10_000
    # The rounds spread by +-40% on a shared 2-core machine (the clients, the server's loop and
    # its SQLite thread share the cores), so the full run takes 9 and also reports each
    # configuration's quartiles and the median of the per-repeat stalled/healthy ratios.
    repeats = 1 if quick else 9
    # "With and without the stalled client": the same 49 healthy clients either way, so the
    # only difference is the stalled one (with 50 healthy against 49 + 1 stalled, the stalled
    # configuration also had one reader fewer competing for the same two cores).
    configs = {
        "no_clients": (0, False, False),
        "healthy_49": (HEALTHY, False, False),
        "healthy_49_stalled_1": (HEALTHY, True, False),
        "healthy_49_batch": (HEALTHY, False, True),
        "healthy_49_stalled_1_batch": (HEALTHY, True, True),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(Path(tmp) / "bassi.db", Path(tmp))
        async with running(daemon), httpx.AsyncClient(timeout=60.0) as http:
            await _fanout_round(daemon, http, 1, False, 200)  # warm-up
            order = list(configs.items())
            for n in range(repeats):  # interleaved, so drift in the machine hits all alike,
                # and rotated, so no configuration always follows the same one
                for name, (clients, stalled, batch) in order[n % 5 :] + order[: n % 5]:
                    runs[name].append(
                        await _fanout_round(daemon, http, clients, stalled, tokens, batch)
                    )
    med = {
        name: statistics.median(r["producer_tokens_per_s"] for r in rows)
        for name, rows in runs.items()
    }
    out: dict[str, Any] = {
        "tokens": tokens,
        "clients": HEALTHY + 1,
        "repeats": repeats,
        "producer_tokens_per_s": {k: round(v) for k, v in med.items()},
    }
    targets = []
    for suffix in ("", "_batch"):
        healthy = med[f"healthy_49{suffix}"]
        stalled = med[f"healthy_49_stalled_1{suffix}"]
        change = stalled / healthy - 1
        targets.append(abs(change) < 0.10)
        out[f"stalled_vs_healthy_ratio{suffix}"] = round(stalled / healthy, 3)
        out[f"stalled_change_pct{suffix}"] = round(change * 100, 1)
        out[f"healthy_vs_no_clients_ratio{suffix}"] = round(healthy / med["no_clients"], 3)
        paired = [
            s["producer_tokens_per_s"] / h["producer_tokens_per_s"]
            for h, s in zip(
                runs[f"healthy_49{suffix}"], runs[f"healthy_49_stalled_1{suffix}"], strict=True
            )
        ]
        out[f"paired_change_pct{suffix}"] = round((statistics.median(paired) - 1) * 100, 1)
    out["quartiles"] = (
        {
            name: [
                round(q)
                for q in statistics.quantiles(
                    [r["producer_tokens_per_s"] for r in rows], n=4, method="inclusive"
                )
            ]
            for name, rows in runs.items()
        }
        if repeats > 1
        else None
    )
    out["healthy_clients_got_every_token"] = all(
        r["clients_complete"] for rows in runs.values() for r in rows
    )
    out["runs"] = runs
    out["target_change_under_10pct"] = targets[0]
    out["target_change_under_10pct_batch"] = targets[1]
    return out


# --- printing ---------------------------------------------------------------------------------


def print_table(name: str, result: dict[str, Any]) -> None:
    if name == "e2e":
        print(f"  pace {result['pace_ms']} ms/token; baseline = bare WebSocket server, same frames")
        print(
            f"  {'sessions':>8} {'bassi tok/s':>12} {'bare tok/s':>11} {'ratio':>6}"
            f" {'bassi p50/p99 ms':>17} {'bare p50/p99 ms':>16}"
        )
        for level, row in result["levels"].items():
            b, w = row["bassi"], row["bare_websocket"]
            print(
                f"  {level:>8} {b['tokens_per_s']:>12,} {w['tokens_per_s']:>11,}"
                f" {row['throughput_ratio']:>6} {b['p50_ms']:>8}/{b['p99_ms']:<8}"
                f" {w['p50_ms']:>7}/{w['p99_ms']:<8}"
            )
    elif name == "restart":
        print(
            f"  {result['sessions']:,} sessions x 200 events: ready in {result['clean_s']} s clean,"
            f" {result['crashed_1pct_s']} s with 1% mid-run; empty db {result['empty_s']} s"
            f" (ratios {result['clean_ratio_to_empty']}, {result['crashed_ratio_to_empty']})"
        )
        connect = result["manager_connect_s"]
        print(
            f"  of which imports {result['import_s']} s; SessionManager.connect in-process:"
            f" empty {connect['empty']} s, clean {connect['clean']} s, crashed {connect['crashed']} s"
        )
    elif name == "fanout":
        rates = result["producer_tokens_per_s"]
        print(f"  producer tokens/s: no clients {rates['no_clients']:,}")
        for suffix, frames in (("", "one event per frame"), ("_batch", "batch frames")):
            print(
                f"  {frames:>20}: 49 healthy {rates['healthy_49' + suffix]:,},"
                f" 49 healthy + 1 stalled {rates['healthy_49_stalled_1' + suffix]:,}"
                f" (stalled/healthy {result['stalled_vs_healthy_ratio' + suffix]},"
                f" {result['stalled_change_pct' + suffix]:+}%,"
                f" paired {result['paired_change_pct' + suffix]:+}%;"
                f" healthy/none {result['healthy_vs_no_clients_ratio' + suffix]})"
            )
