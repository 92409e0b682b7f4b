"""The `peers` suite: bassi's event store against the session stores people use today.

Workloads (the same for everyone, inputs built before the clock starts, a fresh SQLite file
each time):
- one: persist 10,000 agent events (~300 bytes each) of one session, then reload the session;
- many: persist 1,000 sessions x 20 events, then reload every session (one load per session,
  since no peer can read all sessions in one pass).

Two ways to hand events to each store:
- `each`: one call per event, as it is produced (what a streaming agent does; a peer commits
  each call in its own transaction, bassi group-commits non-durable appends and is flushed at
  the end of the workload);
- `batch`: one call per 256 events (per session in `many`): SQLiteSession.add_items with a
  list, eventsourcing saving the aggregate once per batch, bassi append_many(durable=True).
  ADK's DatabaseSessionService has no batch call, so it has no `batch` figure.

Every store runs each cell in a fresh interpreter of its own (`isolated`), so none is timed
with another's frameworks loaded.

Peers, each used the way its documentation shows, on its own defaults:
- OpenAI Agents SDK `SQLiteSession(session_id, db_path)`: `add_items`, `get_items`;
- Google ADK `DatabaseSessionService("sqlite+aiosqlite:///...")`: `create_session`,
  `append_event`, `get_session`;
- `eventsourcing` `Application` on `eventsourcing.sqlite`: an `Aggregate` with one `@event`
  method per agent event, `save`, `repository.get`.

The peers live in the optional `bench` dependency group (docs/performance.md); a peer that
cannot be imported is reported as missing, with the reason.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench_store import TEXT

from bassi import events as ev
from bassi.settings import database_url
from bassi.store.eventstore import EventStore

BATCH = 256

SHRINK = {"google-adk": 20}
"""Peers too slow for the whole workload within the time budget run a fraction of it
(`many` loses sessions, `one` loses events); events/s is still per event measured."""

Workload = dict[str, int]  # {"sessions": S, "per_session": N}


def workloads(quick: bool) -> dict[str, Workload]:
    scale = 10 if quick else 1
    return {
        "one": {"sessions": 1, "per_session": 10_000 // scale},
        "many": {"sessions": 1_000 // scale, "per_session": 20},
    }


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --- bassi ----------------------------------------------------------------------------------


async def bassi_run(
    path: Path, work: Workload, mode: str, *, wire: bool = False
) -> tuple[float, float]:
    """bassi's `EventStore`; the reload builds typed events (`query`), or with `wire` reads
    each event's wire JSON (`query_wire`: what a stream catching up or the events API sends)."""
    sessions = [f"s{n}" for n in range(work["sessions"])]
    events = {
        sid: [
            ev.TokenDelta(
                session_id=sid,
                run_id="run",
                message_id=f"msg-{n // 50}",
                index=0,
                channel="text",
                text=TEXT,
            )
            for n in range(work["per_session"])
        ]
        for sid in sessions
    }
    store = await EventStore.open(database_url(str(path)))
    started = time.perf_counter()
    for sid in sessions:
        if mode == "each":
            for item in events[sid]:
                await store.append(item)
        else:
            for chunk in _chunks(events[sid], BATCH):
                await store.append_many(chunk, durable=True)
    await store.flush()
    persisted = time.perf_counter() - started
    await store.close()
    store = await EventStore.open(database_url(str(path)))
    started = time.perf_counter()
    loaded = 0
    read = store.query_wire if wire else store.query
    for sid in sessions:
        loaded += len(await read(session_id=sid))
    reloaded = time.perf_counter() - started
    await store.close()
    assert loaded == len(sessions) * work["per_session"], loaded
    return persisted, reloaded


# --- OpenAI Agents SDK ----------------------------------------------------------------------


def _openai_item(n: int) -> dict[str, Any]:
    return {
        "id": f"msg_{n}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": TEXT, "annotations": []}],
    }


async def openai_agents_run(path: Path, work: Workload, mode: str) -> tuple[float, float]:
    from agents import SQLiteSession

    sessions = [f"s{n}" for n in range(work["sessions"])]
    items = [_openai_item(n) for n in range(work["per_session"])]
    started = time.perf_counter()
    for sid in sessions:
        session = SQLiteSession(sid, path)
        if mode == "each":
            for item in items:
                await session.add_items([item])  # type: ignore[list-item]
        else:
            for chunk in _chunks(items, BATCH):
                await session.add_items(chunk)
        session.close()
    persisted = time.perf_counter() - started
    started = time.perf_counter()
    loaded = 0
    for sid in sessions:
        session = SQLiteSession(sid, path)
        loaded += len(await session.get_items())
        session.close()
    reloaded = time.perf_counter() - started
    assert loaded == len(sessions) * work["per_session"], loaded
    return persisted, reloaded


# --- Google ADK -----------------------------------------------------------------------------


async def google_adk_run(path: Path, work: Workload, mode: str) -> tuple[float, float]:
    if mode != "each":
        raise NotImplementedError("DatabaseSessionService has no batch append")
    from google.adk.events import Event
    from google.adk.sessions import DatabaseSessionService
    from google.genai import types

    sessions = [f"s{n}" for n in range(work["sessions"])]
    events = [
        Event(
            invocation_id="inv",
            author="model",
            content=types.Content(role="model", parts=[types.Part(text=TEXT)]),
        )
        for _ in range(work["per_session"])
    ]
    service = DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{path}")
    started = time.perf_counter()
    for sid in sessions:
        session = await service.create_session(app_name="bench", user_id="u", session_id=sid)
        for item in events:
            await service.append_event(session, item.model_copy(update={"id": str(uuid.uuid4())}))
    persisted = time.perf_counter() - started
    await service.close()
    service = DatabaseSessionService(db_url=f"sqlite+aiosqlite:///{path}")
    started = time.perf_counter()
    loaded = 0
    for sid in sessions:
        got = await service.get_session(app_name="bench", user_id="u", session_id=sid)
        assert got is not None
        loaded += len(got.events)
    reloaded = time.perf_counter() - started
    await service.close()
    assert loaded == len(sessions) * work["per_session"], loaded
    return persisted, reloaded


# --- eventsourcing --------------------------------------------------------------------------


_ES_CLASSES: list[tuple[type[Any], type[Any]]] = []


def _eventsourcing_classes() -> tuple[type[Any], type[Any]]:
    # Defined once: eventsourcing registers each aggregate class under its topic.
    if _ES_CLASSES:
        return _ES_CLASSES[0]
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Conversation(Aggregate):  # type: ignore[misc]
        """One agent session; its created event counts as the first of the session's events."""

        def __init__(self) -> None:
            self.deltas = 0

        @event("TokenDelta")
        def token_delta(self, message_id: str, index: int, channel: str, text: str) -> None:
            self.deltas += 1

    class Sessions(Application):  # type: ignore[misc]
        pass

    _ES_CLASSES.append((Conversation, Sessions))
    return Conversation, Sessions


async def eventsourcing_run(path: Path, work: Workload, mode: str) -> tuple[float, float]:
    return await asyncio.to_thread(_eventsourcing_sync, path, work, mode)


def _eventsourcing_sync(path: Path, work: Workload, mode: str) -> tuple[float, float]:
    conversation, sessions_app = _eventsourcing_classes()
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    app = sessions_app(env=env)
    per = work["per_session"]
    ids = []
    started = time.perf_counter()
    for _ in range(work["sessions"]):
        agg = conversation()  # event 1 of the session
        if mode == "each":
            app.save(agg)
        for n in range(1, per):
            agg.token_delta(f"msg-{n // 50}", 0, "text", TEXT)
            if mode == "each" or n % BATCH == 0 or n == per - 1:
                app.save(agg)
        ids.append(agg.id)
    persisted = time.perf_counter() - started
    app.close()
    app = sessions_app(env=env)
    started = time.perf_counter()
    loaded = 0
    for agg_id in ids:
        loaded += app.repository.get(agg_id).version
    reloaded = time.perf_counter() - started
    app.close()
    assert loaded == work["sessions"] * per, loaded
    return persisted, reloaded


# --- the floor: raw sqlite3, no library ----------------------------------------------------


async def floor_run(
    path: Path, work: Workload, mode: str, *, decode: bool = False
) -> tuple[float, float]:
    """Not a peer: the least work any SQLite-backed store must do for the same workload.

    Rows are serialized before the clock starts; persisting is `executemany` plus a durable
    commit (WAL, `synchronous=FULL`) per batch of 256 (`many`: per session), whatever `mode`
    is, and reloading fetches each session's rows without decoding them (with `decode`:
    `json.loads` of each, the least a store that hands back decoded events must do). A store
    that has to serialize, commit and decode cannot beat it, so floor / fastest peer is the
    best ratio any store could reach against that peer on this machine.
    """
    return await asyncio.to_thread(_floor_sync, path, work, decode)


def _floor_sync(path: Path, work: Workload, decode: bool) -> tuple[float, float]:
    import sqlite3

    sessions = [f"s{n}" for n in range(work["sessions"])]
    payload = json.dumps({"message_id": "msg-0", "index": 0, "channel": "text", "text": TEXT})
    rows = {sid: [(sid, n + 1, payload) for n in range(work["per_session"])] for sid in sessions}
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE events (position INTEGER PRIMARY KEY, session_id TEXT NOT NULL,"
        " seq INTEGER NOT NULL, payload TEXT NOT NULL, UNIQUE (session_id, seq))"
    )
    started = time.perf_counter()
    for sid in sessions:
        for chunk in _chunks(rows[sid], BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO events (session_id, seq, payload) VALUES (?, ?, ?)", chunk
            )
            conn.execute("COMMIT")
    persisted = time.perf_counter() - started
    conn.close()
    conn = sqlite3.connect(path, isolation_level=None)
    started = time.perf_counter()
    loaded = 0
    for sid in sessions:
        query = "SELECT payload FROM events WHERE session_id = ? ORDER BY seq"
        fetched: list[Any] = conn.execute(query, (sid,)).fetchall()
        if decode:
            fetched = [json.loads(payload) for (payload,) in fetched]
        loaded += len(fetched)
    reloaded = time.perf_counter() - started
    conn.close()
    assert loaded == len(sessions) * work["per_session"], loaded
    return persisted, reloaded


# --- the suite ------------------------------------------------------------------------------

Runner = Callable[[Path, Workload, str], Awaitable[tuple[float, float]]]

FLOOR = "sqlite3 floor"
"""Not a peer (see `floor_run`): excluded when the fastest peer is picked."""
DECODED_FLOOR = "floor + json.loads"
"""The floor whose reload decodes each row, as every peer's does."""
WIRE = "bassi wire"
"""bassi reloading wire JSON (`query_wire`) rather than typed events."""
OURS = ("bassi", WIRE, FLOOR, DECODED_FLOOR)
"""The rows that are not peers."""

PEERS: dict[str, tuple[str, Runner]] = {
    "openai-agents": ("OpenAI Agents SDK SQLiteSession", openai_agents_run),
    "google-adk": ("Google ADK DatabaseSessionService (aiosqlite)", google_adk_run),
    "eventsourcing": ("eventsourcing Application on SQLite", eventsourcing_run),
}


SCRIPT = str(Path(__file__).resolve())

RUNNERS: dict[str, Runner] = {
    "bassi": bassi_run,
    WIRE: functools.partial(bassi_run, wire=True),
    FLOOR: floor_run,
    DECODED_FLOOR: functools.partial(floor_run, decode=True),
    **{name: runner for name, (_, runner) in PEERS.items()},
}


def _import_error(name: str) -> str | None:
    module = {
        "openai-agents": "agents",
        "google-adk": "google.adk",
        "eventsourcing": "eventsourcing",
    }
    try:
        __import__(module[name])
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("bassi", *PEERS):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


async def isolated(name: str, path: Path, work: Workload, mode: str) -> tuple[float, float]:
    """Run one store's cell in a fresh interpreter and return (persist s, reload s).

    Each store pays only for its own imports: in one shared process every store ran with the
    others' frameworks loaded (a few hundred thousand long-lived objects), and each garbage
    collection walked all of them, in the middle of whichever store was being timed.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        SCRIPT,
        "--cell",
        name,
        mode,
        json.dumps(work),
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{name} {mode} failed: {err.decode()[-2000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    if "skipped" in result:
        raise NotImplementedError(result["skipped"])
    return float(result["persist_s"]), float(result["reload_s"])


def _cell_main(name: str, mode: str, work: str, path: str) -> None:
    """The child of `isolated`: one cell, its seconds as one JSON line on stdout."""
    try:
        persisted, reloaded = asyncio.run(RUNNERS[name](Path(path), json.loads(work), mode))
    except NotImplementedError as exc:
        print(json.dumps({"skipped": str(exc)}))
        return
    print(json.dumps({"persist_s": persisted, "reload_s": reloaded}))


async def run(quick: bool) -> dict[str, Any]:
    """Every (store, mode, workload) cell: persist and reload events/s, and the ratio to bassi."""
    works = workloads(quick)
    contenders: dict[str, Runner] = {name: RUNNERS[name] for name in OURS}
    missing: dict[str, str] = {}
    for name, (_, runner) in PEERS.items():
        problem = _import_error(name)
        if problem is None:
            contenders[name] = runner
        else:
            missing[name] = problem
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("each", "batch"):
            for work_name in works:
                cell: dict[str, Any] = {}
                for name in contenders:
                    path = Path(tmp) / f"{name}-{mode}-{work_name}.db"
                    work = dict(works[work_name])
                    shrink = SHRINK.get(name, 1) // (4 if quick else 1) or 1
                    if work["sessions"] > 1:
                        work["sessions"] = max(1, work["sessions"] // shrink)
                    else:
                        work["per_session"] = max(1, work["per_session"] // shrink)
                    total = work["sessions"] * work["per_session"]
                    try:
                        persisted, reloaded = await isolated(name, path, work, mode)
                    except NotImplementedError as exc:
                        cell[name] = {"skipped": str(exc)}
                        continue
                    print(
                        f"peers {mode}/{work_name} {name}: persist {persisted:.2f}s,"
                        f" reload {reloaded:.2f}s",
                        file=sys.stderr,
                    )
                    cell[name] = {
                        "events": total,
                        "persist_eps": round(total / persisted),
                        "reload_eps": round(total / reloaded),
                    }
                base = cell["bassi"]
                for row in cell.values():
                    if "persist_eps" in row:
                        row["persist_ratio"] = round(base["persist_eps"] / row["persist_eps"], 2)
                        row["reload_ratio"] = round(base["reload_eps"] / row["reload_eps"], 2)
                results[f"{mode}/{work_name}"] = {"events": cell["bassi"]["events"], "stores": cell}
    summary = {}
    for key, cell in results.items():
        peers = {n: r for n, r in cell["stores"].items() if n not in OURS and "persist_eps" in r}
        if not peers:
            continue
        fastest_persist = max(peers, key=lambda n: peers[n]["persist_eps"])
        fastest_reload = max(peers, key=lambda n: peers[n]["reload_eps"])
        summary[key] = {
            "fastest_peer_persist": fastest_persist,
            "bassi_vs_fastest_persist": peers[fastest_persist]["persist_ratio"],
            "fastest_peer_reload": fastest_reload,
            "bassi_vs_fastest_reload": peers[fastest_reload]["reload_ratio"],
        }
        wire = cell["stores"].get(WIRE)
        if wire is not None and "reload_eps" in wire:
            summary[key]["bassi_wire_vs_fastest_reload"] = round(
                wire["reload_eps"] / peers[fastest_reload]["reload_eps"], 2
            )
        decoded = cell["stores"].get(DECODED_FLOOR)
        if decoded is not None and "reload_eps" in decoded:
            summary[key]["decoded_floor_vs_fastest_reload"] = round(
                decoded["reload_eps"] / peers[fastest_reload]["reload_eps"], 2
            )
        floor = cell["stores"].get(FLOOR)
        if floor is not None:
            # The best any store could do against the same peer: floor / fastest peer.
            summary[key]["floor_vs_fastest_persist"] = round(
                floor["persist_eps"] / peers[fastest_persist]["persist_eps"], 2
            )
            summary[key]["floor_vs_fastest_reload"] = round(
                floor["reload_eps"] / peers[fastest_reload]["reload_eps"], 2
            )
    return {
        "workloads": works,
        "results": results,
        "summary": summary,
        "missing": missing,
        "versions": _versions(),
        "note": (
            "ratio = bassi events/s / peer events/s (above 1: bassi is faster); "
            f"{FLOOR!r} is raw sqlite3 doing the least any store must, {DECODED_FLOOR!r} the"
            f" same decoding each row on reload, {WIRE!r} bassi reloading wire JSON (not peers)"
        ),
    }


def print_table(result: dict[str, Any]) -> None:
    for key, cell in result["results"].items():
        print(f"\npeers {key} ({cell['events']:,} events)")
        print(f"  {'store':18} {'persist/s':>10} {'x bassi':>8} {'reload/s':>10} {'x bassi':>8}")
        for name, row in cell["stores"].items():
            if "skipped" in row:
                print(f"  {name:18} {'(' + row['skipped'] + ')'}")
                continue
            print(
                f"  {name:18} {row['persist_eps']:>10,} {row['persist_ratio']:>8} "
                f"{row['reload_eps']:>10,} {row['reload_ratio']:>8}"
                + ("" if row["events"] == cell["events"] else f"  ({row['events']:,} events)")
            )
    for name, why in result["missing"].items():
        print(f"  {name}: not measured ({why})")
    for key, row in result["summary"].items():
        print(
            f"  {key}: bassi {row['bassi_vs_fastest_persist']}x the fastest peer persisting"
            f" ({row['fastest_peer_persist']}; floor {row.get('floor_vs_fastest_persist')}x),"
            f" {row['bassi_vs_fastest_reload']}x reloading typed events,"
            f" {row.get('bassi_wire_vs_fastest_reload')}x wire JSON"
            f" ({row['fastest_peer_reload']}; floor {row.get('floor_vs_fastest_reload')}x,"
            f" decoded floor {row.get('decoded_floor_vs_fastest_reload')}x)"
        )


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--cell":
        _cell_main(*sys.argv[2:])
    else:
        sys.exit("usage: bench_peers.py --cell NAME MODE WORK_JSON PATH (bench.py runs the suite)")
