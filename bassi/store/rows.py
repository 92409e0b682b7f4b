"""What every event-log backend shares, free of any database driver: rows, staging, retries.

A backend commits a batch of `Group`s in one transaction. Inside it, under the write lock, it
reads each session's summary row and the log's last position, calls `stage_groups` to assign
`seq` and `position` (or to reject a group with `ConcurrencyError`), inserts `event_row`s and
upserts `summary_rows`. When an insert hits the event_id constraint it reads the stored events
with those ids and calls `match_retries`, which accepts an exact retry and rejects a partial one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any, Protocol

from pydantic import ValidationError

from bassi import events as ev
from bassi.errors import (
    ConcurrencyError,
    EventDecodeError,
    IdempotencyError,
    InvalidEventError,
)
from bassi.store.readmodel import SessionSummary, summarize

COLUMNS = ("position", "event_id", "session_id", "seq", "run_id", "type", "v", "recorded_at")
"""The envelope columns of `events`, in the order rows are read and written (payload last)."""

SUMMARY_COLUMNS: tuple[str, ...] = SessionSummary.__slots__

IN_CHUNK = 500
"""Ids per `IN (...)` list: far below SQLite's bound-parameter limit."""

_w = encode_basestring


WireRow = tuple[int, int, str]
"""(position, seq, wire JSON) of one committed event: what `read_wire` returns."""


class RetryWithIdCheck(Exception):
    """An insert hit the event_id constraint: redo the batch resolving idempotent retries."""


@dataclass(slots=True)
class Group:
    """The events of one append call: committed together or not at all."""

    events: list[ev.Event]
    expected_seq: int | None = None
    """When set, the session's last seq must be exactly this before the group."""
    committed: list[ev.Event] = field(default_factory=list)
    error: Exception | None = None


class EventLog(Protocol):
    """What the event store and the CLI need of a backend (`SqliteEventLog`, `SqlEventLog`)."""

    url: str
    dialect: str

    async def ensure_schema(self) -> None: ...
    async def claim_ownership(self) -> bool: ...
    async def release_ownership(self) -> None: ...
    async def lock_run(self, session_id: str) -> bool: ...
    async def unlock_run(self, session_id: str) -> None: ...
    async def close(self) -> None: ...
    async def commit(self, groups: Sequence[Group], heads: Mapping[str, int]) -> None: ...
    async def read(
        self,
        *,
        session_id: str | None = None,
        run_id: str | None = None,
        types: Iterable[str] | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[ev.Event]: ...
    async def read_wire(
        self,
        *,
        session_id: str | None = None,
        run_id: str | None = None,
        types: Iterable[str] | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[WireRow]: ...
    async def last_seq(self, session_id: str) -> int: ...
    async def last_position(self) -> int: ...
    async def sessions(self, session_id: str | None = None) -> list[SessionSummary]: ...
    async def rebuild_sessions(self) -> int: ...
    async def execute_raw(self, sql: str) -> None: ...
    async def pragmas(self) -> dict[str, Any]: ...


def known_types(types: Iterable[str]) -> list[str]:
    """The event types a read asks for, sorted; an unknown name fails and is named."""
    wanted = sorted(set(types))
    unknown = [name for name in wanted if name not in ev.EVENT_TYPES]
    if unknown:
        raise EventDecodeError(f"unknown event type {unknown[0]!r}")
    return wanted


def row_to_event(row: Sequence[Any]) -> ev.Event:
    """An event from a row of `COLUMNS` + payload (payload as JSON text or already decoded)."""
    position, type_, v, payload = row[0], row[5], row[6], row[8]
    if type_ not in ev.EVENT_TYPES:
        raise EventDecodeError(f"unknown event type {type_!r} at position {position}")
    if v < ev.CURRENT_VERSION[type_] or not isinstance(payload, str):
        data = json.loads(payload) if isinstance(payload, str) else dict(payload)
        data.update(zip(COLUMNS, row[:8], strict=True))
        return ev.decode(data)
    # Fast path: the envelope spliced into the payload text, parsed once by pydantic.
    try:
        return ev.EVENT_TYPES[type_].model_validate_json(_spliced(row))  # type: ignore[return-value]
    except ValidationError as exc:
        raise EventDecodeError(f"invalid {type_} event at position {position}: {exc}") from exc


def row_to_wire(row: Sequence[Any]) -> WireRow:
    """A row of `COLUMNS` + payload as (position, seq, the event's wire JSON), without building
    the typed event: what a stream catching up from the log sends as it is.

    The text is what `row_to_event(row).model_dump_json()` returns (byte for byte for a row
    `SqliteEventLog` wrote, equal as JSON otherwise) at a fraction of the cost, the stored
    payload being one only this store writes. A row of an older schema version is upcast
    through the typed path; so is a payload the driver already decoded, and one that does not
    look like a JSON object, to fail there with a clear error.
    """
    position, seq, type_, v, payload = row[0], row[3], row[5], row[6], row[8]
    if type_ not in ev.EVENT_TYPES:
        raise EventDecodeError(f"unknown event type {type_!r} at position {position}")
    body = payload.strip() if isinstance(payload, str) else ""
    if v < ev.CURRENT_VERSION[type_] or body[:1] != "{" or body[-1:] != "}":
        return position, seq, row_to_event(row).model_dump_json()
    return position, seq, _spliced(row)


def _spliced(row: Sequence[Any]) -> str:
    """The row's payload text with the envelope spliced in front, in the models' field order
    and spelling: the event's wire JSON."""
    position, event_id, session_id, seq, run_id, type_, v, recorded_at, payload = row
    if recorded_at.endswith(".000000Z"):  # pydantic leaves out a zero fraction
        recorded_at = recorded_at[:-8] + "Z"
    head = (
        f'{{"type":"{type_}","event_id":{_w(event_id)},"session_id":{_w(session_id)},'
        f'"run_id":{"null" if run_id is None else _w(run_id)},"seq":{seq},'
        f'"position":{position},"recorded_at":"{recorded_at}","v":{v}'
    )
    body = payload.strip()
    return head + ("}" if body == "{}" else "," + body[1:])


def event_row(event: ev.Event) -> tuple[Any, ...]:
    """The `events` row of a staged event: `COLUMNS` + the payload as JSON text.

    `InvalidEventError` if the payload holds text UTF-8 cannot encode (a lone surrogate); the
    backends refuse such an envelope field as they bind it.
    """
    try:
        payload = event.model_dump_json(exclude=ev.ENVELOPE_FIELDS)
    except ValueError as exc:  # pydantic's serialization error
        raise InvalidEventError(f"a {event.type} event cannot be stored: {exc}") from None
    return (
        event.position,
        event.event_id,
        event.session_id,
        event.seq,
        event.run_id,
        event.type,
        event.v,
        ev.format_time(event.recorded_at),
        payload,
    )


def stamped(event: ev.Event, seq: int, position: int) -> ev.Event:
    """The event with its seq and position: what `model_copy(update=...)` does, at a third of
    the cost (the hot path of every append)."""
    cls = type(event)
    out = cls.__new__(cls)
    fields = dict(event.__dict__)
    fields["seq"] = seq
    fields["position"] = position
    object.__setattr__(out, "__dict__", fields)
    object.__setattr__(out, "__pydantic_fields_set__", event.__pydantic_fields_set__)
    object.__setattr__(out, "__pydantic_extra__", None)
    object.__setattr__(out, "__pydantic_private__", None)
    return out


def stage_groups(
    groups: Sequence[Group],
    summaries: Mapping[str, SessionSummary],
    heads: Mapping[str, int],
    position: int,
) -> list[ev.Event]:
    """Assign seq and position to every group that can commit; returns the rows to insert.

    Fills `group.committed` or `group.error` (ConcurrencyError). `heads` holds the last seq the
    caller's process knows for a session; a database head that differs means another writer
    appended, and that group conflicts. `position` is the log's last position.
    """
    last_seq = {sid: s.last_seq for sid, s in summaries.items()}
    known = dict(heads)
    rows: list[ev.Event] = []
    for group in groups:
        staged, error = _stage(group, last_seq, known, position)
        if error is not None:
            group.error = error
            continue
        for event in staged:
            last_seq[event.session_id] = event.seq
            if event.session_id in known:
                known[event.session_id] = event.seq
        position += len(staged)
        group.committed = staged
        rows.extend(staged)
    return rows


def _stage(
    group: Group, last_seq: Mapping[str, int], heads: Mapping[str, int], position: int
) -> tuple[list[ev.Event], Exception | None]:
    staged: list[ev.Event] = []
    checked: set[str] = set()
    local = dict(last_seq)
    for item in group.events:
        sid = item.session_id
        base = local.get(sid, 0)
        if sid not in checked:
            checked.add(sid)
            known = heads.get(sid)
            if known is not None and known != base:
                return [], ConcurrencyError(
                    f"session {sid} was changed by another process since this one read it "
                    f"(expected seq {known}, found {base}); try again"
                )
            if group.expected_seq is not None and group.expected_seq != base:
                return [], ConcurrencyError(
                    f"session {sid} is at seq {base}, expected {group.expected_seq}"
                )
        position += 1
        local[sid] = base + 1
        staged.append(stamped(item, base + 1, position))
    return staged, None


def summary_rows(
    before: Mapping[str, SessionSummary], rows: Iterable[ev.Event]
) -> list[dict[str, Any]]:
    """The `sessions` rows after the staged `rows`, one per session they touch."""
    by_session: dict[str, list[ev.Event]] = {}
    for row in rows:
        by_session.setdefault(row.session_id, []).append(row)
    return [summarize(before.get(sid), batch).as_row() for sid, batch in by_session.items()]


def chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    """`items` in slices of at most `IN_CHUNK`, for `IN (...)` lists."""
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


def match_retries(groups: Sequence[Group], found: Mapping[str, ev.Event]) -> None:
    """Resolve groups whose event_ids are already stored (`found`: event_id -> stored event).

    An exact retry gets the stored events as `committed` (nothing is written again); a group
    that matches only in part, or repeats an event_id, gets `IdempotencyError`.
    """
    seen: set[str] = set()
    for group in groups:
        group_ids = [e.event_id for e in group.events]
        if len(set(group_ids)) != len(group_ids) or seen & set(group_ids):
            group.error = IdempotencyError("an append repeats an event_id within one batch")
            continue
        seen.update(group_ids)
        if not found:
            continue
        hits = [found.get(e.event_id) for e in group.events]
        if all(h is None for h in hits):
            continue
        if all(
            h is not None and _same_event(h, e) for h, e in zip(hits, group.events, strict=True)
        ):
            group.committed = [h for h in hits if h is not None]
        else:
            group.error = IdempotencyError(
                "retried events match committed events only in part "
                f"({sum(h is not None for h in hits)} of {len(hits)} event_ids already stored)"
            )


def _same_event(stored: ev.Event, retried: ev.Event) -> bool:
    return (
        stored.session_id == retried.session_id
        and stored.type == retried.type
        and stored.payload() == retried.payload()
    )
