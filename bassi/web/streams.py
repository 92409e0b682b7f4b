"""Live event streams of one session: a WebSocket (both ways) and Server-Sent Events.

Both start from a cursor (`?after=N`, or SSE's Last-Event-ID), send every committed event
after it, then follow live. All the streams of a session share one `Feed`: one drop-mode
subscriber of the store, whose events are serialized once into a bounded window that each
stream reads at its own pace. A slow client never slows the agent: it falls out of the window,
reads what it missed from the log and rejoins, so it still sees every event exactly once, in
order. Events another process appends to the session (`bassi run --session` beside the daemon)
are never published here; the feed looks at the log's head every `log_poll` seconds, and
streams read such events from the log.

WebSocket frames from the server are JSON text: an event in the wire format (it has `seq` and
`event_id`), `{"type": "ping"}` when nothing happened for a while, or a `reply` to a command.
With `?batch=1` every event frame is instead a JSON array of one or more consecutive events,
in order (pings and replies stay objects): fewer, larger frames for clients that keep up with
fast streams. The client may send `{"type": "prompt", "content"}`, `{"type": "cancel",
"mode"?}`, `{"type": "approval", "tool_call_id", "decision", "always"?, "reason"?}` and
`{"type": "ping"}`; each may carry an `id` that its reply repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.background import BackgroundTask
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from bassi import events as ev
from bassi.errors import BassiError, ConfigError
from bassi.events import MAX_SEQ
from bassi.store.subscription import Subscription
from bassi.web.api import WEB_USER, Approval, check_prompt_size, decide
from bassi.web.context import Context, WebContext, web_context
from bassi.web.errors import deny_websocket, describe, validation_message

log = logging.getLogger(__name__)

_WIRE_CACHE: OrderedDict[str, str] = OrderedDict()
_WIRE_CACHE_SIZE = 4096


def wire_json(event: ev.Event) -> str:
    """The event's wire JSON, serialized once however many streams send it.

    Every live stream receives the same committed event; dumping it per client cost the agent
    most of its rate with 50 clients. Only committed events (with a position) are cached,
    keyed by event_id, which no two events share, in any database.
    """
    if event.position is None:
        return event.model_dump_json()
    text = _WIRE_CACHE.get(event.event_id)
    if text is None:
        text = _WIRE_CACHE[event.event_id] = event.model_dump_json()
        if len(_WIRE_CACHE) > _WIRE_CACHE_SIZE:
            _WIRE_CACHE.popitem(last=False)
    return text


router = APIRouter(tags=["streams"])

GOING_AWAY = 1001
"""Close code sent when the server shuts down; clients reconnect from their last seq."""


# --- commands a WebSocket client may send --------------------------------------------------


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | int | None = None
    """Echoed in the reply, so a client can match replies to commands."""


class PromptCommand(_Command):
    type: Literal["prompt"]
    content: str = Field(min_length=1, pattern=r"\S")


class CancelCommand(_Command):
    type: Literal["cancel"]
    mode: Literal["immediate", "after_turn"] = "immediate"
    reason: str = ""


class ApprovalCommand(_Command):
    type: Literal["approval"]
    tool_call_id: str
    decision: Literal["allow", "deny"]
    always: bool = False
    reason: str = ""


class PingCommand(_Command):
    type: Literal["ping"]


Command = Annotated[
    PromptCommand | CancelCommand | ApprovalCommand | PingCommand, Field(discriminator="type")
]
_COMMANDS: TypeAdapter[Command] = TypeAdapter(Command)
_COMMAND_TYPES = frozenset(
    get_args(kind.model_fields["type"].annotation)[0]
    for kind in (PromptCommand, CancelCommand, ApprovalCommand, PingCommand)
)


def _claimed(text: str) -> dict[str, Any]:
    """The `id` and command type an invalid command carries, so that its error reply still
    says which command it answers: whatever of the two the text has, as a JSON object."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to read back
        return {}
    if not isinstance(data, dict):
        return {}
    claimed: dict[str, Any] = {}
    if isinstance(data.get("id"), str | int) and not isinstance(data["id"], bool):
        claimed["id"] = data["id"]
    if isinstance(data.get("type"), str) and data["type"] in _COMMAND_TYPES:
        claimed["command"] = data["type"]
    return claimed


# --- shared plumbing -----------------------------------------------------------------------

_LOG_PAGE = 500
"""Events per read of the log, for a stream that starts or falls behind its session's feed."""

_FEED_QUEUE = 10_000
"""The feed's own subscriber queue: a whole group commit fits, so the feed rarely falls behind."""

_FRAMES_PER_STEP = 16
"""One-event frames a WebSocket sends before it lets the loop run the agent and other streams."""

BATCH_EVENTS = 256
"""At most this many events in one batch frame (WebSocket `?batch=1`) or one SSE write."""

BATCH_BYTES = 256 * 1024
"""A batch frame ends once it holds this much JSON (a single larger event is its own frame)."""


class Feed:
    """One session's committed events, serialized once and shared by all its open streams.

    However many clients watch a session, the store has one subscriber for it, so a commit
    publishes each event once, and each event is dumped to JSON once. The feed keeps the wire
    JSON of recent events in a window that every stream reads at its own cursor. The window
    keeps what live streams still need, at most `capacity` (the context's `queue_size`) events
    behind the newest; a stream further behind than that (a stalled client) has fallen out of
    it: it costs the agent nothing, and reads what it missed from the log once it reads again.
    """

    def __init__(self, context: WebContext, session_id: str) -> None:
        self.context = context
        self.session_id = session_id
        self.capacity = max(1, context.queue_size)
        self.subscription: Subscription = context.manager.store.subscribe(
            session_id=session_id,
            after=None,  # live from now; streams read anything older from the log
            mode="drop",
            maxsize=max(self.capacity, _FEED_QUEUE),
            name=f"streams:{session_id}",
        )
        self.base = self.subscription.cursor
        """Every event up to this seq has left the window (or was committed before the feed)."""
        self.streams: set[_Stream] = set()
        self.ended = False
        """The store stopped publishing (it closed, or the feed was closed)."""
        self._seqs: list[int] = []
        self._texts: list[str] = []
        self._start = 0  # the window is _seqs[_start:], _texts[_start:]
        self._loop = asyncio.get_running_loop()
        self.changed: asyncio.Future[None] = self._loop.create_future()
        """Resolved (and replaced) when events arrive or the feed ends."""
        self._notifying = False
        self._closed = False
        self.log_head = 0
        """The session's last seq in the log when it was last looked at (see `_watch`)."""
        self._task = asyncio.create_task(self._pump(), name=f"feed:{session_id}")
        self._watcher = asyncio.create_task(self._watch(), name=f"feed-watch:{session_id}")

    async def _pump(self) -> None:
        try:
            # The subscription returns queued events without suspending, so one step of this
            # task takes a whole published batch and the streams are woken once for it.
            async for event in self.subscription:
                self._seqs.append(event.seq)
                self._texts.append(wire_json(event))
                if not self._notifying:
                    self._notifying = True
                    self._loop.call_soon(self._notify)
        except Exception:
            log.exception("the live feed of session %s failed; its streams end", self.session_id)
        finally:
            self.ended = True
            self._notify()

    async def _watch(self) -> None:
        """Look at the log now and then for events another process appended to the session.

        The store publishes only what this process commits; a run that `bassi run --session`
        drives beside the daemon would otherwise reach the streams only when this process
        next commits something for the session. Streams behind `log_head` read the log.
        """
        log_ = self.context.manager.store.log
        while not self.ended:
            await asyncio.sleep(self.context.log_poll)
            try:
                head = await log_.last_seq(self.session_id)
            except Exception as exc:  # the store's own failures surface elsewhere
                log.debug("could not look at the log of session %s: %s", self.session_id, exc)
                continue
            newest = self._seqs[-1] if len(self._seqs) > self._start else self.base
            if head > max(newest, self.log_head):
                self.log_head = head
                self._notify()

    def _notify(self) -> None:
        self._notifying = False
        self._trim()
        changed, self.changed = self.changed, self._loop.create_future()
        if not changed.done():
            changed.set_result(None)

    def _trim(self) -> None:
        """Forget what every live stream has taken, and anything beyond `capacity`."""
        end = len(self._seqs)
        floor = min((s.cursor for s in self.streams if s.live), default=None)
        cut = end if floor is None else bisect_right(self._seqs, floor, self._start, end)
        cut = max(cut, end - self.capacity)
        if cut <= self._start:
            return
        self.base = self._seqs[cut - 1]
        self._start = cut
        if cut >= 4096 and 2 * cut >= end:
            del self._seqs[:cut], self._texts[:cut]
            self._start = 0

    def since(self, cursor: int, limit: int) -> tuple[list[int], list[str]] | None:
        """Up to `limit` events after `cursor`; None when the window no longer reaches it, or
        skips seqs (events another process appended, which this one never published)."""
        if cursor < self.base:
            return None
        i = bisect_right(self._seqs, cursor, self._start)
        j = min(i + limit, len(self._seqs))
        if i < j and self._seqs[i] != cursor + 1:
            return None
        return self._seqs[i:j], self._texts[i:j]

    def holds(self, seq: int) -> bool:
        """Whether the window holds `seq` or starts before it (so a stream can join it there)."""
        return self._start < len(self._seqs) and self._seqs[self._start] <= seq

    def close(self) -> None:
        if self._closed:
            return
        self._closed = self.ended = True
        self.subscription.close()
        self._task.cancel()
        self._watcher.cancel()
        self.context.metrics.retired_drops += self.subscription.drops
        if self.context.feeds.get(self.session_id) is self:
            del self.context.feeds[self.session_id]


class _Stream:
    """One open stream: a cursor into its session's feed, counted in the metrics until it closes.

    It starts by reading the log after its cursor and joins the feed's window once it has
    caught up; if it falls out of the window it reads the log again. Either way it sees every
    event once, in order.
    """

    def __init__(self, context: WebContext, session_id: str, after: int, kind: str) -> None:
        self.context = context
        self.session_id = session_id
        self.kind = kind
        self.cursor = after
        self.live = False
        """Reading the feed's window (else the log); a live stream's cursor holds the window."""
        self._fell_behind = False
        feed = context.feeds.get(session_id)
        if feed is None or feed.ended:
            feed = context.feeds[session_id] = Feed(context, session_id)
        feed.streams.add(self)
        self.feed = feed
        self._closed = False
        context.metrics.streams.labels(kind).inc()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.live = False
        self.feed.streams.discard(self)
        if not self.feed.streams:
            self.feed.close()
        self.context.metrics.streams.labels(self.kind).dec()

    async def chunks(self, limit: int) -> AsyncIterator[tuple[list[int], list[str]] | None]:
        """Events after the cursor as (seqs, wire JSON), at most `limit` at a time, in order;
        None after `ping_interval` seconds of quiet (a keepalive).

        Ends when the store closes or the server begins to shut down. After each chunk it lets
        the loop run (the agent, other streams), so no client holds the loop for long.
        """
        feed, draining = self.feed, self.context.draining
        store = self.context.manager.store
        drain: asyncio.Future[Any] = asyncio.ensure_future(draining.wait())
        try:
            while not draining.is_set():
                if not self.live:
                    if feed.ended:
                        return
                    # Sent as stored: the log's wire JSON, no typed event built and dumped.
                    page = await store.query_wire(
                        session_id=self.session_id, after=self.cursor, limit=_LOG_PAGE
                    )
                    if self._fell_behind:  # live events this stream missed, read from the log
                        self.context.metrics.retired_drops += len(page)
                    last = page[-1][1] if page else self.cursor
                    if len(page) < _LOG_PAGE or feed.holds(last + 1):
                        self.live, self._fell_behind = True, False
                    for start in range(0, len(page), limit):
                        part = page[start : start + limit]
                        self.cursor = part[-1][1]
                        yield [seq for _, seq, _ in part], [text for _, _, text in part]
                        await asyncio.sleep(0)
                    continue
                taken = feed.since(self.cursor, limit)
                if taken is None:  # out of the window, or a hole in it: the log has the rest
                    self.live, self._fell_behind = False, self.cursor < feed.base
                    continue
                seqs, texts = taken
                if seqs:
                    self.cursor = seqs[-1]
                    yield seqs, texts
                    await asyncio.sleep(0)
                    continue
                if feed.log_head > self.cursor:  # another process appended: the log has it
                    self.live = False
                    continue
                if feed.ended:
                    return
                wake: set[asyncio.Future[Any]] = {feed.changed, drain}
                done, _ = await asyncio.wait(
                    wake,
                    timeout=self.context.ping_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    yield None
        finally:
            drain.cancel()
            with contextlib.suppress(BaseException):
                await drain


def batch_frames(texts: list[str]) -> Iterator[str]:
    """Batch frames (JSON arrays of events, in order) of at most BATCH_BYTES each."""
    start, size = 0, 0
    for n, text in enumerate(texts):
        if n > start and size + len(text) > BATCH_BYTES:
            yield "[" + ",".join(texts[start:n]) + "]"
            start, size = n, 0
        size += len(text) + 1
    if start < len(texts):
        yield "[" + ",".join(texts[start:]) + "]"


def parse_flag(value: str | None, name: str) -> bool:
    """A boolean query parameter: absent, `0` or `false` is off; `1` or `true` is on."""
    if value is None or value.lower() in ("", "0", "false"):
        return False
    if value.lower() in ("1", "true"):
        return True
    raise ConfigError(f"{name} must be 0, 1, true or false, not {value!r}")


def parse_cursor(value: str | None, name: str) -> int:
    """A seq cursor from a query string or header: an integer from 0 to `MAX_SEQ` (422
    otherwise)."""
    if value is None or value == "":
        return 0
    try:
        cursor = int(value)
    except ValueError:
        cursor = -1
    if not 0 <= cursor <= MAX_SEQ:
        raise ConfigError(f"{name} must be an integer from 0 to {MAX_SEQ}, not {value!r}")
    return cursor


# --- WebSocket -----------------------------------------------------------------------------


@router.websocket("/api/sessions/{session_id}/ws")
async def session_socket(websocket: WebSocket, session_id: str) -> None:
    """Committed events after `?after=N`, then live; takes prompt, cancel and approval commands."""
    context = web_context(websocket)
    try:
        after = parse_cursor(websocket.query_params.get("after"), "after")
        batch = parse_flag(websocket.query_params.get("batch"), "batch")
        await context.manager.get(session_id)
    except BassiError as exc:
        await deny_websocket(websocket, *describe(exc))
        return
    await websocket.accept()
    stream = _Stream(context, session_id, after, "websocket")
    lock = asyncio.Lock()

    async def send(text: str) -> None:
        async with lock:
            await websocket.send_text(text)

    async def forward() -> None:
        async for chunk in stream.chunks(BATCH_EVENTS if batch else _FRAMES_PER_STEP):
            if chunk is None:
                await send('{"type":"ping"}')
                continue
            async with lock:  # one acquire per chunk; a command's reply waits for it
                for frame in batch_frames(chunk[1]) if batch else chunk[1]:
                    await websocket.send_text(frame)

    async def listen() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            reply = await _command(session_id, message.get("text"), context)
            await send(json.dumps(reply))

    tasks = [asyncio.create_task(forward()), asyncio.create_task(listen())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        stream.close()
    if tasks[0] in done and websocket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await websocket.close(code=GOING_AWAY, reason="server shutting down")


async def _command(session_id: str, text: str | None, context: WebContext) -> dict[str, Any]:
    """Carry out one client command; the reply says whether it worked and, if not, why."""
    reply: dict[str, Any] = {"type": "reply", "id": None, "command": None}
    try:
        if text is None:
            raise ConfigError("commands are JSON text frames")
        try:
            command = _COMMANDS.validate_json(text)
        except ValidationError as exc:
            reply.update(_claimed(text))
            raise ConfigError(f"invalid command: {validation_message(exc.errors())}") from None
        reply.update(id=command.id, command=command.type)
        # The session as the log has it now (another process may have written to it since
        # this stream opened), never an object loaded back then.
        session = await context.manager.get(session_id)
        match command:
            case PromptCommand():
                check_prompt_size(command.content, context.settings.max_prompt_bytes)
                reply["run_id"] = await session.prompt(command.content, user=WEB_USER)
            case CancelCommand():
                await session.cancel(command.mode, command.reason)
            case ApprovalCommand():
                decision = Approval(
                    decision=command.decision, always=command.always, reason=command.reason
                )
                await decide(session, command.tool_call_id, decision)
            case PingCommand():
                reply["type"] = "pong"
    except BassiError as exc:
        status, error_type, message = describe(exc)
        reply.update(ok=False, status=status, error={"type": error_type, "message": message})
        return reply
    reply["ok"] = True
    return reply


# --- Server-Sent Events --------------------------------------------------------------------


@router.get("/api/sessions/{session_id}/stream")
async def session_events(
    session_id: str,
    context: Context,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="Start after this seq.")
    ] = None,
    last_event_id: Annotated[
        str | None, Header(description="Set by a reconnecting EventSource.")
    ] = None,
) -> StreamingResponse:
    """SSE: `id:` is the seq; a reconnect with Last-Event-ID resumes right after it."""
    if last_event_id is not None and last_event_id.strip():
        cursor = parse_cursor(last_event_id.strip(), "Last-Event-ID")
    else:
        cursor = after or 0
    await context.manager.get(session_id)
    stream = _Stream(context, session_id, cursor, "sse")

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 1000\n\n"
            async for chunk in stream.chunks(BATCH_EVENTS):
                if chunk is None:
                    yield b": ping\n\n"
                else:
                    yield "".join(
                        f"id: {seq}\ndata: {text}\n\n" for seq, text in zip(*chunk, strict=True)
                    ).encode()
        finally:
            stream.close()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(stream.close),
    )
