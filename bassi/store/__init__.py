"""The event store: the log backends (`sqlite`, `log`), the writer and subscribers (`eventstore`)."""

from __future__ import annotations

from typing import Any

from bassi.store.rows import EventLog


def open_log(url: str, **options: Any) -> EventLog:
    """The event log at `url`: `SqliteEventLog` for a SQLite file, `SqlEventLog` otherwise
    (PostgreSQL, and in-memory SQLite, which needs SQLAlchemy's single shared connection)."""
    from bassi.store.sqlite import SqliteEventLog, sqlite_path

    if sqlite_path(url) is not None:
        return SqliteEventLog(url, **options)
    from bassi.store.log import SqlEventLog

    return SqlEventLog(url, **options)
