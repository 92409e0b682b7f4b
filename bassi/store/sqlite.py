"""The event log on a SQLite file, through the standard library's `sqlite3`.

Why not SQLAlchemy + aiosqlite, as on PostgreSQL: every statement through them is a round trip
between the event loop and the driver's thread, and a commit of one batch took 17 of them
(15-18 ms, against 3 ms for the same `BEGIN IMMEDIATE`/`INSERT`/`COMMIT` in plain sqlite3).
Here the whole commit is one synchronous function run on a writer thread that owns its
connection: one hop per batch. Reads run on a small pool of reader threads, each with its own
connection (WAL lets them read while the writer writes) and decode rows there.

The transaction is the same as `SqlEventLog`'s (`bassi.store.rows`): `BEGIN IMMEDIATE` takes
the write lock, heads and `max(position)` are read under it, so positions become visible in
commit order and tailing by position never skips a row that commits late.

Schema migrations still go through Alembic on a SQLAlchemy engine (`writer`, `reader`), made
only when something asks for one: opening an up-to-date database imports neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from bassi import events as ev
from bassi.errors import ConcurrencyError, InvalidEventError, StoreError
from bassi.store.readmodel import SessionSummary, summarize
from bassi.store.rows import (
    COLUMNS,
    SUMMARY_COLUMNS,
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

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

READERS = 4
"""Reader threads (and connections): concurrent catch-up reads of several clients."""

_SELECT = f"SELECT {', '.join(COLUMNS)}, payload FROM events"
_VARIABLE_LIMIT = sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER

_INSERT_ROWS = 256
"""Events per INSERT statement. One statement of many rows rather than `executemany`: the
driver gives up the GIL around every statement it steps, and a writer thread that has to win
it back from a busy event loop once per row is slowed down many times over."""


@functools.cache
def _insert_sql(rows: int) -> str:
    one = f"({', '.join('?' * (len(COLUMNS) + 1))})"
    return f"INSERT INTO events ({', '.join(COLUMNS)}, payload) VALUES {', '.join([one] * rows)}"


_UPSERT_SUMMARY = (
    f"INSERT INTO sessions ({', '.join(SUMMARY_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(SUMMARY_COLUMNS))}) "
    "ON CONFLICT (session_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in SUMMARY_COLUMNS if c != "session_id")
)
_SELECT_SUMMARIES = f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM sessions"


def _select_events(
    session_id: str | None,
    run_id: str | None,
    types: Iterable[str] | None,
    after: int,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """The SELECT (and its parameters) behind `read` and `read_wire`."""
    where: list[str] = []
    params: list[Any] = []
    if session_id is not None:
        where.append("session_id = ? AND seq > ?")
        params += [session_id, after]
        order = "seq"
    else:
        where.append("position > ?")
        params.append(after)
        order = "position"
    if run_id is not None:
        where.append("run_id = ?")
        params.append(run_id)
    if types is not None:
        wanted = known_types(types)
        where.append(f"type IN ({', '.join('?' * len(wanted))})" if wanted else "0")
        params += wanted
    sql = f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY {order}"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL, or None for an in-memory database or another database."""
    if not url.startswith("sqlite"):
        return None
    _, _, path = url.partition(":///")
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        return None
    if "?" in path:
        return None  # URL parameters: SQLAlchemy's URL parsing applies them (`SqlEventLog`)
    return path


def claim_file_ownership(path: str) -> int | None:
    """An exclusive, non-blocking `flock` on `path` (created if missing): its descriptor, or
    None when another process holds it. Closing the descriptor, or dying, releases it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class RunLocks:
    """Which process is running a run of which session: one POSIX byte-range lock per session
    in `DB.runs`, taken without waiting.

    The OS drops a dead process's locks, so a run whose lock is free is not running anywhere
    and recovery may account for it; a run whose lock is held is live in another process and
    must be left alone. POSIX locks belong to the process and vanish when *any* descriptor of
    the file is closed, so each file is opened once per process and shared (`open`), and the
    logs of one process that share it see each other's locks in `held`.
    """

    _files: ClassVar[dict[str, RunLocks]] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.users = 0
        self.held: dict[str, object] = {}  # session_id -> the log holding it in this process

    @classmethod
    def open(cls, path: str) -> RunLocks:
        key = os.path.realpath(path)
        with cls._registry_lock:
            locks = cls._files.get(key)
            if locks is None:
                locks = cls._files[key] = cls(key)
            locks.users += 1
            return locks

    def close(self, holder: object) -> None:
        """`holder` is done with the file: its locks are released, and the file closed last."""
        with self._registry_lock:
            for session_id in [s for s, h in self.held.items() if h is holder]:
                self._unlock(session_id)
            self.users -= 1
            if self.users == 0:
                del self._files[self.path]
                os.close(self.fd)

    @staticmethod
    def _offset(session_id: str) -> int:
        return int.from_bytes(hashlib.blake2b(session_id.encode(), digest_size=7).digest(), "big")

    def lock(self, session_id: str, holder: object) -> bool:
        with self._registry_lock:
            owner = self.held.get(session_id)
            if owner is not None:
                return owner is holder
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self._offset(session_id))
            except OSError:
                return False  # another process holds it
            self.held[session_id] = holder
            return True

    def unlock(self, session_id: str, holder: object) -> None:
        with self._registry_lock:
            if self.held.get(session_id) is holder:
                self._unlock(session_id)

    def _unlock(self, session_id: str) -> None:
        del self.held[session_id]
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, self._offset(session_id))


def _summary(row: Sequence[Any]) -> SessionSummary:
    return SessionSummary(*row)


class SqliteEventLog:
    """Durable, append-only storage of events in one SQLite file (see the module doc)."""

    dialect = "sqlite"

    def __init__(
        self, url: str, *, synchronous: str = "FULL", busy_timeout_ms: int = 30_000
    ) -> None:
        path = sqlite_path(url)
        if path is None:
            raise StoreError(f"not a SQLite file URL: {url}")
        self.url = url
        self.path = path
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="bassi-sqlite-writer")
        self._read_threads = ThreadPoolExecutor(READERS, thread_name_prefix="bassi-sqlite-reader")
        self._write_conn: sqlite3.Connection | None = None
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._read_conns_lock = threading.Lock()
        self._engines: dict[str, AsyncEngine] = {}
        self._owner: int | None = None
        self._run_locks: RunLocks | None = None
        self._closed = False

    # --- connections -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_ms / 1000,
            isolation_level=None,  # bassi issues BEGIN itself
            check_same_thread=False,  # each connection stays on its thread; close() is elsewhere
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _writer_conn(self) -> sqlite3.Connection:
        """The writer's connection; only ever used on the writer thread."""
        if self._write_conn is None:
            self._write_conn = self._connect()
        return self._write_conn

    def _reader_conn(self) -> sqlite3.Connection:
        """This reader thread's own connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._read_conns_lock:
                self._read_conns.append(conn)
        return conn

    async def _on_writer(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreError("the event log is closed")
        return await asyncio.get_running_loop().run_in_executor(self._write_thread, fn, *args)

    async def _on_reader(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreError("the event log is closed")
        return await asyncio.get_running_loop().run_in_executor(self._read_threads, fn, *args)

    def _engine(self, *, write: bool) -> AsyncEngine:
        """A SQLAlchemy engine on the same file, for Alembic and the tests' raw SQL."""
        key = "writer" if write else "reader"
        if key not in self._engines:
            from bassi.store.log import sqlite_engine

            self._engines[key] = sqlite_engine(
                self.url,
                write=write,
                synchronous=self.synchronous,
                busy_timeout_ms=self.busy_timeout_ms,
            )
        return self._engines[key]

    @property
    def writer(self) -> AsyncEngine:
        """A SQLAlchemy engine whose transactions begin with `BEGIN IMMEDIATE` (migrations)."""
        return self._engine(write=True)

    @property
    def reader(self) -> AsyncEngine:
        """A SQLAlchemy engine for reading (schema inspection)."""
        return self._engine(write=False)

    async def ensure_schema(self) -> None:
        """Migrate to the newest revision unless the database is already there.

        The check is one query on the writer's connection; Alembic and SQLAlchemy are imported
        only when a migration has to run.
        """
        from bassi.store.migrate import SCHEMA_HEAD

        def current(conn: sqlite3.Connection) -> str | None:
            try:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.OperationalError:
                return None  # no alembic_version table yet
            return None if row is None else str(row[0])

        if await self._on_writer(lambda: current(self._writer_conn())) != SCHEMA_HEAD:
            from bassi.store import migrate

            await migrate.upgrade(self.writer)
            # Done with it: its connection (and aiosqlite's thread) would otherwise idle on.
            await self._engines.pop("writer").dispose()

    async def pragmas(self) -> dict[str, Any]:
        """The SQLite settings in force on the writer connection, read back."""

        def read() -> dict[str, Any]:
            conn = self._writer_conn()
            names = ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            return {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in names}

        return await self._on_writer(read)

    async def claim_ownership(self) -> bool:
        """Try to become the database's owner (the process that may run recovery); never waits.

        An exclusive `flock` on `DB.owner`: the OS releases it when the process dies, so a
        restarted daemon gets it back while a CLI running beside a live daemon does not.
        """
        if self._owner is not None:
            return True
        self._owner = claim_file_ownership(self.path + ".owner")
        return self._owner is not None

    async def lock_run(self, session_id: str) -> bool:
        """Take the session's run lock without waiting (True if this log now holds it or
        already did); False while another process, or another log, runs a run of it."""
        if self._closed:
            raise StoreError("the event log is closed")
        if self._run_locks is None:
            self._run_locks = RunLocks.open(self.path + ".runs")
        return self._run_locks.lock(session_id, self)

    async def unlock_run(self, session_id: str) -> None:
        """Release the session's run lock if this log holds it."""
        if self._run_locks is not None:
            self._run_locks.unlock(session_id, self)

    async def release_ownership(self) -> None:
        """Stop being the owner (a no-op for a process that is not)."""
        owner, self._owner = self._owner, None
        if owner is not None:
            os.close(owner)  # closing the descriptor drops the flock

    async def close(self) -> None:
        """Finish what is running, then release every connection."""
        if self._closed:
            return
        self._closed = True
        await self.release_ownership()
        if self._run_locks is not None:
            self._run_locks.close(self)
            self._run_locks = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._write_thread.shutdown)
        await loop.run_in_executor(None, self._read_threads.shutdown)
        if self._write_conn is not None:
            self._write_conn.close()
        with self._read_conns_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()
        for engine in self._engines.values():
            await engine.dispose()

    # --- writing ---------------------------------------------------------------------------

    async def commit(self, groups: Sequence[Group], heads: Mapping[str, int]) -> None:
        """Commit every group that can be, in one transaction (`bassi.store.rows`).

        Fills `group.committed` or `group.error`. Database failures raise and leave nothing
        written.
        """
        known = dict(heads)  # copied here: the event loop may change `heads` meanwhile
        try:
            await self._on_writer(self._commit, groups, known, False)
        except RetryWithIdCheck:
            for group in groups:
                group.committed, group.error = [], None
            await self._on_writer(self._commit, groups, known, True)

    @contextlib.contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on the writer's connection: committed, or rolled back on error.

        If even the rollback fails the connection is dropped and the next transaction opens a
        fresh one, so no half-finished transaction outlives its batch.
        """
        conn = self._writer_conn()
        if conn.in_transaction:
            conn = self._rolled_back(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            self._rolled_back(conn)
            raise

    def _rolled_back(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return conn
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            self._write_conn = None
            return self._writer_conn()

    def _commit(self, groups: Sequence[Group], heads: Mapping[str, int], check_ids: bool) -> None:
        try:
            with self._immediate() as conn:
                self._commit_in(conn, groups, heads, check_ids)
        except UnicodeEncodeError as exc:  # text sqlite3 cannot bind (a lone surrogate)
            raise InvalidEventError(f"an event cannot be stored: {exc}") from None

    def _commit_in(
        self,
        conn: sqlite3.Connection,
        groups: Sequence[Group],
        heads: Mapping[str, int],
        check_ids: bool,
    ) -> None:
        if check_ids:
            ids = [e.event_id for g in groups for e in g.events]
            found: dict[str, ev.Event] = {}
            for chunk in chunks(ids):
                marks = ", ".join("?" * len(chunk))
                for row in conn.execute(f"{_SELECT} WHERE event_id IN ({marks})", chunk):
                    stored = row_to_event(row)
                    found[stored.event_id] = stored
            match_retries(groups, found)
        live = [g for g in groups if g.error is None and not g.committed]
        if not live:
            return
        session_ids = sorted({e.session_id for g in live for e in g.events})
        summaries = self._summaries(conn, session_ids)
        position = conn.execute("SELECT max(position) FROM events").fetchone()[0] or 0
        rows = stage_groups(live, summaries, heads, position)
        if not rows:
            return
        try:
            # One statement may bind at most SQLITE_LIMIT_VARIABLE_NUMBER values (999 on builds
            # older than 3.32).
            per = max(1, min(_INSERT_ROWS, conn.getlimit(_VARIABLE_LIMIT) // (len(COLUMNS) + 1)))
            for start in range(0, len(rows), per):
                part = rows[start : start + per]
                values = [value for event in part for value in event_row(event)]
                conn.execute(_insert_sql(len(part)), values)
        except sqlite3.IntegrityError as exc:
            if "event_id" in str(exc) and not check_ids:
                raise RetryWithIdCheck from exc
            # Under the write lock only a writer that ignores it can take our seq.
            raise ConcurrencyError(f"append conflicted with another writer: {exc}") from exc
        conn.executemany(
            _UPSERT_SUMMARY,
            [tuple(row[c] for c in SUMMARY_COLUMNS) for row in summary_rows(summaries, rows)],
        )

    @staticmethod
    def _summaries(
        conn: sqlite3.Connection, session_ids: Sequence[str]
    ) -> dict[str, SessionSummary]:
        out: dict[str, SessionSummary] = {}
        for chunk in chunks(session_ids):
            marks = ", ".join("?" * len(chunk))
            sql = f"{_SELECT_SUMMARIES} WHERE session_id IN ({marks})"
            for row in conn.execute(sql, chunk):
                summary = _summary(row)
                out[summary.session_id] = summary
        return out

    # --- reading ---------------------------------------------------------------------------

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
        sql, params = _select_events(session_id, run_id, types, after, limit)

        def read() -> list[ev.Event]:
            return [row_to_event(row) for row in self._reader_conn().execute(sql, params)]

        return await self._on_reader(read)

    async def read_wire(
        self,
        *,
        session_id: str | None = None,
        run_id: str | None = None,
        types: Iterable[str] | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[WireRow]:
        """What `read` selects, as (position, seq, wire JSON) without building typed events."""
        sql, params = _select_events(session_id, run_id, types, after, limit)

        def read() -> list[WireRow]:
            return [row_to_wire(row) for row in self._reader_conn().execute(sql, params)]

        return await self._on_reader(read)

    async def _scalar(self, sql: str, params: Sequence[Any] = ()) -> int:
        def read() -> int:
            return int(self._reader_conn().execute(sql, params).fetchone()[0] or 0)

        return await self._on_reader(read)

    async def last_seq(self, session_id: str) -> int:
        """The session's last committed seq (0 when it has none)."""
        return await self._scalar("SELECT max(seq) FROM events WHERE session_id = ?", [session_id])

    async def last_position(self) -> int:
        """The last committed global position (0 for an empty log)."""
        return await self._scalar("SELECT max(position) FROM events")

    async def sessions(self, session_id: str | None = None) -> list[SessionSummary]:
        """Rows of the `sessions` read model, newest first."""
        sql, params = _SELECT_SUMMARIES, []
        if session_id is not None:
            sql, params = sql + " WHERE session_id = ?", [session_id]
        sql += " ORDER BY created_at DESC"

        def read() -> list[SessionSummary]:
            return [_summary(row) for row in self._reader_conn().execute(sql, params)]

        return await self._on_reader(read)

    async def rebuild_sessions(self) -> int:
        """Recompute every `sessions` row from `events`; returns the number of sessions."""

        def rebuild() -> int:
            with self._immediate() as conn:
                conn.execute("DELETE FROM sessions")
                summaries: dict[str, SessionSummary] = {}
                for row in conn.execute(f"{_SELECT} ORDER BY position"):
                    event = row_to_event(row)
                    summaries[event.session_id] = summarize(
                        summaries.get(event.session_id), [event]
                    )
                conn.executemany(
                    _UPSERT_SUMMARY,
                    [tuple(s.as_row()[c] for c in SUMMARY_COLUMNS) for s in summaries.values()],
                )
            return len(summaries)

        return await self._on_writer(rebuild)

    async def execute_raw(self, sql: str) -> None:
        """Run one statement on the writer connection (operators' and tests' escape hatch)."""

        def run() -> None:
            conn = self._writer_conn()
            try:
                conn.execute(sql)
                if conn.in_transaction:
                    conn.execute("COMMIT")
            except BaseException:
                self._rolled_back(conn)
                raise

        try:
            await self._on_writer(run)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
