"""The composition root of the web interface: the FastAPI app around a SessionManager.

The lifespan opens the manager (store, migrations, recovery) unless one is handed in, and on
shutdown ends the open streams and closes it, which flushes the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bassi import __version__
from bassi.manager import SessionManager
from bassi.settings import Settings
from bassi.web import api, auth, errors, streams
from bassi.web.context import WebContext
from bassi.web.limits import BodyLimit
from bassi.web.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"

# Model output is rendered as sanitized markdown; this policy is the second line of defence:
# no inline script, and nothing loaded from anywhere but this server.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
_SECURITY_HEADERS = {
    "content-security-policy": _CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class SecurityHeaders:
    """ASGI middleware adding the security headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: Settings,
    *,
    manager: SessionManager | None = None,
    ping_interval: float = 15.0,
    stream_queue_size: int = 10_000,
) -> FastAPI:
    """The bassi web app. With `manager` the caller owns it; otherwise the lifespan does."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = manager is None
        active = manager or await SessionManager.connect(settings=settings)
        metrics = Metrics(active)
        context = WebContext(
            manager=active,
            settings=settings,
            metrics=metrics,
            ping_interval=ping_interval,
            queue_size=stream_queue_size,
            loop=asyncio.get_running_loop(),
        )
        app.state.web = context
        active.store.commit_listeners.append(metrics.observe_commit)
        for report in active.recovery:
            log.info(
                "recovered session %s: run %s %s, %d tool call(s) closed as interrupted",
                report.session_id,
                report.run_id,
                "continues" if report.action == "continue" else "marked interrupted",
                len(report.interrupted_tool_calls),
            )
        try:
            yield
        finally:
            context.draining.set()
            if metrics.observe_commit in active.store.commit_listeners:
                active.store.commit_listeners.remove(metrics.observe_commit)
            if owned:
                await active.close()

    app = FastAPI(
        title="bassi",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # the interactive docs load scripts from a CDN
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    errors.install(app)
    app.include_router(auth.router)
    app.include_router(api.router)
    app.include_router(streams.router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        context: WebContext = app.state.web
        return Response(await context.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/login", include_in_schema=False)
    async def login_page() -> FileResponse:
        return FileResponse(STATIC / "login.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # Outermost last: headers on everything, then the body limit, then the token and origin.
    app.add_middleware(auth.Guard, token=settings.token)
    app.add_middleware(BodyLimit, max_bytes=8 * settings.max_prompt_bytes + 65_536)
    app.add_middleware(SecurityHeaders)
    return app
