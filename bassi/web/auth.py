"""Who may talk to the service: the token, the login cookie and the same-origin rule.

With a token configured every API call, stream and the UI need it, as `Authorization: Bearer
TOKEN` or as the HttpOnly cookie the login page sets. Independently of the token, a WebSocket
handshake or a state-changing request whose `Origin` is another site is refused: a web page
the user happens to visit must not drive their agent.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict
from starlette.requests import HTTPConnection
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from bassi.web.context import Context
from bassi.web.errors import deny_websocket, error_response

TOKEN_COOKIE = "bassi_token"
_OPEN_PATHS = frozenset({"/login", "/api/login", "/favicon.ico"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def presented_token(conn: HTTPConnection) -> str | None:
    """The token a request carries: the Bearer header first, then the login cookie."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return conn.cookies.get(TOKEN_COOKIE) or None


def token_matches(presented: str | None, token: str) -> bool:
    """Constant-time comparison, so timing does not leak the token."""
    return presented is not None and hmac.compare_digest(presented.encode(), token.encode())


def same_origin(conn: HTTPConnection) -> bool:
    """True when the request has no `Origin` (not a browser) or it names this very host."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    host = conn.headers.get("host", "").lower()
    parts = urlsplit(origin.lower())
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host


class Guard:
    """ASGI middleware enforcing the token and the same-origin rule on HTTP and WebSockets."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        problem = self._problem(conn, scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, error_type, message = problem
        if scope["type"] == "websocket":
            await deny_websocket(WebSocket(scope, receive, send), status, error_type, message)
            return
        if status == 401 and scope["path"] == "/":
            response: Response = RedirectResponse("/login", status_code=303)
        else:
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            response = error_response(status, error_type, message, headers)
        await response(scope, receive, send)

    def _problem(self, conn: HTTPConnection, scope: Scope) -> tuple[int, str, str] | None:
        checks_origin = scope["type"] == "websocket" or scope.get("method") not in _SAFE_METHODS
        if checks_origin and not same_origin(conn):
            origin = conn.headers.get("origin")
            return 403, "Forbidden", f"requests from origin {origin!r} are not allowed"
        path: str = scope["path"]
        if self.token is None or path in _OPEN_PATHS or path.startswith("/static/"):
            return None
        if token_matches(presented_token(conn), self.token):
            return None
        return (
            401,
            "Unauthorized",
            "this server needs a token: send 'Authorization: Bearer TOKEN' or log in at /login",
        )


class Login(BaseModel):
    """Body of `POST /api/login`."""

    model_config = ConfigDict(extra="forbid")

    token: str


router = APIRouter(prefix="/api", tags=["auth"])


@router.post("/login", status_code=204)
async def login(body: Login, context: Context) -> Response:
    """Trade the token for the HttpOnly cookie the UI and its WebSocket then carry."""
    token = context.settings.token
    if token is None:
        return Response(status_code=204)
    if not token_matches(body.token, token):
        return error_response(401, "Unauthorized", "wrong token")
    response = Response(status_code=204)
    response.set_cookie(TOKEN_COOKIE, body.token, httponly=True, samesite="strict", path="/")
    return response


@router.post("/logout", status_code=204)
async def logout() -> Response:
    """Forget the login cookie."""
    response = Response(status_code=204)
    response.delete_cookie(TOKEN_COOKIE, path="/", httponly=True, samesite="strict")
    return response
