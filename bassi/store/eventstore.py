"""The in-process event store: append, group-commit writer, live subscribers, catch-up.

Durability contract (DESIGN.md section 3):
1. `append` hands events to the persistence writer; when its queue is full, `append` waits.
2. The writer commits everything queued in one transaction, then publishes to subscribers in
   order. No subscriber ever sees an event that is not committed.
3. `append(..., durable=True)` and `flush()` return only after the commit.
4. Database failures are retried with backoff; past the limit the waiting appends raise
   `PersistenceError` and the store reports unhealthy until a commit succeeds again.
5. Re-appending a committed `event_id` returns the committed event and writes nothing; a
   second writer of the same session gets `ConcurrencyError`, with none of its batch written.
6-7. Subscribers: see `bassi.store.subscription`.
8. The in-memory cache keeps at most `max_history` recent events.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sqlite3
import sys
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from bassi import events as ev
from bassi.errors import ConcurrencyError, InvalidEventError, PersistenceError, StoreError
from bassi.store import open_log
from bassi.store.readmodel import SessionSummary
from bassi.store.rows import EventLog, Group, WireRow
from bassi.store.subscription import Overflow, SubscriberStats, Subscription

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    group: Group
    future: asyncio.Future[list[ev.Event]] | None
    """None for a non-durable append: nobody waits, a failure is logged and counted."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counters of the store, for `/api/health`, `/metrics` and tests."""

    appended: int
    committed: int
    batches: int
    failed_batches: int
    queued: int
    cache_size: int
    healthy: bool
    last_error: str | None
    last_commit_ms: float
    commit_ms_total: float
    subscribers: list[SubscriberStats] = field(default_factory=list)

    @property
    def lag(self) -> int:
        """Events appended but not yet committed."""
        return self.queued


CommitListener = Any  # Callable[[int, float], None]: (batch size, commit seconds)


class EventStore:
    """Appends events durably and streams them to subscribers; one per process and database."""

    def __init__(
        self,
        log: EventLog,
        *,
        max_history: int = 10_000,
        queue_size: int = 10_000,
        max_batch: int = 2_000,
        retry_for: float = 10.0,
    ) -> None:
        self.log = log
        self.max_history = max_history
        self.max_batch = max_batch
        self.retry_for = retry_for
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_size)
        self._heads: dict[str, int] = {}
        self._lost: dict[str, int] = {}  # last seq this process committed or claimed, per session
        self._published_seq: dict[str, int] = {}
        self._published_position = 0
        self._cache: deque[ev.Event] = deque(maxlen=max_history)
        self._subscribers: list[Subscription] = []
        self._names = itertools.count(1)
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._appended = 0
        self._queued = 0
        self._committed = 0
        self._batches = 0
        self._failed_batches = 0
        self._healthy = True
        self._last_error: str | None = None
        self._last_commit_ms = 0.0
        self._commit_ms_total = 0.0
        self.commit_listeners: list[CommitListener] = []

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        synchronous: str = "FULL",
        upgrade: bool = True,
        **options: Any,
    ) -> Self:
        """Open the database at `url` (an async SQLAlchemy URL), migrate it, start the writer."""
        event_log = open_log(url, synchronous=synchronous)
        try:
            if upgrade:
                await event_log.ensure_schema()
        except Exception:
            await event_log.close()
            raise
        store = cls(event_log, **options)
        await store.start()
        return store

    async def start(self) -> None:
        """Start the writer task and learn the log's global head."""
        self._published_position = await self.log.last_position()
        self._writer = asyncio.create_task(self._write_loop(), name="bassi-event-writer")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- appending -------------------------------------------------------------------------

    async def append(
        self, event: ev.Event, *, durable: bool = False, expected_seq: int | None = None
    ) -> ev.Event:
        """Queue one event; with `durable=True` wait for its commit and return it with seq/position.

        Without `durable` the event is returned as given (seq 0): its seq is assigned when the
        writer commits it. `expected_seq` makes the append conditional on the session's head.
        """
        committed = await self.append_many([event], durable=durable, expected_seq=expected_seq)
        return committed[0]

    async def append_many(
        self,
        events: Sequence[ev.Event],
        *,
        durable: bool = False,
        expected_seq: int | None = None,
    ) -> list[ev.Event]:
        """Queue events that commit together or not at all (see `append`)."""
        if self._closed:
            raise StoreError("the event store is closed")
        if self._writer is None:
            raise StoreError("the event store was not started")
        if self._writer.done():
            raise StoreError("the event store's writer has stopped")
        future = asyncio.get_running_loop().create_future() if durable else None
        pending = _Pending(Group(list(events), expected_seq), future)
        if self._queue.full():
            await self._queue.put(pending)  # block mode: wait while the writer is behind
        else:
            self._queue.put_nowait(pending)
        self._appended += len(events)
        self._queued += len(events)
        if future is None:
            return list(events)
        return await asyncio.shield(future)

    async def flush(self) -> None:
        """Return once everything appended before this call is committed (or failed)."""
        if self._writer is None or self._closed:
            return
        await self._drain()

    async def _drain(self) -> None:
        """Wait until the writer has finished everything queued so far."""
        if self._writer is None or self._writer.done():
            return
        future: asyncio.Future[list[ev.Event]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(Group([]), future))
        with contextlib.suppress(StoreError):
            await future

    def head(self, session_id: str) -> int | None:
        """The session's last seq as this process knows it: what it committed or claimed."""
        return self._heads.get(session_id)

    def claim(self, session_id: str, last_seq: int) -> None:
        """Record that this process has read the session up to `last_seq`.

        Its next append then fails with `ConcurrencyError` if anyone else appended since.
        """
        self._heads[session_id] = last_seq

    # --- the writer ------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            size = len(first.group.events)
            while size < self.max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                size += len(item.group.events)
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                for item in batch:
                    _settle(item, error=StoreError("the event store closed"))
                raise
            finally:
                self._queued -= size  # lag counts the batch until its commit is over
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[_Pending]) -> None:
        groups = [item.group for item in batch if item.group.events]
        delay, deadline = 0.05, time.monotonic() + self.retry_for
        while groups:
            for group in groups:
                group.committed, group.error = [], None
            started = time.perf_counter()
            try:
                await self.log.commit(groups, self._heads)
                break
            except (ConcurrencyError, InvalidEventError) as exc:
                # A foreign writer raced us past the lock, or an event holds a value the log
                # cannot store: the database is fine, and only the groups at fault fail.
                if len(groups) > 1:
                    await self._commit_alone(groups)
                else:
                    groups[0].error = exc
                break
            except Exception as exc:
                self._healthy = False
                self._last_error = f"{type(exc).__name__}: {exc}"
                if not _is_outage(exc):  # a bug or a refused value, not an outage
                    log.exception("commit failed")
                    if len(groups) > 1:  # one append's bad event must not fail everyone's
                        await self._commit_alone(groups)
                        break
                    self._fail(batch, exc)
                    return
                if time.monotonic() + delay > deadline:
                    self._fail(batch, exc)
                    return
                log.warning("commit failed, retrying in %.2fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        elapsed = 0.0
        refused = any(
            g.error and not isinstance(g.error, ConcurrencyError | InvalidEventError)
            for g in groups
        )
        # A batch of flush markers alone proves nothing about the database; nor does one
        # whose groups it refused.
        if groups and not refused:
            elapsed = time.perf_counter() - started
            self._healthy, self._last_error = True, None
            self._batches += 1
            self._last_commit_ms = elapsed * 1000
            self._commit_ms_total += elapsed * 1000
        committed: list[ev.Event] = []
        for item in batch:
            group = item.group
            if group.error is not None:
                # The head stays: the session's log is where this process last saw it, and a
                # foreign append since must still be a ConcurrencyError.
                self._lose(item, group.error)
                _settle(item, error=group.error)
                continue
            fresh = [e for e in group.committed if (e.position or 0) > self._published_position]
            for event in fresh:
                self._heads[event.session_id] = event.seq
            committed.extend(fresh)
            _settle(item, result=group.committed)
        self._committed += len(committed)
        for listener in self.commit_listeners:
            try:
                listener(len(committed), elapsed)
            except Exception:  # a metric's bug must not stop the writer (and every append)
                log.exception("commit listener %r failed", listener)
        await self._publish(committed)

    async def _commit_alone(self, groups: list[Group]) -> None:
        """Commit each group in a transaction of its own, after the batch failed as a whole for
        a reason other than an outage (a value the log cannot store, a foreign writer): only
        the groups at fault fail, not every session that shared the batch."""
        for group in groups:
            group.committed, group.error = [], None
            try:
                await self.log.commit([group], self._heads)
            except (ConcurrencyError, InvalidEventError) as exc:
                group.error = exc
            except Exception as exc:
                self._last_error = f"{type(exc).__name__}: {exc}"
                group.error = PersistenceError(f"could not commit events: {exc}")
            else:
                for event in group.committed:  # the next group of the session follows these
                    self._heads[event.session_id] = event.seq

    def _fail(self, batch: list[_Pending], exc: Exception) -> None:
        self._failed_batches += 1
        error = PersistenceError(f"could not commit events: {exc}")
        for item in batch:
            self._lose(item, error)
            _settle(item, error=error)

    def _lose(self, item: _Pending, error: Exception) -> None:
        """Count a failed non-durable append's events per session, so producers learn of it."""
        if item.future is not None or not item.group.events:
            return
        log.warning("%d non-durable events were not committed: %s", len(item.group.events), error)
        for event in item.group.events:
            self._lost[event.session_id] = self._lost.get(event.session_id, 0) + 1

    def lost(self, session_id: str) -> int:
        """How many non-durable events of a session failed to commit (and are not in the log)."""
        return self._lost.get(session_id, 0)

    async def _publish(self, committed: list[ev.Event]) -> None:
        committed.sort(key=lambda e: e.position or 0)
        for event in committed:
            self._cache.append(event)
            self._published_seq[event.session_id] = event.seq
            self._published_position = event.position or self._published_position
            for sub in tuple(self._subscribers):
                if not sub.wants(event):
                    continue
                if sub.mode is Overflow.DROP:
                    sub.offer(event)
                else:
                    await sub.put(event)

    # --- reading ---------------------------------------------------------------------------

    async def query(
        self,
        *,
        session_id: str | None = None,
        run_id: str | None = None,
        types: Iterable[str] | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[ev.Event]:
        """Committed events from the log; `after` is a seq with `session_id`, else a position."""
        return await self.log.read(
            session_id=session_id, run_id=run_id, types=types, after=after, limit=limit
        )

    async def query_wire(
        self,
        *,
        session_id: str | None = None,
        run_id: str | None = None,
        types: Iterable[str] | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[WireRow]:
        """What `query` returns, as (position, seq, wire JSON) for a consumer that only sends
        events on (a stream catching up, the events API): no typed event is built."""
        return await self.log.read_wire(
            session_id=session_id, run_id=run_id, types=types, after=after, limit=limit
        )

    async def sessions(self, session_id: str | None = None) -> list[SessionSummary]:
        """The `sessions` read model."""
        return await self.log.sessions(session_id)

    def recent(self) -> list[ev.Event]:
        """The in-memory cache of recently committed events (at most `max_history`)."""
        return list(self._cache)

    def subscribe(
        self,
        *,
        session_id: str | None = None,
        after: int | None = None,
        types: Iterable[str] | None = None,
        mode: Overflow | str = Overflow.DROP,
        maxsize: int = 1_000,
        block_timeout: float = 5.0,
        name: str | None = None,
    ) -> Subscription:
        """Committed events after `after` (seq with `session_id`, else position), then live.

        `after=None` starts live from now. See `bassi.store.subscription` for the modes.
        """
        if self._closed:
            raise StoreError("the event store is closed")
        if after is not None and after < 0:
            raise ValueError("after must be >= 0")
        wanted = frozenset(types) if types is not None else None
        if wanted is not None:
            unknown = sorted(wanted - set(ev.EVENT_TYPES))
            if unknown:
                raise StoreError(f"unknown event type {unknown[0]!r}")
        if session_id is not None:
            sid = session_id

            async def reader(cursor: int, limit: int) -> Sequence[ev.Event]:
                return await self.log.read(session_id=sid, after=cursor, limit=limit)

            def head() -> int:
                return self._published_seq.get(sid, 0)
        else:

            async def reader(cursor: int, limit: int) -> Sequence[ev.Event]:
                cached = self._from_cache(cursor, limit)
                if cached is not None:
                    return cached
                return await self.log.read(after=cursor, limit=limit)

            def head() -> int:
                return self._published_position

        start = head() if after is None else after
        sub = Subscription(
            name=name or f"subscriber-{next(self._names)}",
            session_id=session_id,
            types=wanted,
            mode=Overflow(mode),
            maxsize=maxsize,
            block_timeout=block_timeout,
            after=start,
            reader=reader,
            head=head,
            on_close=self._unsubscribe,
            live_from_start=after is None,
        )
        self._subscribers.append(sub)
        return sub

    def _from_cache(self, cursor: int, limit: int) -> list[ev.Event] | None:
        """Events after a global cursor from memory, or None when the log must be read.

        Only a gap-free run of positions will do: another process may have committed
        positions in between that this process never saw.
        """
        if not self._cache or (self._cache[0].position or 0) > cursor + 1:
            return None
        out: list[ev.Event] = []
        expected = cursor + 1
        for event in self._cache:
            position = event.position or 0
            if position <= cursor:
                continue
            if position != expected:
                return None
            out.append(event)
            expected += 1
            if len(out) == limit:
                break
        return out

    def _unsubscribe(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(sub)

    # --- health and lifecycle --------------------------------------------------------------

    def stats(self) -> StoreStats:
        """Counters: appended, committed, batches, lag, cache size, health, subscribers."""
        return StoreStats(
            appended=self._appended,
            committed=self._committed,
            batches=self._batches,
            failed_batches=self._failed_batches,
            queued=self._queued,
            cache_size=len(self._cache),
            healthy=self._healthy,
            last_error=self._last_error,
            last_commit_ms=self._last_commit_ms,
            commit_ms_total=self._commit_ms_total,
            subscribers=[s.stats() for s in self._subscribers],
        )

    async def close(self) -> None:
        """Flush what is queued, stop the writer, end every subscription, close the database."""
        if self._closed:
            return
        # Refuse new appends first, then let the writer finish what it accepted: it is idle
        # when cancelled, so no append is reported failed while its commit goes through.
        self._closed = True
        await self._drain()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        for sub in tuple(self._subscribers):
            sub.close()
        await self.log.close()


_RETRIED_SQLSTATE_CLASSES = {"08", "53", "57", "58"}


def _is_outage(exc: Exception) -> bool:
    """A database or disk failure worth retrying (as opposed to a bug in bassi)."""
    if isinstance(exc, OSError | sqlite3.Error):
        return True
    if type(exc).__module__.startswith("asyncpg"):
        # Raised by the driver itself (PostgreSQL's inserts bypass SQLAlchemy). Retry what the
        # server or the network did (connection lost, server shutting down or out of resources,
        # serialization failure or deadlock), never a value the database refused.
        if "InterfaceError" in {cls.__name__ for cls in type(exc).__mro__}:
            return True
        state = str(getattr(exc, "sqlstate", "") or "")
        return state[:2] in _RETRIED_SQLSTATE_CLASSES or state in ("40001", "40P01")
    sa_exc = sys.modules.get("sqlalchemy.exc")  # loaded whenever a SQLAlchemy backend is in use
    return sa_exc is not None and isinstance(exc, sa_exc.DBAPIError)


def _settle(
    item: _Pending, *, result: list[ev.Event] | None = None, error: Exception | None = None
) -> None:
    """Resolve the append's waiter (a non-durable append's failure is counted by `_lose`)."""
    if item.future is None:
        return
    if item.future.done():
        return
    if error is not None:
        item.future.set_exception(error)
    else:
        item.future.set_result(result or [])
