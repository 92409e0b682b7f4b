"""The `sessions` read model: a summary row per session, folded from its events.

The writer applies `summarize` to each batch inside the transaction that inserts it, so the row
is never ahead of or behind the log; `bassi db rebuild` can recompute every row from `events`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bassi import events as ev


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One row of the `sessions` table."""

    session_id: str
    created_at: str
    updated_at: str
    title: str = ""
    model: str = ""
    status: str = "idle"
    last_seq: int = 0
    last_position: int = 0
    runs: int = 0
    current_run_id: str | None = None
    pending_approvals: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def as_row(self) -> dict[str, Any]:
        """Column name -> value."""
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> SessionSummary:
        """Build from a `sessions` row."""
        return cls(**{name: row[name] for name in cls.__slots__})


def _status(row: Mapping[str, Any]) -> str:
    if row["status"] == "ended":
        return "ended"
    if row["current_run_id"] is None:
        return "idle"
    return "awaiting_approval" if row["pending_approvals"] > 0 else "running"


def summarize(summary: SessionSummary | None, batch: Iterable[ev.Event]) -> SessionSummary:
    """The summary after `batch` (committed events of one session, in seq order)."""
    row: dict[str, Any] | None = None if summary is None else summary.as_row()
    last: ev.Event | None = None
    for event in batch:
        last = event
        if row is None:
            stamp = ev.format_time(event.recorded_at)
            row = SessionSummary(event.session_id, created_at=stamp, updated_at=stamp).as_row()
        row["last_seq"] = max(row["last_seq"], event.seq)
        row["last_position"] = max(row["last_position"], event.position or 0)
        match event:
            case ev.TokenDelta():
                continue  # the most common event changes nothing else
            case ev.SessionStarted():
                row.update(
                    title=event.title,
                    model=event.model,
                    created_at=ev.format_time(event.recorded_at),
                )
            case ev.ModelSwitched():
                row["model"] = event.model
            case ev.SessionEnded():
                row["status"] = "ended"
            case ev.PromptReceived():
                row["current_run_id"] = event.run_id
            case ev.RunStarted():
                row["current_run_id"] = event.run_id
                row["runs"] += 0 if event.resumed else 1
            case ev.PermissionRequested():
                row["pending_approvals"] += 1
            case ev.PermissionDecided():
                row["pending_approvals"] = max(0, row["pending_approvals"] - 1)
            case ev.MessageCompleted():
                usage = event.usage
                row["input_tokens"] += usage.input_tokens
                row["output_tokens"] += usage.output_tokens
                row["cache_read_tokens"] += usage.cache_read_tokens
                row["cache_write_tokens"] += usage.cache_write_tokens
            case ev.RunCompleted() | ev.RunCancelled() | ev.RunFailed() | ev.RunInterrupted():
                row["current_run_id"] = None
                row["pending_approvals"] = 0
            case _:
                pass
        row["status"] = _status(row)
    if row is None:
        raise ValueError("summarize needs a summary or at least one event")
    if last is not None:
        row["updated_at"] = ev.format_time(last.recorded_at)
    return SessionSummary.from_row(row)
