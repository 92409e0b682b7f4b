"""Crash and fault campaign against `bassi serve` as a real process on 127.0.0.1.

    uv run python scripts/crashtest.py [--rounds N] [--json] [--seed S] [--lock-seconds 10]

Kill rounds: four sessions work at once through the HTTP API (three in `bypass` mode cycling
through streaming runs, bash and parallel tool calls; one in `default` mode whose bash calls
park on an approval that the harness answers after a random delay, or not at all). Each
session has a WebSocket client that records every event it is sent. At a random moment the
server is SIGKILLed, restarted, and once the recovered runs have settled the harness checks,
with SQL on the database and through the API:
- every event a client was sent is in the database, with the same seq (missing);
- no event_id twice (duplicates); seq is 1..n per session (gaps); integrity_check is ok;
- every tool_call_started has a completed/failed event (unterminated tool calls);
- every run has exactly one terminal event, apart from one parked on an approval (open runs);
- every session loads and takes a new prompt (a pending approval is answered first).

Then two faults on the last server (scripts/faultserve.py: bassi's CLI with a dormant switch):
- disk full: SQLite `max_page_count` caps the database mid-run; the run must fail with an
  error the user sees (/api/health 503, a prompt answered 503 with a JSON error), the daemon
  stays up, and works again once the cap is lifted;
- write lock: another process holds `BEGIN IMMEDIATE` for 10 s during a streaming run;
  nothing is lost, /api/health reports the lag during the stall and 0 after.

`--json` prints the counts. Exit status 1 when any invariant fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import httpx  # noqa: E402
import websockets  # noqa: E402
from daemon import Daemon, create_session, events, prompt  # noqa: E402

TERMINAL = {"run_completed", "run_cancelled", "run_failed", "run_interrupted"}
BYPASS_PROMPTS = ["/stream 300 3", "/bash echo crash-test", "/tools 3", "hello", "/stream 50 0"]


# --- a session's client ---------------------------------------------------------------------


@dataclass
class Tracker:
    """What one WebSocket client was sent, across every server restart."""

    sid: str
    approvals: bool
    last_seq: int = 0
    acked: dict[str, int] = field(default_factory=dict)  # event_id -> seq
    ended: set[str] = field(default_factory=set)  # run_ids with a terminal event
    parked: dict[str, str] = field(default_factory=dict)  # run_id -> tool_call_id
    last_type: str = ""
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self, ws_base: str) -> None:
        url = f"{ws_base}/api/sessions/{self.sid}/ws?after={self.last_seq}"
        with contextlib.suppress(Exception):
            async with websockets.connect(url, max_size=None, open_timeout=10) as ws:
                self.connected.set()
                async for frame in ws:
                    data = json.loads(frame)
                    if "event_id" not in data:
                        continue
                    self.acked[data["event_id"]] = data["seq"]
                    self.last_seq = max(self.last_seq, data["seq"])
                    self.last_type = data["type"]
                    if data["type"] in TERMINAL:
                        self.ended.add(data["run_id"])
                    elif data["type"] == "permission_requested":
                        self.parked[data["run_id"]] = data["tool_call_id"]
        self.connected.set()

    async def until(self, run_id: str, *, parked: bool = False, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while run_id not in self.ended and not (parked and run_id in self.parked):
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} of {self.sid} did not end")
            await asyncio.sleep(0.01)


async def drive(http: httpx.AsyncClient, base: str, t: Tracker, rng: random.Random) -> None:
    """Prompt after prompt until the server dies under us."""
    n = rng.randrange(len(BYPASS_PROMPTS))
    while True:
        if t.approvals:
            run_id = await prompt(http, base, t.sid, f"/bash echo approve-{n}")
            await t.until(run_id, parked=True)
            if run_id in t.parked and run_id not in t.ended:
                await asyncio.sleep(rng.uniform(0, 1.5))
                await http.post(
                    f"{base}/api/sessions/{t.sid}/approvals/{t.parked[run_id]}",
                    json={"decision": "allow"},
                )
        else:
            run_id = await prompt(http, base, t.sid, BYPASS_PROMPTS[n % len(BYPASS_PROMPTS)])
        await t.until(run_id)
        n += 1


# --- invariants -------------------------------------------------------------------------------


def check_db(db: Path, trackers: list[Tracker]) -> dict[str, Any]:
    """The SQL invariants, on a read-only connection beside the running server."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        stored = dict(conn.execute("SELECT event_id, seq FROM events"))
        duplicates = conn.execute(
            "SELECT COUNT(*) FROM (SELECT event_id FROM events GROUP BY event_id HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        gaps = conn.execute(
            "SELECT COUNT(*) FROM (SELECT session_id FROM events GROUP BY session_id"
            " HAVING COUNT(*) != MAX(seq) OR MIN(seq) != 1)"
        ).fetchone()[0]
        unterminated = conn.execute(
            """
            SELECT COUNT(*) FROM events s WHERE s.type = 'tool_call_started' AND NOT EXISTS (
                SELECT 1 FROM events t WHERE t.session_id = s.session_id
                AND t.type IN ('tool_call_completed', 'tool_call_failed')
                AND json_extract(t.payload, '$.tool_call_id')
                    = json_extract(s.payload, '$.tool_call_id'))
            """
        ).fetchone()[0]
        runs = conn.execute(
            """
            SELECT p.session_id, p.run_id, (SELECT COUNT(*) FROM events t
                WHERE t.session_id = p.session_id AND t.run_id = p.run_id
                AND t.type IN ('run_completed', 'run_cancelled', 'run_failed', 'run_interrupted'))
            FROM events p WHERE p.type = 'prompt_received'
            """
        ).fetchall()
        parked = {
            (sid, rid)
            for sid, rid in conn.execute(
                "SELECT session_id, current_run_id FROM sessions WHERE pending_approvals > 0"
                " AND current_run_id IS NOT NULL"
            )
        }
        total = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        conn.close()
    missing = wrong_seq = 0
    for t in trackers:
        for event_id, seq in t.acked.items():
            if event_id not in stored:
                missing += 1
            elif stored[event_id] != seq:
                wrong_seq += 1
    return {
        "integrity_ok": integrity == "ok",
        "events": total,
        "missing": missing,
        "wrong_seq": wrong_seq,
        "duplicates": duplicates,
        "gaps": gaps,
        "unterminated_tool_calls": unterminated,
        "open_runs": sum(1 for sid, rid, ends in runs if ends != 1 and (sid, rid) not in parked),
        "runs_with_two_ends": sum(1 for _, _, ends in runs if ends > 1),
    }


async def settle(
    http: httpx.AsyncClient, base: str, sid: str, within: float = 90
) -> dict[str, Any]:
    """Wait until the session's recovered run ends or parks; answer a parked approval."""
    deadline = time.monotonic() + within
    while True:
        state = (await http.get(f"{base}/api/sessions/{sid}")).json()
        # A recovered run re-parks on its approval with status "running" (see
        # docs/reliability.md), so the pending list decides, not the status.
        if state["pending_approvals"]:
            for pending in state["pending_approvals"]:
                await http.post(
                    f"{base}/api/sessions/{sid}/approvals/{pending['tool_call_id']}",
                    json={"decision": "allow"},
                )
        elif not state["run_active"] and state["status"] != "running":
            return dict(state)
        if time.monotonic() > deadline:
            raise TimeoutError(f"session {sid} did not settle: {state['status']}")
        await asyncio.sleep(0.05)


async def takes_prompt(http: httpx.AsyncClient, base: str, sid: str) -> bool:
    """The session answers a new prompt with the scripted model's echo."""
    run_id = await prompt(http, base, sid, "ping")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = await events(http, base, sid, types="run_completed,run_failed,message_completed")
        mine = [e for e in found if e["run_id"] == run_id]
        if any(e["type"] == "run_completed" for e in mine):
            texts = [
                b.get("text", "")
                for e in mine
                if e["type"] == "message_completed"
                for b in e["content"]
            ]
            return any(text.startswith("Echo #") for text in texts)
        if any(e["type"] == "run_failed" for e in mine):
            return False
        await asyncio.sleep(0.05)
    return False


# --- kill rounds ------------------------------------------------------------------------------


async def kill_round(daemon: Daemon, trackers: list[Tracker], rng: random.Random) -> dict[str, Any]:
    readers = [asyncio.create_task(t.read(daemon.ws_url)) for t in trackers]
    for t in trackers:
        t.connected.clear()
    await asyncio.gather(*(t.connected.wait() for t in trackers))
    http = httpx.AsyncClient(timeout=30.0)
    drivers = [asyncio.create_task(drive(http, daemon.url, t, rng)) for t in trackers]
    await asyncio.sleep(rng.uniform(0.3, 3.0))
    doing = {
        t.sid: ("parked" if t.last_type == "permission_requested" else t.last_type)
        for t in trackers
    }
    failed_early = [d for d in drivers if d.done() and d.exception() is not None]
    daemon.kill()
    for task in (*drivers, *readers):
        task.cancel()
    for task in (*drivers, *readers):
        with contextlib.suppress(BaseException):
            await task
    await http.aclose()
    return {
        "doing": doing,
        "driver_errors": [repr(d.exception()) for d in failed_early],
    }


async def after_restart(daemon: Daemon, trackers: list[Tracker]) -> dict[str, Any]:
    """Restart, let recovered runs settle, check the invariants and take a new prompt."""
    ready_s = await daemon.start()
    async with httpx.AsyncClient(timeout=30.0) as http:
        for t in trackers:
            await settle(http, daemon.url, t.sid)
        # catch the clients up on what recovery wrote, so those events count as sent too
        readers = [asyncio.create_task(t.read(daemon.ws_url)) for t in trackers]
        await asyncio.sleep(0.3)
        checked = check_db(daemon.db, trackers)
        prompts_ok = [await takes_prompt(http, daemon.url, t.sid) for t in trackers]
        for t in trackers:
            await settle(http, daemon.url, t.sid)
        await asyncio.sleep(0.2)
        for task in readers:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    checked.update(check_db(daemon.db, trackers))
    checked["ready_s"] = round(ready_s, 2)
    checked["prompt_failures"] = prompts_ok.count(False)
    return checked


# --- faults -----------------------------------------------------------------------------------


async def disk_full(daemon: Daemon, trackers: list[Tracker]) -> dict[str, Any]:
    """Cap the database mid-run; expect a visible error, a live daemon, and a working service
    once the cap is lifted, with no restart."""
    t, other = trackers[0], trackers[2]
    out: dict[str, Any] = {}
    reader = asyncio.create_task(t.read(daemon.ws_url))
    async with httpx.AsyncClient(timeout=60.0) as http:
        await settle(http, daemon.url, t.sid)
        await settle(http, daemon.url, other.sid)
        run_id = await prompt(http, daemon.url, t.sid, "/stream 3000 2")
        await asyncio.sleep(0.5)
        daemon.signal(signal.SIGUSR1)
        capped = time.monotonic()
        health: dict[str, Any] = {}
        while time.monotonic() - capped < 30:
            response = await http.get(f"{daemon.url}/api/health")
            health = response.json()
            if response.status_code == 503:
                break
            await asyncio.sleep(0.2)
        out["unhealthy_after_s"] = round(time.monotonic() - capped, 1)
        out["health_503"] = health.get("status") == "unhealthy"
        out["health_error"] = (health.get("store") or {}).get("last_error")
        # Another session's prompt, while the disk is full: it must fail with an error the
        # user sees, once the store's retry window (10 s) is over.
        asked = time.monotonic()
        response = await http.post(
            f"{daemon.url}/api/sessions/{other.sid}/prompts", json={"content": "during the outage"}
        )
        out["prompt_status"] = response.status_code
        out["prompt_error"] = response.json().get("error")
        out["prompt_answered_after_s"] = round(time.monotonic() - asked, 1)
        out["daemon_alive"] = daemon.alive()
        out["capped_for_s"] = round(time.monotonic() - capped, 1)
        daemon.signal(signal.SIGUSR2)
        freed = time.monotonic()
        await t.until(run_id, within=90)
        ends = await events(http, daemon.url, t.sid, types=",".join(sorted(TERMINAL)))
        mine = [e for e in ends if e["run_id"] == run_id]
        out["outage_run_end"] = mine[0]["type"] if mine else None
        out["outage_run_error"] = mine[0].get("message") if mine else None
        deltas = await events(http, daemon.url, t.sid, types="token_delta")
        out["outage_run_tokens_stored"] = sum(1 for e in deltas if e["run_id"] == run_id)
        out["outage_run_tokens_expected"] = 3000
        # "Runs fail cleanly": the run caught by the outage ends as run_failed, rather than
        # carrying on with token deltas silently missing from the log.
        out["run_failed_cleanly"] = out["outage_run_end"] == "run_failed" or (
            out["outage_run_end"] == "run_completed" and out["outage_run_tokens_stored"] == 3000
        )
        state = await settle(http, daemon.url, t.sid)
        out["status_after"] = state["status"]
        works = await takes_prompt(http, daemon.url, t.sid)
        works = works and await takes_prompt(http, daemon.url, other.sid)
        out["works_after_freeing"] = works
        out["recovered_after_s"] = round(time.monotonic() - freed, 1)
        health_after = await http.get(f"{daemon.url}/api/health")
        out["health_after"] = health_after.status_code
    reader.cancel()
    with contextlib.suppress(BaseException):
        await reader
    out["ok"] = bool(
        out["health_503"]
        and out["prompt_status"] == 503
        and out["prompt_error"]
        and out["daemon_alive"]
        and out["run_failed_cleanly"]
        and works
        and out["health_after"] == 200
    )
    return out


_HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
print("released", flush=True)
"""


async def write_lock(daemon: Daemon, trackers: list[Tracker], seconds: float) -> dict[str, Any]:
    """Another process holds the write lock during a streaming run: appends wait, none is lost."""
    t = trackers[1]
    tokens = 3000
    reader = asyncio.create_task(t.read(daemon.ws_url))
    out: dict[str, Any] = {"hold_s": seconds}
    async with httpx.AsyncClient(timeout=60.0) as http:
        await settle(http, daemon.url, t.sid)
        before = len(t.acked)
        run_id = await prompt(http, daemon.url, t.sid, f"/stream {tokens} 2")
        await asyncio.sleep(0.3)
        holder = subprocess.Popen(  # noqa: ASYNC220 - a child we watch, never wait on
            [sys.executable, "-c", _HOLD_LOCK, str(daemon.db), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None
        await asyncio.to_thread(holder.stdout.readline)
        locked = time.monotonic()
        lags: list[int] = []
        slowest_health = 0.0
        unhealthy = 0
        while holder.poll() is None:
            asked = time.monotonic()
            response = await http.get(f"{daemon.url}/api/health")
            slowest_health = max(slowest_health, time.monotonic() - asked)
            body = response.json()
            lags.append(body["store"]["lag"])
            unhealthy += response.status_code != 200
            await asyncio.sleep(0.25)
        released = time.monotonic()
        lag_zero_after = None
        while time.monotonic() - released < 30:
            body = (await http.get(f"{daemon.url}/api/health")).json()
            if body["store"]["lag"] == 0:
                lag_zero_after = round(time.monotonic() - released, 2)
                break
            await asyncio.sleep(0.05)
        await t.until(run_id, within=120)
        await settle(http, daemon.url, t.sid)
        stored = await events(http, daemon.url, t.sid, types="token_delta")
        got = [e for e in stored if e["run_id"] == run_id]
    reader.cancel()
    with contextlib.suppress(BaseException):
        await reader
    out.update(
        {
            "held_s": round(released - locked, 1),
            "max_lag": max(lags, default=0),
            "lag_reported": max(lags, default=0) > 0,
            "lag_zero_after_release_s": lag_zero_after,
            "unhealthy_polls": unhealthy,
            "slowest_health_s": round(slowest_health, 3),
            "tokens_stored": len(got),
            "tokens_expected": tokens,
            "events_seen_by_client": len(t.acked) - before,
            "run_completed": run_id in t.ended,
        }
    )
    out["ok"] = bool(
        out["lag_reported"]
        and lag_zero_after is not None
        and len(got) == tokens
        and out["run_completed"]
    )
    return out


# --- the campaign -----------------------------------------------------------------------------


async def campaign(rounds: int, seed: int, lock_seconds: float, workdir: Path) -> dict[str, Any]:
    db = workdir / "bassi.db"
    daemon = Daemon(db, workdir, module=(str(HERE / "faultserve.py"), "serve"))
    try:
        return await _campaign(daemon, rounds, seed, lock_seconds)
    finally:
        daemon.kill()


async def _campaign(daemon: Daemon, rounds: int, seed: int, lock_seconds: float) -> dict[str, Any]:
    rng = random.Random(seed)
    await daemon.start()
    trackers: list[Tracker] = []
    async with httpx.AsyncClient(timeout=30.0) as http:
        for n in range(4):
            approvals = n == 3
            made = await create_session(
                http,
                daemon.url,
                title=f"crash-{n}",
                permission_mode="default" if approvals else "bypass",
            )
            trackers.append(Tracker(made["id"], approvals))
    totals = {
        "rounds": 0,
        "acked": 0,
        "missing": 0,
        "wrong_seq": 0,
        "duplicates": 0,
        "gaps": 0,
        "unterminated_tool_calls": 0,
        "open_runs": 0,
        "integrity_failures": 0,
        "prompt_failures": 0,
    }
    killed_while: dict[str, int] = {}
    ready: list[float] = []
    errors: list[str] = []
    for _ in range(rounds):
        killed = await kill_round(daemon, trackers, rng)
        for doing in killed["doing"].values():
            kind = (
                "approval"
                if doing == "parked"
                else "tool"
                if doing.startswith("tool_call") or doing.startswith("permission")
                else "stream"
                if doing in ("token_delta", "content_block_started", "message_started")
                else "between steps"
            )
            killed_while[kind] = killed_while.get(kind, 0) + 1
        errors += killed["driver_errors"]
        checked = await after_restart(daemon, trackers)
        totals["rounds"] += 1
        for key in (
            "missing",
            "wrong_seq",
            "duplicates",
            "gaps",
            "unterminated_tool_calls",
            "open_runs",
            "prompt_failures",
        ):
            totals[key] = (
                max(totals[key], checked[key])
                if key != "prompt_failures"
                else totals[key] + checked[key]
            )
        totals["integrity_failures"] += not checked["integrity_ok"]
        ready.append(checked["ready_s"])
    totals["acked"] = sum(len(t.acked) for t in trackers)
    faults = {
        "disk_full": await disk_full(daemon, trackers),
        "write_lock": await write_lock(daemon, trackers, lock_seconds),
    }
    # A last restart: what the faults left behind must recover like any crash.
    daemon.stop()
    final = await after_restart(daemon, trackers)
    daemon.stop()
    for key in (
        "missing",
        "wrong_seq",
        "duplicates",
        "gaps",
        "unterminated_tool_calls",
        "open_runs",
    ):
        totals[key] = max(totals[key], final[key])
    totals["integrity_failures"] += not final["integrity_ok"]
    totals["prompt_failures"] += final["prompt_failures"]
    totals["acked"] = sum(len(t.acked) for t in trackers)
    totals["events_in_db"] = final["events"]
    ok = (
        all(
            totals[k] == 0
            for k in (
                "missing",
                "wrong_seq",
                "duplicates",
                "gaps",
                "unterminated_tool_calls",
                "open_runs",
                "integrity_failures",
                "prompt_failures",
            )
        )
        and faults["disk_full"]["ok"]
        and faults["write_lock"]["ok"]
    )
    return {
        **totals,
        "killed_while": killed_while,
        "restart_ready_s_median": sorted(ready)[len(ready) // 2] if ready else None,
        "faults": faults,
        "driver_errors": errors[:5],
        "seed": seed,
        "ok": ok,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=50, help="SIGKILL rounds (default 50)")
    parser.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument(
        "--lock-seconds",
        type=float,
        default=10.0,
        help="how long the external writer holds the lock",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    workdir = Path(tempfile.mkdtemp(prefix="bassi-crashtest-"))
    started = time.monotonic()
    try:
        result = asyncio.run(campaign(args.rounds, seed, args.lock_seconds, workdir))
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    result["seconds"] = round(time.monotonic() - started, 1)
    if args.keep:
        result["workdir"] = str(workdir)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
