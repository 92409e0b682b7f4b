"""bassi's errors as HTTP answers: one JSON shape, `{"error": {"type", "message"}}`, and a status.

SessionNotFound and ApprovalNotFound are 404, InvalidStateError 409, PayloadTooLarge 413,
ConfigError, ToolInputError, InvalidInput, InvalidEventError and invalid bodies 422, malformed
JSON 400, anything else 500 (with a generic message: the traceback goes to the log, never to
the client).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bassi.errors import (
    ApprovalNotFound,
    BassiError,
    ConcurrencyError,
    ConfigError,
    EventDecodeError,
    InvalidEventError,
    InvalidInput,
    InvalidStateError,
    PayloadTooLarge,
    PersistenceError,
    SessionNotFound,
    ToolInputError,
)

log = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (SessionNotFound, 404),
    (ApprovalNotFound, 404),
    (InvalidStateError, 409),
    (ConcurrencyError, 409),  # another process is driving this session
    (PayloadTooLarge, 413),
    (ConfigError, 422),
    (ToolInputError, 422),
    (EventDecodeError, 422),
    (InvalidInput, 422),
    (InvalidEventError, 422),  # a value the log cannot store: the request's, not an outage
    (PersistenceError, 503),
)

_HTTP_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    422: "ValidationError",
    500: "InternalError",
    503: "ServiceUnavailable",
}


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """The JSON every error answer carries."""
    return {"error": {"type": error_type, "message": message}}


def error_response(
    status: int, error_type: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error answer with `status`."""
    return JSONResponse(error_body(error_type, message), status_code=status, headers=headers)


def describe(exc: BaseException) -> tuple[int, str, str]:
    """(HTTP status, error type, message) for an exception raised while serving a request."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status, type(exc).__name__, str(exc)
    if isinstance(exc, BassiError):
        return 500, type(exc).__name__, str(exc)
    return 500, "InternalError", "internal server error (see the server log)"


def validation_message(errors: Any) -> str:
    """One readable line out of pydantic's error list: `field: problem; ...`."""
    parts = []
    for error in list(errors)[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    """Route every error through `describe` so no client ever sees a traceback."""

    @app.exception_handler(BassiError)
    async def bassi_error(request: Request, exc: BassiError) -> JSONResponse:
        status, error_type, message = describe(exc)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
        return error_response(status, error_type, message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "BadRequest", "request body is not valid JSON")
        return error_response(422, "ValidationError", validation_message(errors))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error_type = _HTTP_TYPES.get(exc.status_code, "HTTPError")
        message = exc.detail if isinstance(exc.detail, str) else error_type
        return error_response(exc.status_code, error_type, message, exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, "InternalError", "internal server error (see the server log)")


async def deny_websocket(websocket: WebSocket, status: int, error_type: str, message: str) -> None:
    """Refuse a WebSocket handshake with an HTTP status and the JSON error body.

    Servers without the ASGI denial-response extension get a policy-violation close instead.
    """
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(status, error_type, message))
    else:
        await websocket.close(code=1008, reason=f"{status} {message}"[:120])
