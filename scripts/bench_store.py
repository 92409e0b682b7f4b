"""Benchmark bassi's event store against raw sqlite3 on the same machine, in the same run.

    uv run python scripts/bench_store.py [--quick] [--json]

Workloads (the same bytes on both sides; inputs are built before the clock starts):
- append: 100,000 events of ~300 bytes over 10 sessions. Raw: sqlite3, WAL, synchronous=FULL,
  executemany 256 rows per commit, json.dumps per payload. bassi: EventStore, 10 concurrent
  producers (one per session) whose every 256th append is durable (waits for its commit);
  the group-commit writer decides the batches.
- replay: one 10,000-event session, and 1,000 sessions x 20 events read back in one pass.
  Raw: SELECT + json.loads of each payload. bassi: EventStore.query, giving typed events.

Ratios are bassi / raw (higher is better for bassi; 1.0 means as fast as raw sqlite3).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bassi import events as ev  # noqa: E402
from bassi.settings import database_url  # noqa: E402
from bassi.store.eventstore import EventStore  # noqa: E402

TEXT = "lorem ipsum dolor sit amet " * 8  # ~220 bytes of text: ~300-byte payloads


def make_events(sessions: int, per_session: int, prefix: str) -> list[ev.Event]:
    """Token deltas interleaved across sessions, as a busy daemon produces them."""
    out: list[ev.Event] = []
    for n in range(per_session):
        for s in range(sessions):
            out.append(
                ev.TokenDelta(
                    session_id=f"{prefix}{s}",
                    run_id="run",
                    message_id=f"msg-{n // 50}",
                    index=0,
                    channel="text",
                    text=TEXT,
                )
            )
    return out


RAW_SCHEMA = """
CREATE TABLE events (position INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE,
  session_id TEXT NOT NULL, seq INTEGER NOT NULL, run_id TEXT, type TEXT NOT NULL,
  v INTEGER NOT NULL, recorded_at TEXT NOT NULL, payload TEXT NOT NULL,
  UNIQUE(session_id, seq))
"""


def raw_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def raw_append(path: Path, events: list[ev.Event]) -> float:
    conn = raw_connect(path)
    conn.execute(RAW_SCHEMA)
    rows = [
        (
            e.event_id,
            e.session_id,
            e.run_id,
            e.type,
            e.v,
            ev.format_time(e.recorded_at),
            e.payload(),
        )
        for e in events
    ]
    seqs: dict[str, int] = {}
    started = time.perf_counter()
    for start in range(0, len(rows), 256):
        chunk = []
        for position, (eid, sid, rid, typ, v, at, payload) in enumerate(
            rows[start : start + 256], start + 1
        ):
            seqs[sid] = seqs.get(sid, 0) + 1
            chunk.append((position, eid, sid, seqs[sid], rid, typ, v, at, json.dumps(payload)))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", chunk)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


def raw_replay(path: Path, where: str, args: tuple[str, ...]) -> float:
    conn = raw_connect(path)
    started = time.perf_counter()
    rows = conn.execute(
        f"SELECT position, event_id, session_id, seq, run_id, type, v, recorded_at, payload "
        f"FROM events {where} ORDER BY session_id, seq",
        args,
    ).fetchall()
    decoded = [(r[:8], json.loads(r[8])) for r in rows]
    elapsed = time.perf_counter() - started
    conn.close()
    return len(decoded) / elapsed


async def bassi_append(path: Path, events: list[ev.Event]) -> float:
    store = await EventStore.open(database_url(str(path)))
    by_session: dict[str, list[ev.Event]] = {}
    for e in events:
        by_session.setdefault(e.session_id, []).append(e)

    async def produce(items: list[ev.Event]) -> None:
        for n, item in enumerate(items, 1):
            await store.append(item, durable=n % 256 == 0)

    started = time.perf_counter()
    await asyncio.gather(*(produce(items) for items in by_session.values()))
    await store.flush()
    elapsed = time.perf_counter() - started
    await store.close()
    return len(events) / elapsed


async def bassi_replay(path: Path, session_id: str | None) -> float:
    store = await EventStore.open(database_url(str(path)))
    started = time.perf_counter()
    events = await store.query(session_id=session_id) if session_id else await store.query()
    elapsed = time.perf_counter() - started
    await store.close()
    return len(events) / elapsed


def best(values: list[float]) -> float:
    return max(values)


async def run(quick: bool) -> dict[str, object]:
    repeats = 1 if quick else 3
    scale = 10 if quick else 1
    append_events = make_events(10, 10_000 // scale, "a")
    one_session = make_events(1, 10_000 // scale, "one")
    many_sessions = make_events(1_000 // scale, 20, "many")
    raw_eps, bassi_eps, raw_one, bassi_one, raw_many, bassi_many = ([] for _ in range(6))
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            base = Path(tmp) / f"run{r}"
            base.mkdir()
            raw_eps.append(raw_append(base / "raw.db", append_events))
            bassi_eps.append(await bassi_append(base / "bassi.db", append_events))
            raw_append(base / "raw_one.db", one_session)
            await bassi_append(base / "bassi_one.db", one_session)
            raw_append(base / "raw_many.db", many_sessions)
            await bassi_append(base / "bassi_many.db", many_sessions)
            raw_one.append(raw_replay(base / "raw_one.db", "WHERE session_id = ?", ("one0",)))
            bassi_one.append(await bassi_replay(base / "bassi_one.db", "one0"))
            raw_many.append(raw_replay(base / "raw_many.db", "", ()))
            bassi_many.append(await bassi_replay(base / "bassi_many.db", None))
    raw_replay_eps = best(raw_one) + best(raw_many)
    bassi_replay_eps = best(bassi_one) + best(bassi_many)
    return {
        "events": len(append_events),
        "raw_append_eps": round(best(raw_eps)),
        "bassi_append_eps": round(best(bassi_eps)),
        "append_ratio": round(best(bassi_eps) / best(raw_eps), 2),
        "raw_replay_one_eps": round(best(raw_one)),
        "bassi_replay_one_eps": round(best(bassi_one)),
        "raw_replay_many_eps": round(best(raw_many)),
        "bassi_replay_many_eps": round(best(bassi_many)),
        "raw_replay_eps": round(raw_replay_eps / 2),
        "bassi_replay_eps": round(bassi_replay_eps / 2),
        "replay_ratio": round(
            min(best(bassi_one) / best(raw_one), best(bassi_many) / best(raw_many)), 2
        ),
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
        "sqlite": sqlite3.sqlite_version,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the workload, one repeat")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = asyncio.run(run(args.quick))
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'workload':34} {'raw sqlite3':>12} {'bassi':>12} {'ratio':>6}")
    print(
        f"{'append (events/s)':34} {result['raw_append_eps']:>12,} {result['bassi_append_eps']:>12,}"
        f" {result['append_ratio']:>6}"
    )
    print(
        f"{'replay 1 x 10k session (events/s)':34} {result['raw_replay_one_eps']:>12,}"
        f" {result['bassi_replay_one_eps']:>12,}"
        f" {result['bassi_replay_one_eps'] / result['raw_replay_one_eps']:>6.2f}"  # type: ignore[operator]
    )
    print(
        f"{'replay 1000 x 20 (events/s)':34} {result['raw_replay_many_eps']:>12,}"
        f" {result['bassi_replay_many_eps']:>12,}"
        f" {result['bassi_replay_many_eps'] / result['raw_replay_many_eps']:>6.2f}"  # type: ignore[operator]
    )


if __name__ == "__main__":
    main()
