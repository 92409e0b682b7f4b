"""The event log on SQLite (aiosqlite) or PostgreSQL (asyncpg), through SQLAlchemy Core.

One writer transaction at a time commits a batch of appends: it takes the write lock
(`BEGIN IMMEDIATE` on SQLite, a transaction-scoped advisory lock on PostgreSQL), resolves
idempotent retries, checks each session's head, assigns `seq` and `position`, inserts the
events and the `sessions` read-model rows, and commits.

Tailing by `position` never skips a row that commits late: writers are serialized by the lock
and assign `position = max(position) + 1` while holding it, so positions become visible in
commit order on both databases (a reader cannot see N+1 before N).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import String, func, select, text, type_coerce
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from bassi import events as ev
from bassi.errors import ConcurrencyError, InvalidEventError, StoreError
from bassi.store import migrate
from bassi.store.readmodel import SessionSummary, summarize
from bassi.store.rows import (
    COLUMNS,
    Group,
    RetryWithIdCheck,
    WireRow,
    chunks,
    event_row,
    known_types,
    match_retries,
    row_to_event,
    row_to_wire,
    stage_groups,
    summary_rows,
)
from bassi.store.sqlite import RunLocks, claim_file_ownership
from bassi.store.tables import events as events_table
from bassi.store.tables import sessions as sessions_table

log = logging.getLogger(__name__)

_PG_LOCK_KEY = 0x6261_7373  # "bass": serializes writers across processes on PostgreSQL
_PG_OWNER_KEY = 0x6261_7374  # held by the process that owns the database (runs recovery)
_PG_RUN_CLASS = 0x6261_7375  # with a session's key: held by the process running its run
_U32 = 0xFFFF_FFFF  # `pg_locks.objid` is unsigned


def _run_key(session_id: str) -> int:
    """A session's advisory-lock key (int4) for `_PG_RUN_CLASS`."""
    digest = hashlib.blake2b(session_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def _is_integrity_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.IntegrityError):
        return True
    return type(exc).__module__.startswith("asyncpg") and "IntegrityConstraintViolationError" in {
        cls.__name__ for cls in type(exc).__mro__
    }


def _refused_value(exc: BaseException) -> str | None:
    """Why the value, not the database, is at fault, or None: text the driver cannot encode (a
    lone surrogate), or PostgreSQL's class 22, data exception (a NUL in text). The driver's
    error may be wrapped by SQLAlchemy, so the chain of causes is searched."""
    cause: BaseException | None = exc
    for _ in range(5):
        if cause is None:
            return None
        if isinstance(cause, UnicodeError):
            return _first_line(cause)
        if type(cause).__module__.startswith("asyncpg"):
            state = str(getattr(cause, "sqlstate", "") or "")
            if state == "22P05":  # untranslatable character: jsonb and text hold no U+0000
                return "PostgreSQL cannot store the NUL character (U+0000) in text"
            if state.startswith("22") or isinstance(cause, ValueError):
                return _first_line(cause)
        cause = cause.__cause__ or getattr(cause, "orig", None) or cause.__context__
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def sqlite_engine(
    url: str, *, write: bool, synchronous: str, busy_timeout_ms: int, memory: bool = False
) -> AsyncEngine:
    """An aiosqlite engine with bassi's pragmas; its transactions begin with `BEGIN IMMEDIATE`
    when `write`. A file's writer engine keeps one connection (SQLite has one writer)."""
    kwargs: dict[str, Any] = {"connect_args": {"timeout": busy_timeout_ms / 1000}}
    if memory:
        kwargs["poolclass"] = StaticPool
    elif write:
        kwargs.update(pool_size=1, max_overflow=0)
    engine = create_async_engine(url, **kwargs)
    begin = "BEGIN IMMEDIATE" if write else "BEGIN"

    @sa_event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # bassi issues BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa_event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


async def _alive(conn: AsyncConnection) -> bool:
    """Whether a connection kept open still answers; one that does not is discarded."""
    try:
        await asyncio.wait_for(conn.execute(select(1)), 5)
        await conn.commit()
        return True
    except Exception as exc:  # whatever the driver raises, this connection is done for
        log.info("a connection holding database locks is gone: %s", exc)
        await _discard(conn)
        return False


async def _discard(conn: AsyncConnection) -> None:
    """Let a broken connection go without putting it back into the pool."""
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()


class SqlEventLog:
    """Durable, append-only storage of events in one SQL database."""

    def __init__(
        self, url: str, *, synchronous: str = "FULL", busy_timeout_ms: int = 30_000
    ) -> None:
        self.url = url
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self.dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
        self._memory = self.dialect == "sqlite" and (":memory:" in url or url.endswith("://"))
        self._memory_lock = asyncio.Lock()
        self._owner: AsyncConnection | int | bool | None = None
        self._run_locks: set[str] = set()
        self._run_locks_conn: AsyncConnection | None = None  # PostgreSQL: holds the run locks
        self._run_locks_lock = asyncio.Lock()
        self._file_run_locks: Any = None  # a file database: `RunLocks`, as SqliteEventLog
        self._lock_keeper: asyncio.Task[None] | None = None  # PostgreSQL: `_keep_locks`
        self._lock_pids: set[int] = set()  # PostgreSQL: backends this log took locks on
        self._pending_runs: set[str] = set()  # run locks to take again (`_retake_run_locks`)
        self._owner_pending = False  # ownership to take again (`_retake_ownership`)
        self.lock_check_seconds = 2.0
        """PostgreSQL: how often the connections holding advisory locks are checked."""
        self.writer: AsyncEngine = self._make_engine(write=True)
        self.reader: AsyncEngine = (
            self.writer
            if self._memory or self.dialect == "postgresql"
            else self._make_engine(write=False)
        )

    def _shared(self) -> contextlib.AbstractAsyncContextManager[None]:
        # An in-memory database is one connection: take turns on it.
        return self._memory_lock if self._memory else contextlib.nullcontext()

    @staticmethod
    def _select() -> Any:
        # The payload comes back as JSON text: `row_to_event` parses it once, with pydantic.
        t = events_table
        return select(*(t.c[name] for name in COLUMNS), type_coerce(t.c.payload, String))

    @property
    def _insert_sql(self) -> str:
        columns = ", ".join((*COLUMNS, "payload"))
        if self.dialect == "postgresql":
            marks = ", ".join(f"${i}" for i in range(1, 9)) + ", $9::jsonb"
        else:
            marks = ", ".join("?" * 9)
        return f"INSERT INTO events ({columns}) VALUES ({marks})"

    # --- engines -----------------------------------------------------------------------

    def _make_engine(self, *, write: bool) -> AsyncEngine:
        if self.dialect == "postgresql":
            return create_async_engine(self.url, pool_size=5, max_overflow=5, pool_pre_ping=True)
        return sqlite_engine(
            self.url,
            write=write,
            synchronous=self.synchronous,
            busy_timeout_ms=self.busy_timeout_ms,
            memory=self._memory,
        )

    async def pragmas(self) -> dict[str, Any]:
        """The SQLite settings in force on the writer connection, read back (empty on PostgreSQL)."""
        if self.dialect != "sqlite":
            return {}
        out: dict[str, Any] = {}
        async with self._shared(), self.writer.connect() as conn:
            for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys"):
                out[name] = (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
        return out

    async def claim_ownership(self) -> bool:
        """Try to become the database's owner (the process that may run recovery); never waits.

        SQLite: an exclusive `flock` on `DB.owner`; PostgreSQL: a session advisory lock on a
        connection kept open. The OS or the server releases it when the process dies, so a
        restarted daemon gets it back while a CLI running beside a live daemon does not.
        """
        if self._owner is not None:
            return True
        if self.dialect == "postgresql":
            conn = await self._lock_connection()
            got = (await conn.execute(select(func.pg_try_advisory_lock(_PG_OWNER_KEY)))).scalar()
            await conn.commit()
            if not got:
                await conn.close()
                return False
            self._owner, self._owner_pending = conn, False
            self._start_lock_keeper()
            return True
        if self._memory:
            self._owner = True
            return True
        fd = claim_file_ownership(self.url.split(":///", 1)[1].split("?", 1)[0] + ".owner")
        if fd is None:
            return False
        self._owner = fd
        return True

    async def release_ownership(self) -> None:
        """Stop being the owner (a no-op for a process that is not)."""
        owner, self._owner = self._owner, None
        self._owner_pending = False
        if isinstance(owner, AsyncConnection):
            with contextlib.suppress(Exception):
                # The connection goes back to the pool, still holding a session lock: unlock.
                await owner.execute(select(func.pg_advisory_unlock(_PG_OWNER_KEY)))
                await owner.commit()
            with contextlib.suppress(Exception):
                await owner.close()
        elif isinstance(owner, int) and not isinstance(owner, bool):
            os.close(owner)  # closing the descriptor drops the flock

    async def lock_run(self, session_id: str) -> bool:
        """Take the session's run lock without waiting (see `SqliteEventLog.lock_run`).

        PostgreSQL: a session-level advisory lock on a connection kept for the run locks, which
        the server drops with the connection if this process dies. In-memory SQLite: one
        process by construction.
        """
        if session_id in self._run_locks:
            return True
        if self.dialect == "postgresql":
            async with self._run_locks_lock:
                got = await self._pg_lock_run(session_id)
            self._start_lock_keeper()
        elif self._memory:
            got = True
        else:
            if self._file_run_locks is None:
                path = self.url.split(":///", 1)[1].split("?", 1)[0]
                self._file_run_locks = RunLocks.open(path + ".runs")
            got = self._file_run_locks.lock(session_id, self)
        if got:
            self._run_locks.add(session_id)
        return got

    async def unlock_run(self, session_id: str) -> None:
        """Release the session's run lock if this log holds it."""
        if session_id not in self._run_locks:
            return
        self._run_locks.discard(session_id)
        self._pending_runs.discard(session_id)
        if self.dialect == "postgresql":
            async with self._run_locks_lock:
                conn = self._run_locks_conn
                if conn is None:
                    return  # lost with its connection: the server let it go then
                try:
                    await conn.execute(
                        select(func.pg_advisory_unlock(_PG_RUN_CLASS, _run_key(session_id)))
                    )
                    await conn.commit()
                except (SQLAlchemyError, OSError):
                    self._run_locks_conn = None  # the others are retaken on a new one
                    await _discard(conn)
        elif self._file_run_locks is not None:
            self._file_run_locks.unlock(session_id, self)

    async def _pg_lock_run(self, session_id: str) -> bool:
        """`pg_try_advisory_lock` for the session on the run-locks connection (under
        `_run_locks_lock`); once more on a new connection if that one is gone."""
        for attempt in (1, 2):
            if self._run_locks_conn is None:
                await self._retake_run_locks()
            conn = self._run_locks_conn
            assert conn is not None
            try:
                lock = func.pg_try_advisory_lock(_PG_RUN_CLASS, _run_key(session_id))
                got = bool((await conn.execute(select(lock))).scalar())
                await conn.commit()
                return got
            except (SQLAlchemyError, OSError):
                self._run_locks_conn = None
                await _discard(conn)
                if attempt == 2:
                    raise
        return False  # not reached: the second attempt returns or raises

    async def _lock_connection(self) -> AsyncConnection:
        """A connection to hold advisory locks on; its backend is remembered as this log's."""
        conn = await self.writer.connect()
        self._lock_pids.add(int((await conn.execute(select(func.pg_backend_pid()))).scalar_one()))
        return conn

    async def _held_by_us(self, conn: AsyncConnection, key: tuple[int, int, int]) -> bool:
        """Whether the advisory lock `key` (classid, objid, objsubid as `pg_locks` has them) is
        held by one of this log's backends, or by none: a connection of ours the server has not
        finished dropping still holds it for a moment, and nobody else can take it meanwhile."""
        holders = await conn.execute(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid::bigint = :c AND objid::bigint = :o AND objsubid = :s"
            ),
            {"c": key[0], "o": key[1], "s": key[2]},
        )
        return all(pid in self._lock_pids for (pid,) in holders)

    async def _retake_run_locks(self) -> None:
        """Hold again the run locks this log held on a connection it lost (the server drops
        them with it), on a new one (under `_run_locks_lock`). A lock still held by the old
        backend, which the server is still dropping, is tried again next time; one another
        process took meanwhile is lost: that process may now recover the run, whose next
        append here is a ConcurrencyError."""
        if self._run_locks_conn is None:
            self._run_locks_conn = await self._lock_connection()
            self._pending_runs = set(self._run_locks)
        conn = self._run_locks_conn
        for session_id in sorted(self._pending_runs):
            lock = func.pg_try_advisory_lock(_PG_RUN_CLASS, _run_key(session_id))
            if (await conn.execute(select(lock))).scalar():
                self._pending_runs.discard(session_id)
            elif not await self._held_by_us(conn, (_PG_RUN_CLASS, _run_key(session_id) & _U32, 2)):
                self._pending_runs.discard(session_id)
                self._run_locks.discard(session_id)
                log.warning("lost the run lock of session %s with its connection", session_id)
        await conn.commit()

    async def _retake_ownership(self) -> None:
        """Become the owner again after the owner's connection was lost (see
        `_retake_run_locks`: tried again while the old backend still holds the lock)."""
        conn = await self._lock_connection()
        try:
            if (await conn.execute(select(func.pg_try_advisory_lock(_PG_OWNER_KEY)))).scalar():
                await conn.commit()
                self._owner, self._owner_pending = conn, False
                return
            if not await self._held_by_us(conn, (0, _PG_OWNER_KEY, 1)):
                self._owner_pending = False
                log.warning("another process owns the database now")
            await conn.commit()
        except BaseException:
            await _discard(conn)
            raise
        await conn.close()

    def _start_lock_keeper(self) -> None:
        if self._lock_keeper is None or self._lock_keeper.done():
            self._lock_keeper = asyncio.get_running_loop().create_task(
                self._keep_locks(), name="bassi-pg-locks"
            )

    async def _keep_locks(self) -> None:
        """PostgreSQL drops a connection's advisory locks with it (a server restart, a network
        blip). Check the connections holding them every `lock_check_seconds` and take them
        again at once, before another process takes them and recovers runs live here."""
        while True:
            await asyncio.sleep(self.lock_check_seconds)
            try:
                async with self._run_locks_lock:
                    conn = self._run_locks_conn
                    if conn is not None and self._run_locks and not await _alive(conn):
                        self._run_locks_conn = None
                    if self._run_locks and (self._run_locks_conn is None or self._pending_runs):
                        await self._retake_run_locks()
                owner = self._owner
                if isinstance(owner, AsyncConnection) and not await _alive(owner):
                    self._owner, self._owner_pending = None, True
                if self._owner_pending:
                    await self._retake_ownership()
            except Exception as exc:  # the server is away, say: the next round tries again
                log.warning("could not check the database locks: %s", exc)

    async def ensure_schema(self) -> None:
        """Migrate the database to the newest revision unless it is already there."""
        await migrate.ensure_schema(self.writer)

    async def close(self) -> None:
        """Release every connection."""
        keeper, self._lock_keeper = self._lock_keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        await self.release_ownership()
        conn, self._run_locks_conn = self._run_locks_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                # Back to the pool it goes, so drop its session locks first.
                await conn.execute(select(func.pg_advisory_unlock_all()))
                await conn.commit()
            with contextlib.suppress(Exception):
                await conn.close()
        if self._file_run_locks is not None:
            self._file_run_locks.close(self)
            self._file_run_locks = None
        self._run_locks.clear()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()

    # --- writing -----------------------------------------------------------------------

    async def commit(self, groups: Sequence[Group], heads: Mapping[str, int]) -> None:
        """Commit every group that can be, in one transaction (see `_commit`)."""
        try:
            try:
                await self._commit(groups, heads, check_ids=False)
            except RetryWithIdCheck:
                for group in groups:
                    group.committed, group.error = [], None
                await self._commit(groups, heads, check_ids=True)
        except Exception as exc:
            reason = _refused_value(exc)
            if reason is not None:
                raise InvalidEventError(f"an event cannot be stored: {reason}") from exc
            raise

    async def _commit(
        self, groups: Sequence[Group], heads: Mapping[str, int], *, check_ids: bool
    ) -> None:
        """Commit every group that can be, in one transaction (`bassi.store.rows`).

        Database failures raise and leave nothing written. Retried event_ids are looked up
        only when an insert hits the event_id constraint (`check_ids`): the common case costs
        no extra query.
        """
        async with self._shared(), self.writer.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
            if check_ids:
                await self._resolve_retries(conn, groups)
            live = [g for g in groups if g.error is None and not g.committed]
            if not live:
                return
            session_ids = sorted({e.session_id for g in live for e in g.events})
            summaries = await self._summaries(conn, session_ids)
            position = (await conn.execute(select(func.max(events_table.c.position)))).scalar() or 0
            rows = stage_groups(live, summaries, heads, position)
            if not rows:
                return
            await self._insert(conn, [event_row(e) for e in rows], check_ids=check_ids)
            await self._write_summaries(conn, summary_rows(summaries, rows))

    async def _insert(
        self, conn: AsyncConnection, rows: list[tuple[Any, ...]], *, check_ids: bool
    ) -> None:
        # Straight to the driver's executemany: SQLAlchemy's per-row parameter processing
        # would cost more than the insert itself. Still inside the transaction begun above.
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            await driver.executemany(self._insert_sql, rows)
        except Exception as exc:
            if not _is_integrity_error(exc):
                raise
            if "event_id" in str(exc) and not check_ids:
                raise RetryWithIdCheck from exc
            # Under the write lock only a writer that ignores it can take our seq.
            raise ConcurrencyError(f"append conflicted with another writer: {exc}") from exc

    async def _resolve_retries(self, conn: AsyncConnection, groups: Sequence[Group]) -> None:
        ids = [e.event_id for g in groups for e in g.events]
        found: dict[str, ev.Event] = {}
        for chunk in chunks(ids):
            result = await conn.execute(self._select().where(events_table.c.event_id.in_(chunk)))
            for row in result:
                stored = row_to_event(row)
                found[stored.event_id] = stored
        match_retries(groups, found)

    async def _summaries(
        self, conn: AsyncConnection, session_ids: list[str]
    ) -> dict[str, SessionSummary]:
        out: dict[str, SessionSummary] = {}
        for chunk in chunks(session_ids):
            result = await conn.execute(
                select(sessions_table).where(sessions_table.c.session_id.in_(chunk))
            )
            for row in result.mappings():
                out[row["session_id"]] = SessionSummary.from_row(row)
        return out

    async def _write_summaries(self, conn: AsyncConnection, values: list[dict[str, Any]]) -> None:
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(sessions_table)
        update = {c.name: stmt.excluded[c.name] for c in sessions_table.c if c.name != "session_id"}
        await conn.execute(
            stmt.on_conflict_do_update(index_elements=["session_id"], set_=update), values
        )

    # --- reading -----------------------------------------------------------------------

    async def read(
        self,
        *,
        session_id: str | None = None,
        run_id: str | None = None,
        types: Iterable[str] | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[ev.Event]:
        """Committed events in order; `after` is a seq with `session_id`, else a position."""
        stmt = self._select_events(session_id, run_id, types, after, limit)
        async with self._shared(), self.reader.connect() as conn:
            result = await conn.execute(stmt)
            return [row_to_event(row) for row in result]

    async def read_wire(
        self,
        *,
        session_id: str | None = None,
        run_id: str | None = None,
        types: Iterable[str] | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[WireRow]:
        """What `read` selects, as (position, seq, wire JSON).

        asyncpg hands JSONB over decoded, so on PostgreSQL each event is built and dumped;
        SQLite through SQLAlchemy gives the text (`json.dumps`'s spelling: equal as JSON).
        """
        stmt = self._select_events(session_id, run_id, types, after, limit)
        async with self._shared(), self.reader.connect() as conn:
            result = await conn.execute(stmt)
            return [row_to_wire(row) for row in result]

    def _select_events(
        self,
        session_id: str | None,
        run_id: str | None,
        types: Iterable[str] | None,
        after: int,
        limit: int | None,
    ) -> Any:
        t = events_table
        stmt = self._select()
        if session_id is not None:
            stmt = stmt.where(t.c.session_id == session_id, t.c.seq > after).order_by(t.c.seq)
        else:
            stmt = stmt.where(t.c.position > after).order_by(t.c.position)
        if run_id is not None:
            stmt = stmt.where(t.c.run_id == run_id)
        if types is not None:
            wanted = known_types(types)
            stmt = stmt.where(t.c.type.in_(wanted))
        if limit is not None:
            stmt = stmt.limit(limit)
        return stmt

    async def last_seq(self, session_id: str) -> int:
        """The session's last committed seq (0 when it has none)."""
        async with self._shared(), self.reader.connect() as conn:
            stmt = select(func.max(events_table.c.seq)).where(
                events_table.c.session_id == session_id
            )
            return int((await conn.execute(stmt)).scalar() or 0)

    async def last_position(self) -> int:
        """The last committed global position (0 for an empty log)."""
        async with self._shared(), self.reader.connect() as conn:
            return int(
                (await conn.execute(select(func.max(events_table.c.position)))).scalar() or 0
            )

    async def sessions(self, session_id: str | None = None) -> list[SessionSummary]:
        """Rows of the `sessions` read model, newest first."""
        stmt = select(sessions_table).order_by(sessions_table.c.created_at.desc())
        if session_id is not None:
            stmt = stmt.where(sessions_table.c.session_id == session_id)
        async with self._shared(), self.reader.connect() as conn:
            return [SessionSummary.from_row(row) for row in (await conn.execute(stmt)).mappings()]

    async def rebuild_sessions(self) -> int:
        """Recompute every `sessions` row from `events`; returns the number of sessions."""
        async with self._shared(), self.writer.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
            await conn.execute(sessions_table.delete())
            summaries: dict[str, SessionSummary] = {}
            result = await conn.stream(self._select().order_by(events_table.c.position))
            async for row in result:
                event = row_to_event(row)
                summaries[event.session_id] = summarize(summaries.get(event.session_id), [event])
            if summaries:
                await conn.execute(
                    sessions_table.insert(), [s.as_row() for s in summaries.values()]
                )
            return len(summaries)

    async def execute_raw(self, sql: str) -> None:
        """Run one statement on the writer connection (operators' and tests' escape hatch)."""
        try:
            async with self._shared(), self.writer.begin() as conn:
                await conn.execute(text(sql))
        except DBAPIError as exc:
            raise StoreError(str(exc.orig)) from exc
