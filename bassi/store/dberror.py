"""One readable line for an error the database (or its driver) raised.

The CLI and `bassi serve` report these instead of a traceback. Drivers are only looked up if
something already imported them, so asking costs no import.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import traceback

_MISSING_TABLE = (
    re.compile(r"^no such table: (?:\w+\.)?(?P<name>\S+)"),  # SQLite
    re.compile(r'^relation "(?P<name>[^"]+)" does not exist'),  # PostgreSQL
)
_CONNECT_STATES = ("08", "28", "3D", "53300", "57P03")
"""SQLSTATEs PostgreSQL answers a connection with: no such database, bad role or password,
too many connections, starting up (classes 08, 28 and 3D, and two single states)."""
_WRAPPED_CLASS = re.compile(r"^<class '[\w.]+'>: ")
"""SQLAlchemy's asyncpg adapter writes its errors as `<class 'asyncpg...'>: message`."""


def describe(exc: BaseException) -> str | None:
    """One line for `exc` when the database raised it (SQLite, asyncpg, or either wrapped by
    SQLAlchemy, or a socket error on the way to PostgreSQL), else None."""
    driver = _driver_error(exc)
    if driver is None:
        if isinstance(exc, OSError) and _raised_by_asyncpg(exc):
            return f"cannot connect to the database: {_first_line(exc)}"
        return None
    message = _WRAPPED_CLASS.sub("", _first_line(driver))
    missing = _no_schema(message)
    if missing is not None:
        return missing
    state = str(getattr(driver, "sqlstate", "") or "")
    if state.startswith(_CONNECT_STATES):
        return f"cannot connect to the database: {message}"
    return f"database error: {message}"


def missing_schema(exc: BaseException) -> str | None:
    """What to do, when `exc` says a table or view of bassi's is missing (a database bassi
    never set up, or one older than its views); else None."""
    driver = _driver_error(exc)
    return None if driver is None else _no_schema(_WRAPPED_CLASS.sub("", _first_line(driver)))


def _no_schema(message: str) -> str | None:
    for pattern in _MISSING_TABLE:
        match = pattern.match(message)
        if match:
            return (
                f"the database has no bassi schema (no table {match['name']!r}): "
                "run `bassi db upgrade`"
            )
    return None


def _driver_error(exc: BaseException) -> BaseException | None:
    """The driver's own error behind `exc` (following SQLAlchemy's `orig` and `__cause__`)."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    asyncpg = sys.modules.get("asyncpg")
    wrapped: BaseException | None = None
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlite3.Error):
            return current
        if asyncpg is not None and isinstance(
            current, asyncpg.PostgresError | asyncpg.InterfaceError
        ):
            found: BaseException = current
            return found
        if sa_exc is not None and isinstance(current, sa_exc.DBAPIError):
            wrapped = wrapped or current.orig
            current = current.orig
        else:
            current = current.__cause__
    return wrapped


def _raised_by_asyncpg(exc: BaseException) -> bool:
    return any(
        frame.f_globals.get("__name__", "").startswith("asyncpg")
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
