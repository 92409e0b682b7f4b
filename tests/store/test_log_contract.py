"""The event log's contract, run against every backend (SQLite file, SQLite memory, PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from bassi import events as ev
from bassi.errors import (
    ConcurrencyError,
    EventDecodeError,
    IdempotencyError,
    InvalidEventError,
    StoreError,
)
from bassi.session import SessionStatus, replay
from bassi.store.eventstore import EventStore
from bassi.store.sqlite import SqliteEventLog
from tests.store.samples import one_of_each


def prompt(session_id: str, n: int) -> ev.PromptReceived:
    return ev.PromptReceived(session_id=session_id, run_id=f"r{n}", content=f"prompt {n}")


async def test_appends_get_gapless_seq_and_increasing_position(store: EventStore) -> None:
    for n in range(30):
        await store.append(prompt(f"s{n % 3}", n))
    await store.flush()
    everything = await store.query()
    assert [e.position for e in everything] == sorted({e.position for e in everything})
    for sid in ("s0", "s1", "s2"):
        events = await store.query(session_id=sid)
        assert [e.seq for e in events] == list(range(1, 11))
        assert [e.content for e in events] == [
            f"prompt {n}" for n in range(30) if n % 3 == int(sid[1])
        ]  # type: ignore[union-attr]


async def test_durable_append_returns_the_committed_event(store: EventStore) -> None:
    first = await store.append(prompt("s", 1), durable=True)
    second = await store.append(prompt("s", 2), durable=True)
    assert (first.seq, second.seq) == (1, 2)
    assert first.position is not None and second.position is not None
    assert second.position > first.position
    assert await store.query(session_id="s") == [first, second]


async def test_reappending_a_committed_event_id_returns_the_original_and_writes_nothing(
    store: EventStore,
) -> None:
    event = prompt("s", 1)
    original = await store.append(event, durable=True)
    await store.append(prompt("s", 2), durable=True)
    again = await store.append(event, durable=True)
    assert again.seq == original.seq == 1
    assert again.position == original.position
    assert len(await store.query(session_id="s")) == 2
    # and a batch that is entirely a retry is also a no-op
    assert await store.append_many([event], durable=True) == [original]
    assert len(await store.query()) == 2


async def test_a_retry_that_only_partly_matches_fails_loudly(store: EventStore) -> None:
    event = prompt("s", 1)
    await store.append(event, durable=True)
    with pytest.raises(IdempotencyError):
        await store.append_many([event, prompt("s", 2)], durable=True)
    changed = event.model_copy(update={"content": "something else"})
    with pytest.raises(IdempotencyError):
        await store.append(changed, durable=True)
    assert len(await store.query()) == 1


async def test_second_writer_at_a_taken_seq_gets_concurrency_error_and_writes_nothing(
    store: EventStore,
) -> None:
    await store.append(prompt("s", 1), durable=True)
    before = await store.query()
    # A writer that read the session at seq 0 appends a batch: the whole batch is refused.
    batch = [prompt("s", 2), prompt("other", 3), prompt("s", 4)]
    with pytest.raises(ConcurrencyError):
        await store.append_many(batch, durable=True, expected_seq=0)
    assert await store.query() == before
    # The same through a second store on the same database, whose head for "s" is stale.
    if store.log.url.endswith(":memory:"):
        return
    other = await EventStore.open(store.log.url)
    try:
        other.claim("s", 1)
        await store.append(prompt("s", 5), durable=True)  # first writer moves on to seq 2
        with pytest.raises(ConcurrencyError):
            await other.append_many([prompt("s", 6), prompt("s", 7)], durable=True)
        assert [e.seq for e in await store.query(session_id="s")] == [1, 2]
        # the loser stays refused until it has read the session again ...
        with pytest.raises(ConcurrencyError):
            await other.append(prompt("s", 8), durable=True)
        # ... and then appends after what it read
        other.claim("s", await other.log.last_seq("s"))
        again = await other.append(prompt("s", 9), durable=True)
        assert again.seq == 3
    finally:
        await other.close()


async def test_expected_seq_guards_an_append(store: EventStore) -> None:
    await store.append(prompt("s", 1), durable=True)
    committed = await store.append(prompt("s", 2), durable=True, expected_seq=1)
    assert committed.seq == 2
    with pytest.raises(ConcurrencyError, match="expected 1"):
        await store.append(prompt("s", 3), durable=True, expected_seq=1)


async def test_an_event_the_log_cannot_store_fails_alone_and_leaves_the_store_healthy(
    store: EventStore, backend: str
) -> None:
    stats = store.stats()
    bad = [prompt("s", 1).model_copy(update={"content": "half a pair: \ud800"})]
    bad.append(ev.PromptReceived(session_id="s\udfff", run_id="r", content="a bad session id"))
    if backend == "postgresql":  # jsonb holds no NUL; SQLite's text does (below)
        bad.append(prompt("s", 1).model_copy(update={"content": "a NUL: \x00"}))
    for event in bad:
        with pytest.raises(InvalidEventError, match="cannot be stored"):
            await store.append_many([prompt("s", 0), event], durable=True)
    assert await store.query() == []  # nothing of those appends was written
    after = store.stats()
    assert after.healthy and after.failed_batches == stats.failed_batches
    committed = await store.append(prompt("s", 2), durable=True)
    assert committed.seq == 1  # the session is not stuck
    if backend != "postgresql":
        nul = await store.append(
            prompt("s", 3).model_copy(update={"content": "a\x00b"}), durable=True
        )
        assert (await store.query(session_id="s"))[-1] == nul and nul.content == "a\x00b"  # type: ignore[union-attr]


async def test_the_database_itself_refuses_update_and_delete(store: EventStore) -> None:
    await store.append(prompt("s", 1), durable=True)
    for sql in ("UPDATE events SET type = 'x'", "DELETE FROM events"):
        with pytest.raises(StoreError, match="append-only"):
            await store.log.execute_raw(sql)
    assert len(await store.query()) == 1


async def test_every_event_type_round_trips_through_wire_json_and_the_database(
    store: EventStore,
) -> None:
    originals = one_of_each("s")
    for event in originals:
        wire = json.dumps(event.to_wire())
        assert ev.decode_json(wire) == event
    committed = await store.append_many(originals, durable=True)
    stored = await store.query(session_id="s")
    assert stored == committed
    for before, after in zip(originals, stored, strict=True):
        assert after.model_copy(update={"seq": 0, "position": None}) == before
        assert ev.decode_json(json.dumps(after.to_wire())) == after


async def test_wire_reads_give_each_events_wire_json_without_decoding_it(
    store: EventStore,
) -> None:
    on_the_second = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # pydantic drops ".000000"
    extra = [
        ev.TokenDelta(
            session_id="s",
            run_id=None,
            message_id="m9",
            index=0,
            channel="text",
            text='tab\t "quote" \\ ünï ✓ \x01',
            recorded_at=on_the_second,
        ),
    ]
    await store.append_many(one_of_each("s") + extra, durable=True)
    await store.append_many(one_of_each("t"), durable=True)
    queries = [
        {"session_id": "s"},
        {"session_id": "s", "run_id": "run-2"},
        {"session_id": "s", "types": ["token_delta", "message_completed"]},
        {"session_id": "s", "after": 5, "limit": 3},
        {"after": 10, "limit": 50},
        {},
    ]
    for query in queries:
        events = await store.query(**query)  # type: ignore[arg-type]
        rows = await store.query_wire(**query)  # type: ignore[arg-type]
        assert events, query
        assert [(pos, seq) for pos, seq, _ in rows] == [(e.position, e.seq) for e in events]
        assert [json.loads(text) for _, _, text in rows] == [e.to_wire() for e in events]
        if isinstance(store.log, SqliteEventLog):  # the default: the very text pydantic writes
            assert [text for _, _, text in rows] == [e.model_dump_json() for e in events]
    [(_, _, text)] = await store.query_wire(session_id="s", after=len(one_of_each("s")))
    assert '"recorded_at":"2026-01-02T03:04:05Z"' in text
    assert ev.decode_json(text) == (await store.query(session_id="s"))[-1]


async def test_a_wire_read_upcasts_an_older_schema_version_like_a_typed_read(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
        data["content"] = data.pop("text")
        return data

    monkeypatch.setitem(ev.UPCASTERS, ("prompt_received", 0), v0_to_v1)
    await store.append(prompt("s", 1), durable=True)
    async with store.log.writer.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO events (position, event_id, session_id, seq, run_id, type, v, recorded_at, payload) "
                "VALUES (99, 'x-1', 's', 2, 'r', 'prompt_received', 0, "
                "'2026-01-01T00:00:00.000000Z', '{\"text\": \"old prompt\"}')"
            )
        )
    [old] = await store.query(session_id="s", after=1)
    assert isinstance(old, ev.PromptReceived) and old.content == "old prompt" and old.v == 1
    [(_, _, wire)] = await store.query_wire(session_id="s", after=1)
    assert json.loads(wire) == old.to_wire()


async def test_an_unknown_type_in_the_database_fails_loudly_and_names_it(store: EventStore) -> None:
    await store.append(prompt("s", 1), durable=True)
    async with store.log.writer.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO events (position, event_id, session_id, seq, run_id, type, v, recorded_at, payload) "
                "VALUES (99, 'x-1', 's', 2, NULL, 'mystery_event', 1, '2026-01-01T00:00:00.000000Z', '{}')"
            )
        )
    with pytest.raises(EventDecodeError, match="mystery_event"):
        await store.query(session_id="s")
    with pytest.raises(EventDecodeError, match="mystery_event"):
        await store.query_wire(session_id="s")
    with pytest.raises(EventDecodeError, match="mystery_event"):
        ev.decode({"type": "mystery_event", "session_id": "s"})


async def test_query_filters_by_run_type_after_and_limit(store: EventStore) -> None:
    await store.append_many(one_of_each("s"), durable=True)
    await store.append_many(one_of_each("t"), durable=True)
    run2 = await store.query(session_id="s", run_id="run-2")
    assert [e.type for e in run2] == ["prompt_received", "run_started", "run_cancelled"]
    deltas = await store.query(session_id="s", types=["token_delta"])
    assert len(deltas) == 2 and all(e.type == "token_delta" for e in deltas)
    page = await store.query(session_id="s", after=5, limit=3)
    assert [e.seq for e in page] == [6, 7, 8]
    assert all(e.session_id == "t" for e in await store.query(after=len(one_of_each("s"))))
    with pytest.raises(EventDecodeError, match="nonsense"):
        await store.query(types=["nonsense"])


async def test_sessions_read_model_is_written_with_the_events(store: EventStore) -> None:
    events = one_of_each("s")
    await store.append_many(events[:3], durable=True)  # started, prompt, run started
    [row] = await store.sessions("s")
    assert (row.status, row.title, row.model, row.last_seq, row.runs) == (
        "running",
        events[0].title,  # type: ignore[union-attr]
        "scripted",
        3,
        1,
    )
    await store.append_many(events[3:], durable=True)
    [row] = await store.sessions("s")
    state = replay(await store.query(session_id="s"))
    assert row.status == state.status.value == SessionStatus.ENDED
    assert row.last_seq == state.last_seq == len(events)
    assert row.input_tokens == state.usage.input_tokens == 24
    assert row.model == state.model == "anthropic:claude-x"
    rebuilt_count = await store.log.rebuild_sessions()
    assert rebuilt_count == 1
    assert await store.sessions("s") == [row]


async def test_concurrent_appenders_keep_every_session_gapless(store: EventStore) -> None:
    async def writer(sid: str) -> None:
        for n in range(50):
            await store.append(prompt(sid, n), durable=n % 10 == 0)

    await asyncio.gather(*(writer(f"s{i}") for i in range(8)))
    await store.flush()
    for i in range(8):
        seqs = [e.seq for e in await store.query(session_id=f"s{i}")]
        assert seqs == list(range(1, 51))
    positions = [e.position for e in await store.query()]
    assert positions == list(range(1, 401))


async def test_only_one_store_at_a_time_owns_the_database(store: EventStore) -> None:
    if store.log.url.endswith(":memory:"):
        pytest.skip("an in-memory database has one store by construction")
    assert await store.log.claim_ownership()
    assert await store.log.claim_ownership(), "claiming again is a no-op for the owner"
    other = await EventStore.open(store.log.url)
    try:
        assert not await other.log.claim_ownership()
        await store.log.release_ownership()
        assert await other.log.claim_ownership()
    finally:
        await other.close()


async def test_a_sessions_run_lock_has_one_holder_until_released_or_closed(
    store: EventStore,
) -> None:
    if store.log.url.endswith(":memory:"):
        pytest.skip("an in-memory database has one store by construction")
    assert await store.log.lock_run("s")
    assert await store.log.lock_run("s"), "taking it again is a no-op for the holder"
    other = await EventStore.open(store.log.url)
    try:
        assert not await other.log.lock_run("s")
        assert await other.log.lock_run("t"), "each session has its own lock"
        await store.log.unlock_run("s")
        assert await other.log.lock_run("s")
        await other.close()  # closing releases everything it held
        assert await store.log.lock_run("s") and await store.log.lock_run("t")
    finally:
        await other.close()


async def test_postgresql_locks_lost_with_their_connection_are_taken_again(pg_url: str) -> None:
    import asyncpg

    from tests.store.conftest import PG_URL

    database = pg_url.rsplit("/", 1)[1]
    mine, other = await EventStore.open(pg_url), await EventStore.open(pg_url)
    mine.log.lock_check_seconds = 0.1  # type: ignore[attr-defined]
    admin = await asyncpg.connect(PG_URL)
    try:
        assert await mine.log.claim_ownership() and await mine.log.lock_run("s")
        holders = (
            "SELECT pid FROM pg_locks JOIN pg_database d ON d.oid = pg_locks.database"
            " WHERE locktype = 'advisory' AND granted AND d.datname = $1"
        )
        before = {row["pid"] for row in await admin.fetch(holders, database)}
        assert len(before) == 2  # the owner's connection and the run locks'
        # A server restart or a network blip: both connections holding the locks are gone.
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", before)
        after: set[int] = set()
        for _ in range(400):  # the keeper looks every 0.1 s; a loaded machine may be slower
            after = {row["pid"] for row in await admin.fetch(holders, database)}
            if len(after) == 2 and not after & before:  # held again, by new connections
                break
            await asyncio.sleep(0.05)
        assert len(after) == 2 and not after & before, f"not taken again: {before} -> {after}"
        assert not await other.log.lock_run("s"), "a live run's lock was taken by another"
        assert not await other.log.claim_ownership()
        assert await mine.log.lock_run("s")
        await mine.log.unlock_run("s")
        assert await other.log.lock_run("s")
    finally:
        await admin.close()
        await other.close()
        await mine.close()


async def test_postgresql_a_run_lock_still_held_by_a_dying_backend_is_waited_for(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Right after a lock connection is lost, the server may not have dropped its backend yet,
    and that backend still holds the run lock. The keeper must keep trying, not give the run
    up as taken by another process (which would let that process recover a live run)."""
    import asyncpg

    from bassi.store.log import _PG_RUN_CLASS, _run_key
    from tests.store.conftest import PG_URL

    database = pg_url.rsplit("/", 1)[1]
    mine, other = await EventStore.open(pg_url), await EventStore.open(pg_url)
    log: Any = mine.log
    admin = await asyncpg.connect(PG_URL)
    try:
        assert await log.lock_run("s")
        keeper = log._lock_keeper  # paused while the test sets the scene
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        holders = (
            "SELECT pid FROM pg_locks JOIN pg_database d ON d.oid = pg_locks.database"
            " WHERE locktype = 'advisory' AND granted AND d.datname = $1"
        )
        (lost,) = {row["pid"] for row in await admin.fetch(holders, database)}
        # The backend that is "still dying": a connection of this log holds the lock once the
        # real one is gone, and lets go only when the test says so.
        dying = await log._lock_connection()
        await admin.execute("SELECT pg_terminate_backend($1)", lost)
        for _ in range(200):
            if not await admin.fetch(holders, database):
                break
            await asyncio.sleep(0.05)
        key = {"c": _PG_RUN_CLASS, "k": _run_key("s")}
        assert (await dying.execute(text("SELECT pg_try_advisory_lock(:c, :k)"), key)).scalar()
        await dying.commit()

        log.lock_check_seconds = 0.05
        with caplog.at_level("WARNING", logger="bassi.store.log"):
            log._start_lock_keeper()
            for _ in range(200):  # until the keeper has found the lock taken
                if "s" in log._pending_runs:
                    break
                await asyncio.sleep(0.05)
            assert "s" in log._pending_runs
            await asyncio.sleep(0.3)  # a few more rounds against the dying backend's lock
        assert "lost the run lock" not in caplog.text
        assert "s" in log._run_locks, "the run was given up while its lock was still ours"
        assert not await other.log.lock_run("s")

        await dying.invalidate()  # its backend is gone at last: the keeper takes the lock
        await dying.close()
        for _ in range(200):
            if not log._pending_runs:
                break
            await asyncio.sleep(0.05)
        assert not log._pending_runs, "the lock was not taken again"
        assert not await other.log.lock_run("s"), "a live run's lock was taken by another"
        await log.unlock_run("s")
        assert await other.log.lock_run("s")
    finally:
        await admin.close()
        await other.close()
        await mine.close()
