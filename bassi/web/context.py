"""What every route needs: the session manager, settings, metrics and the drain signal."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from bassi.manager import SessionManager
from bassi.settings import Settings
from bassi.web.metrics import Metrics

if TYPE_CHECKING:
    from bassi.web.streams import Feed


@dataclass(slots=True)
class WebContext:
    """Shared state of one running app, created by the lifespan and kept on `app.state.web`."""

    manager: SessionManager
    settings: Settings
    metrics: Metrics
    ping_interval: float = 15.0
    """Seconds between keepalives on the WebSocket (`{"type": "ping"}`) and SSE (a comment)."""
    queue_size: int = 10_000
    """How far (in events) a stream may fall behind its session's live feed before it reads
    what it missed from the log instead."""
    log_poll: float = 1.0
    """Seconds between looks at the log of each watched session, for events another process
    appended (`bassi run --session` beside the daemon), which this one never publishes."""
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the server begins to shut down: open streams end so shutdown is not held up."""
    loop: asyncio.AbstractEventLoop | None = None
    feeds: dict[str, Feed] = field(default_factory=dict)
    """The live feed of each session with open streams (see `bassi.web.streams`)."""

    def drain(self) -> None:
        """Ask open streams to end; safe to call from a signal handler or another thread."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.draining.set)


def web_context(conn: HTTPConnection) -> WebContext:
    """The app's context (a FastAPI dependency for requests and WebSockets alike)."""
    context: WebContext = conn.app.state.web
    return context


Context = Annotated[WebContext, Depends(web_context)]
"""A route parameter of this type receives the app's context."""
