"""Reading the log from the command line: open it, and find a session by id or id prefix."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from bassi.cli.app import UsageError
from bassi.errors import SessionNotFound

if TYPE_CHECKING:  # importing the store costs time: only commands that read pay it
    from bassi.manager import Session, SessionManager
    from bassi.store.readmodel import SessionSummary
    from bassi.store.rows import EventLog


@contextlib.asynccontextmanager
async def reading(url: str) -> AsyncIterator[EventLog]:
    """The event log at `url`, for reading; closed on exit."""
    from bassi.store import open_log

    log = open_log(url)
    try:
        yield log
    finally:
        await log.close()


async def find_session(log: EventLog, given: str) -> SessionSummary:
    """The session whose id is `given`, or the only one starting with it (at least 4 characters)."""
    exact = await log.sessions(given)
    if exact:
        return exact[0]
    if len(given) >= 4:
        matches = [s for s in await log.sessions() if s.session_id.startswith(given)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UsageError(f"session prefix {given!r} matches {len(matches)} sessions")
    raise SessionNotFound(given)


async def open_session(manager: SessionManager, given: str) -> tuple[Session, str | None]:
    """The session `given` names, ready for a prompt, and a line to show when a run that a crash
    cut short had to be accounted for first (marked interrupted; see `recover_session`)."""
    summary = await find_session(manager.store.log, given)
    session = await manager.get(summary.session_id)
    report = await manager.recover_session(session.id)
    if report is None:
        return session, None
    calls = len(report.interrupted_tool_calls)
    note = (
        f"run {report.run_id[:8]} of this session was cut short (did a process stop mid-run?):"
        f" marked interrupted, {calls} tool call(s) closed"
    )
    return session, note
