"""Read-only SQL over the event log, for people auditing what agents did.

Every query runs on a connection that cannot write, whatever the SQL says: SQLite opens the
file with `mode=ro` and sets `PRAGMA query_only`; PostgreSQL runs the statement in a
`READ ONLY` transaction that is rolled back. One statement per call (both drivers refuse a
second one), so `SELECT 1; DELETE FROM events` cannot sneak a write in either.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bassi.errors import StoreError
from bassi.store.dberror import missing_schema

REPORTS: dict[str, str] = {
    "tools": """
        SELECT decided_at, session_id, tool_name, decision, decided_by, outcome,
               duration_ms, input, COALESCE(error, output, decision_reason) AS result
        FROM audit_tool_calls {where} ORDER BY decided_at""",
    "runs": """
        SELECT started_at, session_id, run_id, outcome, stop_reason, turns, duration_ms,
               input_tokens, output_tokens, prompt
        FROM audit_runs {where} ORDER BY started_at""",
    "usage": """
        SELECT session_id, provider, model, model_calls, input_tokens, output_tokens,
               cache_read_tokens, cache_write_tokens
        FROM audit_usage {where} ORDER BY session_id, model""",
    "permissions": """
        SELECT decided_at, session_id, tool_name, decision, decided_by, asked, reason
        FROM audit_permissions {where} ORDER BY decided_at""",
}
"""Canned reports on the audit views, by name."""


class AuditRefused(StoreError):
    """The statement tried to change the database; nothing was changed."""


class AuditQueryError(StoreError):
    """The database rejected the statement (the message is the database's own)."""


@dataclass(frozen=True, slots=True)
class AuditResult:
    """Column names and rows of one query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


async def run_query(url: str, sql: str, params: Sequence[Any] = ()) -> AuditResult:
    """Run one statement read-only against the database at `url` (an async SQLAlchemy URL)."""
    if not sql.strip():
        raise AuditQueryError("empty SQL statement")
    if url.startswith("postgresql"):
        return await _postgres(url, sql, params)
    return await _sqlite(url, sql, params)


async def run_report(url: str, name: str, *, session_id: str | None = None) -> AuditResult:
    """One of `REPORTS`, optionally for one session."""
    if name not in REPORTS:
        raise AuditQueryError(f"unknown report {name!r} (known: {', '.join(REPORTS)})")
    params: list[str] = []
    sql = REPORTS[name].format(where="")
    if session_id is not None:
        mark = "$1" if url.startswith("postgresql") else "?"
        sql, params = REPORTS[name].format(where=f"WHERE session_id = {mark}"), [session_id]
    try:
        return await run_query(url, sql, params)
    except AuditQueryError as exc:  # a report's views are bassi's: missing, bassi is missing
        hint = missing_schema(exc.__cause__) if exc.__cause__ is not None else None
        if hint is None:
            raise
        raise AuditQueryError(hint) from exc


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database."""
    _, _, rest = url.partition(":///")
    path = rest.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


async def _sqlite(url: str, sql: str, params: Sequence[Any]) -> AuditResult:
    import aiosqlite

    path = sqlite_path(url)
    if path is None:
        raise AuditQueryError("an in-memory database cannot be audited from another connection")
    if not path.is_file():
        raise AuditQueryError(f"no database at {path} (run `bassi db upgrade` first)")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        async with aiosqlite.connect(uri, uri=True, timeout=30) as conn:
            await conn.execute("PRAGMA query_only = ON")
            await conn.set_authorizer(_no_attach)  # ATTACH would create the file it names
            async with conn.execute(sql, tuple(params)) as cursor:
                rows = [tuple(row) for row in await cursor.fetchall()]
                columns = [d[0] for d in cursor.description or ()]
    except sqlite3.Error as exc:
        message = str(exc)
        if "readonly" in message or "read-only" in message or "not authorized" in message:
            raise AuditRefused(f"refused: audit queries are read-only ({message})") from exc
        raise AuditQueryError(f"SQL error: {message}") from exc
    return AuditResult(columns, rows)


def _no_attach(action: int, *_: object) -> int:
    """SQLite authorizer of audit queries: everything but ATTACH and DETACH, which would reach
    (and create) files beside the database."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


async def _postgres(url: str, sql: str, params: Sequence[Any]) -> AuditResult:
    import asyncpg  # type: ignore[import-untyped]

    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise StoreError(f"cannot connect to the database: {exc}") from exc
    try:
        async with conn.transaction(readonly=True):
            statement = await conn.prepare(sql)
            records = await statement.fetch(*params)
            columns = [a.name for a in statement.get_attributes()]
            rows = [tuple(r.values()) for r in records]
            raise _Rollback  # nothing an audit does is ever committed
    except _Rollback:
        return AuditResult(columns, rows)
    except asyncpg.ReadOnlySQLTransactionError as exc:
        raise AuditRefused(f"refused: audit queries are read-only ({exc})") from exc
    except asyncpg.PostgresError as exc:
        raise AuditQueryError(f"SQL error: {exc}") from exc
    finally:
        await conn.close()


class _Rollback(Exception):
    pass
