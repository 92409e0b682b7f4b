"""A scripted HTTP/1.1 server on 127.0.0.1 for fake model providers.

Each incoming request is recorded and answered by the next scripted response in the queue:
a `Stream` (chunked SSE, one chunk per frame, optionally paused, split into tiny pieces, or
dropped before the terminating chunk), a `Reply` (a complete body with content-length,
optionally after a stall), or `Hangup` (close the connection without answering). A response may
also be a callable of the `Recorded` request. Before the queue is consulted, `check(request)`
may answer with an error (the providers' 400 for a broken conversation).

The server runs on the test's event loop (`async with server:`) or on its own thread
(`with server.in_thread():`) for tests that drive it from synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias


@dataclass(frozen=True)
class Pause:
    """Inside a `Stream`: wait this many seconds before the next frame."""

    seconds: float


@dataclass(frozen=True)
class Stream:
    """A streamed (chunked) response, SSE by default."""

    frames: Sequence[bytes | Pause]
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    interval: float = 0.0
    """Seconds between frames."""
    chunk_size: int | None = None
    """Split every frame into chunks of at most this many bytes."""
    ending: Literal["clean", "drop"] = "clean"
    """`drop` closes the socket without the terminating chunk (an incomplete body)."""
    content_type: str = "text/event-stream; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    """A complete response with a content-length body."""

    status: int
    body: bytes | Mapping[str, Any] = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    stall: float = 0.0
    """Seconds to wait before sending anything."""


@dataclass(frozen=True)
class Hangup:
    """Close the connection after reading the request, without any response."""


Response: TypeAlias = Stream | Reply | Hangup
Responder: TypeAlias = Response | Callable[["Recorded"], Response]


@dataclass
class Recorded:
    """One request the server received, and what became of its response."""

    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes
    received_at: float
    """`time.monotonic()` when the request was complete."""
    response: Response | None = None
    frames_sent: int = 0
    finished: bool = False
    """The whole response was sent."""
    disconnected_at: float | None = None
    """When the client closed the connection before the response was finished."""

    @property
    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body)

    @property
    def retry_count(self) -> int:
        """The SDK's `x-stainless-retry-count` (0 for a first attempt)."""
        return int(self.headers.get("x-stainless-retry-count", "0"))


class FakeServer:
    """A scripted HTTP server; see the module docstring."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.port = 0
        self._script: deque[Responder] = deque()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- scripting -----------------------------------------------------------------------

    def add(self, *responses: Responder) -> None:
        """Queue responses; each request takes the next one."""
        self._script.extend(responses)

    @property
    def pending(self) -> int:
        """Scripted responses not used yet."""
        return len(self._script)

    def check(self, request: Recorded) -> Response | None:
        """An error response for a request the real API would refuse, else None."""
        return None

    def unscripted(self, request: Recorded) -> Response:
        """The answer when the script is empty (an error that makes the test fail)."""
        return Reply(
            599,
            {
                "error": {
                    "type": "fake_error",
                    "message": "the fake server has no scripted response",
                }
            },
            headers={"x-should-retry": "false"},
        )

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every open connection."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[FakeServer]:
        """Run the server on an event loop of its own, in a daemon thread."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name="fake-provider", daemon=True)
        thread.start()
        ready.wait(5)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()

    async def wait_for(self, condition: Callable[[], bool], within: float = 2.0) -> bool:
        """Poll `condition` until it holds or `within` seconds pass; whether it held."""
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    # --- serving -------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        request = Recorded(method, path, headers, body, time.monotonic())
        self.requests.append(request)
        response = self.check(request)
        if response is None:
            responder = self._script.popleft() if self._script else self.unscripted(request)
            response = responder(request) if callable(responder) else responder
        request.response = response
        match response:
            case Hangup():
                return False
            case Reply():
                return await self._reply(response, request, writer)
            case Stream():
                return await self._stream(response, request, reader, writer)

    async def _reply(self, reply: Reply, request: Recorded, writer: asyncio.StreamWriter) -> bool:
        if reply.stall:
            await asyncio.sleep(reply.stall)
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        headers = {"content-type": "application/json", **reply.headers}
        headers["content-length"] = str(len(body))
        writer.write(_head(reply.status, headers) + body)
        await writer.drain()
        request.finished = True
        return True

    async def _stream(
        self,
        stream: Stream,
        request: Recorded,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        headers = {"content-type": stream.content_type, **stream.headers}
        headers["transfer-encoding"] = "chunked"
        writer.write(_head(stream.status, headers))
        await writer.drain()

        async def gone(seconds: float) -> bool:
            """Wait, watching for the client to hang up; whether it did."""
            deadline = time.monotonic() + seconds
            while True:
                if reader.at_eof() or writer.is_closing():
                    request.disconnected_at = time.monotonic()
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                await asyncio.sleep(min(left, 0.005))

        for i, frame in enumerate(stream.frames):
            wait = frame.seconds if isinstance(frame, Pause) else (stream.interval if i else 0.0)
            if await gone(wait):
                return False
            if isinstance(frame, Pause):
                continue
            size = stream.chunk_size or len(frame) or 1
            try:
                for start in range(0, len(frame), size):
                    piece = frame[start : start + size]
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
            except ConnectionError:
                request.disconnected_at = time.monotonic()
                return False
            request.frames_sent += 1
        if stream.ending == "drop":
            await writer.drain()
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        request.finished = True
        return True


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def sse(data: str | Mapping[str, Any], event: str | None = None) -> bytes:
    """One SSE frame: optional `event:` line, a `data:` line, a blank line."""
    text = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "").encode() + f"data: {text}\n\n".encode()
