"""Live event streams of one session: a WebSocket (both ways) and Server-Sent Events.

Both start from a cursor (`?after=N`, or SSE's Last-Event-ID), send every committed event
after it, then follow live. Each stream is a drop-mode subscriber with a bounded queue: a slow
client never slows the agent; it falls behind, reads what it missed from the log and goes live
again, so it still sees every event exactly once, in order.

WebSocket frames from the server are JSON text: an event in the wire format (it has `seq` and
`event_id`), `{"type": "ping"}` when nothing happened for a while, or a `reply` to a command.
The client may send `{"type": "prompt", "content"}`, `{"type": "cancel", "mode"?}`,
`{"type": "approval", "tool_call_id", "decision", "always"?, "reason"?}` and `{"type": "ping"}`;
each may carry an `id` that its reply repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.background import BackgroundTask
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from bassi import events as ev
from bassi.errors import BassiError, ConfigError
from bassi.manager import Session
from bassi.store.subscription import Subscription
from bassi.web.api import WEB_USER, Approval, check_prompt_size, decide
from bassi.web.context import Context, WebContext, web_context
from bassi.web.errors import deny_websocket, describe, validation_message

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


# --- shared plumbing -----------------------------------------------------------------------


class _Stream:
    """One open stream's subscription, counted in the metrics until it closes."""

    def __init__(self, context: WebContext, session_id: str, after: int, kind: str) -> None:
        self.context = context
        self.kind = kind
        self.subscription: Subscription = context.manager.store.subscribe(
            session_id=session_id,
            after=after,
            mode="drop",
            maxsize=context.queue_size,
            name=f"{kind}:{session_id}",
        )
        self._closed = False
        context.metrics.streams.labels(kind).inc()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.subscription.close()
        self.context.metrics.streams.labels(self.kind).dec()
        self.context.metrics.retired_drops += self.subscription.drops

    async def events(self) -> AsyncIterator[ev.Event | None]:
        """Events as they come; None after `ping_interval` seconds of quiet (a keepalive).

        Ends when the store closes or the server begins to shut down.
        """
        subscription, draining = self.subscription, self.context.draining

        async def next_event() -> ev.Event:
            return await subscription.__anext__()

        pending = asyncio.ensure_future(next_event())
        drain = asyncio.ensure_future(draining.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {pending, drain},
                    timeout=self.context.ping_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if pending in done:
                    try:
                        event = pending.result()
                    except StopAsyncIteration:
                        return
                    yield event
                    pending = asyncio.ensure_future(next_event())
                elif drain in done:
                    return
                else:
                    yield None
        finally:
            for task in (pending, drain):
                task.cancel()
            for task in (pending, drain):
                with contextlib.suppress(BaseException):
                    await task


def parse_cursor(value: str | None, name: str) -> int:
    """A seq cursor from a query string or header: a non-negative integer (422 otherwise)."""
    if value is None or value == "":
        return 0
    try:
        cursor = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a non-negative integer, not {value!r}") from None
    if cursor < 0:
        raise ConfigError(f"{name} must be a non-negative integer, not {value!r}")
    return cursor


# --- WebSocket -----------------------------------------------------------------------------


@router.websocket("/api/sessions/{session_id}/ws")
async def session_socket(websocket: WebSocket, session_id: str) -> None:
    """Committed events after `?after=N`, then live; takes prompt, cancel and approval commands."""
    context = web_context(websocket)
    try:
        after = parse_cursor(websocket.query_params.get("after"), "after")
        session = await context.manager.get(session_id)
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
        async for event in stream.events():
            await send('{"type":"ping"}' if event is None else event.model_dump_json())

    async def listen() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            reply = await _command(session, message.get("text"), context)
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


async def _command(session: Session, text: str | None, context: WebContext) -> dict[str, Any]:
    """Carry out one client command; the reply says whether it worked and, if not, why."""
    reply: dict[str, Any] = {"type": "reply", "id": None, "command": None}
    try:
        if text is None:
            raise ConfigError("commands are JSON text frames")
        try:
            command = _COMMANDS.validate_json(text)
        except ValidationError as exc:
            raise ConfigError(f"invalid command: {validation_message(exc.errors())}") from None
        reply.update(id=command.id, command=command.type)
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
    after: Annotated[int | None, Query(ge=0, description="Start after this seq.")] = None,
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
            async for event in stream.events():
                if event is None:
                    yield b": ping\n\n"
                else:
                    yield f"id: {event.seq}\ndata: {event.model_dump_json()}\n\n".encode()
        finally:
            stream.close()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(stream.close),
    )
