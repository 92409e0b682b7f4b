"""Live subscribers: catch-up, drop and block modes, hand-over, failures, bounded memory."""

from __future__ import annotations

import asyncio

import pytest

from bassi import events as ev
from bassi.errors import ConcurrencyError, InvalidEventError, PersistenceError, StoreError
from bassi.store.eventstore import EventStore
from bassi.store.rows import Group
from bassi.store.sqlite import SqliteEventLog
from bassi.store.subscription import SubscriberDisconnected


def delta(session_id: str, n: int) -> ev.TokenDelta:
    return ev.TokenDelta(
        session_id=session_id, message_id="m", index=0, channel="text", text=f"t{n}"
    )


async def take(sub: object, count: int, *, delay: float = 0.0) -> list[ev.Event]:
    got: list[ev.Event] = []
    async for event in sub:  # type: ignore[attr-defined]
        got.append(event)
        if delay:
            await asyncio.sleep(delay)
        if len(got) == count:
            break
    return got


async def test_a_slow_drop_mode_subscriber_gets_everything_once_in_order(store: EventStore) -> None:
    total = 600
    sub = store.subscribe(session_id="s", after=0, mode="drop", maxsize=16)
    consumer = asyncio.create_task(take(sub, total, delay=0.002))

    async def produce() -> None:  # 10x faster than the consumer
        for n in range(total):
            await store.append(delta("s", n))
            if n % 5 == 0:
                await asyncio.sleep(0.001)

    await produce()
    await store.flush()
    got = await asyncio.wait_for(consumer, 60)
    assert [e.seq for e in got] == list(range(1, total + 1))
    assert [e.text for e in got] == [f"t{n}" for n in range(total)]  # type: ignore[union-attr]
    stats = sub.stats()
    assert stats.drops > 0, "the subscriber should have fallen behind and caught up"
    assert stats.catch_ups > 0
    sub.close()


async def test_a_drop_mode_subscriber_never_slows_the_producer(store: EventStore) -> None:
    sub = store.subscribe(mode="drop", maxsize=4)  # never read
    for n in range(200):
        await store.append(delta("s", n))
    await asyncio.wait_for(store.flush(), 10)
    assert sub.stats().drops == 196
    assert sub.stats().lag == 200
    got = await asyncio.wait_for(take(sub, 200), 10)
    assert [e.seq for e in got] == list(range(1, 201))


async def test_subscribe_after_n_racing_with_appends_yields_each_event_once_in_order(
    store: EventStore,
) -> None:
    for n in range(50):
        await store.append(delta("s", n))
    await store.flush()
    writer_done = asyncio.Event()

    async def keep_appending() -> None:
        for n in range(50, 300):
            await store.append(delta("s", n))
            if n % 7 == 0:
                await asyncio.sleep(0)
        await store.flush()
        writer_done.set()

    writer = asyncio.create_task(keep_appending())
    subs = [store.subscribe(session_id="s", after=after, maxsize=8) for after in (0, 20, 49, 50)]
    results = await asyncio.gather(
        *(take(s, 300 - after) for s, after in zip(subs, (0, 20, 49, 50), strict=True))
    )
    await writer
    for after, got in zip((0, 20, 49, 50), results, strict=True):
        assert [e.seq for e in got] == list(range(after + 1, 301))
    # global subscription by position, too
    everything = await store.query()
    glob = store.subscribe(after=everything[99].position)
    got = await take(glob, 200)
    assert [e.position for e in got] == [e.position for e in everything[100:]]


async def test_type_filtered_subscription_catches_up_and_goes_live(store: EventStore) -> None:
    for n in range(30):
        await store.append(delta("s", n))
    await store.append(ev.PromptReceived(session_id="s", content="one"))
    await store.flush()
    sub = store.subscribe(session_id="s", after=0, types=["prompt_received"])
    [first] = await asyncio.wait_for(take(sub, 1), 5)
    assert first.seq == 31
    for n in range(30):
        await store.append(delta("s", n))
    second = await store.append(ev.PromptReceived(session_id="s", content="two"), durable=True)
    [live] = await asyncio.wait_for(take(sub, 1), 5)
    assert live == second


async def test_block_mode_subscriber_holds_the_writer_then_is_disconnected(
    store: EventStore,
) -> None:
    sub = store.subscribe(mode="block", maxsize=2, block_timeout=0.2)
    for n in range(5):
        await store.append(delta("s", n))
    await asyncio.wait_for(store.flush(), 5)
    # two events fitted; the third waited 0.2 s and the subscriber was cut off, with an error
    got: list[ev.Event] = []
    with pytest.raises(SubscriberDisconnected):
        async for event in sub:
            got.append(event)
    assert [e.seq for e in got] == [1, 2]
    assert len(await store.query(session_id="s")) == 5  # the writer lost nothing


class FlakyLog(SqliteEventLog):
    """The real log, with commits made to fail while `failing` is set."""

    failing = False
    error: Exception = OSError("disk on fire")

    async def commit(self, groups: list[Group], heads: dict[str, int]) -> None:  # type: ignore[override]
        if self.failing:
            raise self.error
        await super().commit(groups, heads)


async def flaky_store(
    url: str, *, retry_for: float, error: Exception | None = None
) -> tuple[FlakyLog, EventStore]:
    """A started store on a real SQLite file whose commits fail (with `error`) while
    `log.failing` is set."""
    log = FlakyLog(url)
    if error is not None:
        log.error = error
    await log.ensure_schema()
    store = EventStore(log, retry_for=retry_for)
    await store.start()
    return log, store


async def test_failed_commits_publish_nothing_raise_and_recover(file_url: str) -> None:

    log, store = await flaky_store(file_url, retry_for=0.3)
    try:
        sub = store.subscribe(after=0)
        await store.append(delta("s", 0), durable=True)
        log.failing = True
        await store.append(delta("s", 1))  # not durable: lost with the batch, never published
        with pytest.raises(PersistenceError, match="disk on fire"):
            await store.append(delta("s", 2), durable=True)
        assert not store.stats().healthy
        log.failing = False
        committed = await store.append(delta("s", 3), durable=True)
        assert committed.seq == 2, "the failed batch must not leave a gap"
        assert store.stats().healthy
        got = await asyncio.wait_for(take(sub, 2), 5)
        assert [e.text for e in got] == ["t0", "t3"]  # type: ignore[union-attr]
        assert [e.text for e in await store.query()] == ["t0", "t3"]  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_after_a_failed_commit_a_foreign_append_is_still_a_concurrency_error(
    file_url: str,
) -> None:
    log, mine = await flaky_store(file_url, retry_for=0.1)
    other = await EventStore.open(file_url)
    try:
        await mine.append(delta("s", 0), durable=True)  # this process has read up to seq 1
        other.claim("s", await other.log.last_seq("s"))
        log.failing = True
        with pytest.raises(PersistenceError):
            await mine.append(delta("s", 1), durable=True)
        log.failing = False
        await other.append(delta("s", 2), durable=True)  # another process appends seq 2
        with pytest.raises(ConcurrencyError):
            await mine.append(delta("s", 3), durable=True)  # on top of a log it has not read
        assert [e.text for e in await other.query(session_id="s")] == ["t0", "t2"]  # type: ignore[union-attr]
    finally:
        await mine.close()
        await other.close()


async def test_an_event_the_database_refuses_fails_its_own_append_not_its_batch(
    file_url: str,
) -> None:
    store = await EventStore.open(file_url)
    try:
        bad = delta("b", 0).model_copy(update={"text": "half a pair: \ud800"})
        results = await asyncio.gather(
            store.append(delta("a", 0)),  # not durable
            store.append(bad, durable=True),
            store.append(delta("c", 0), durable=True),
            return_exceptions=True,
        )  # queued before the writer wakes: one batch
        assert isinstance(results[1], InvalidEventError) and "surrogate" in str(results[1])
        assert isinstance(results[2], ev.TokenDelta) and results[2].seq == 1
        await store.flush()
        assert [e.session_id for e in await store.query()] == ["a", "c"]
        assert store.lost("a") == 0 and store.lost("c") == 0
        assert (await store.append(delta("b", 1), durable=True)).seq == 1  # b is not stuck
        assert store.stats().healthy
    finally:
        await store.close()


async def test_a_failing_commit_listener_does_not_stop_the_writer(file_url: str) -> None:
    store = await EventStore.open(file_url)
    calls: list[int] = []

    def broken(count: int, seconds: float) -> None:
        calls.append(count)
        raise RuntimeError("a bug in a metric")

    store.commit_listeners.append(broken)
    try:
        first = await asyncio.wait_for(store.append(delta("s", 0), durable=True), 5)
        second = await asyncio.wait_for(store.append(delta("s", 1), durable=True), 5)
        assert (first.seq, second.seq) == (1, 2) and calls == [1, 1]
    finally:
        await store.close()


async def test_a_lost_postgresql_connection_is_retried_not_taken_for_a_bug(
    file_url: str,
) -> None:
    # PostgreSQL inserts go straight to asyncpg, whose errors SQLAlchemy never wraps.
    import asyncpg

    error = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")
    log, store = await flaky_store(file_url, retry_for=10, error=error)
    try:
        log.failing = True
        pending = asyncio.create_task(store.append(delta("s", 0), durable=True))
        await asyncio.sleep(0.3)
        assert not pending.done() and not store.stats().healthy  # retrying, not failed
        log.failing = False
        committed = await asyncio.wait_for(pending, 5)
        assert committed.seq == 1 and store.stats().healthy
    finally:
        await store.close()


async def test_a_value_postgresql_refuses_fails_at_once_without_stalling_the_writer(
    file_url: str,
) -> None:
    import asyncpg

    error = asyncpg.exceptions.UntranslatableCharacterError("unsupported Unicode escape")
    log, store = await flaky_store(file_url, retry_for=10, error=error)
    try:
        log.failing = True
        with pytest.raises(PersistenceError, match="Unicode"):
            await asyncio.wait_for(store.append(delta("s", 0), durable=True), 2)
    finally:
        log.failing = False
        await store.close()


async def test_memory_stays_bounded_by_max_history(file_url: str) -> None:
    store = await EventStore.open(file_url, max_history=10_000)
    try:
        batch: list[ev.Event] = []
        for n in range(200_000):
            batch.append(delta(f"s{n % 10}", n))
            if len(batch) == 2_000:
                await store.append_many(batch)
                batch = []
                assert store.stats().cache_size <= 10_000
        await store.flush()
        stats = store.stats()
        assert stats.committed == 200_000
        assert stats.cache_size == 10_000
        assert len(store.recent()) == 10_000
        assert store.recent()[-1].position == 200_000
    finally:
        await store.close()


async def test_sqlite_pragmas_are_read_back(file_url: str) -> None:
    store = await EventStore.open(file_url)
    try:
        pragmas = await store.log.pragmas()
        assert pragmas == {
            "journal_mode": "wal",
            "synchronous": 2,
            "busy_timeout": 30_000,
            "foreign_keys": 1,
        }
    finally:
        await store.close()
    normal = await EventStore.open(file_url, synchronous="NORMAL")
    try:
        assert (await normal.log.pragmas())["synchronous"] == 1
    finally:
        await normal.close()


async def test_close_flushes_what_is_queued(file_url: str) -> None:
    store = await EventStore.open(file_url)
    for n in range(500):
        await store.append(delta("s", n))
    await store.close()
    reopened = await EventStore.open(file_url)
    try:
        assert len(await reopened.query(session_id="s")) == 500
    finally:
        await reopened.close()


async def test_batches_fit_sqlites_bound_parameter_limit(file_url: str) -> None:
    # Builds before SQLite 3.32 allow 999 values per statement; one event binds 9.
    import sqlite3

    store = await EventStore.open(file_url)
    log = store.log
    try:
        limit = sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER
        await log._on_writer(lambda: log._writer_conn().setlimit(limit, 999))  # type: ignore[attr-defined]
        committed = await store.append_many([delta("s", n) for n in range(300)], durable=True)
        assert [e.seq for e in committed] == list(range(1, 301))
    finally:
        await store.close()


async def test_a_transaction_left_open_on_the_writer_does_not_wedge_it(file_url: str) -> None:
    store = await EventStore.open(file_url)
    log = store.log
    try:
        await log._on_writer(lambda: log._writer_conn().execute("BEGIN"))  # type: ignore[attr-defined]
        committed = await store.append(delta("s", 0), durable=True)
        assert committed.seq == 1 and store.stats().healthy
    finally:
        await store.close()


async def test_close_refuses_new_appends_and_never_fails_one_it_commits(file_url: str) -> None:
    import time

    class SlowLog(SqliteEventLog):
        def _commit(self, *args: object) -> None:  # type: ignore[override]
            time.sleep(0.3)  # a slow disk: the commit is still running when close() begins
            super()._commit(*args)  # type: ignore[arg-type]

    log = SlowLog(file_url)
    await log.ensure_schema()
    store = EventStore(log)
    await store.start()
    first = asyncio.create_task(store.append(delta("s", 0), durable=True))
    await asyncio.sleep(0.05)
    closing = asyncio.create_task(store.close())
    await asyncio.sleep(0)
    with pytest.raises(StoreError, match="closed"):
        await store.append(delta("s", 1), durable=True)
    assert (await first).seq == 1
    await closing
    reopened = await EventStore.open(file_url)
    try:
        assert [e.text for e in await reopened.query(session_id="s")] == ["t0"]  # type: ignore[union-attr]
    finally:
        await reopened.close()
