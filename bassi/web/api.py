"""The REST API of DESIGN.md section 6: health, models, sessions, events, prompts, approvals."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from bassi import __version__
from bassi import events as ev
from bassi.errors import ConfigError, InvalidInput, PayloadTooLarge
from bassi.events import MAX_SEQ
from bassi.manager import Session
from bassi.models.catalog import provider_status
from bassi.web.context import Context
from bassi.web.views import session_view, summary_view

router = APIRouter(prefix="/api", tags=["api"])

WEB_USER = "web"
"""Who the events say sent a prompt or decided an approval through this interface."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSession(_Body):
    """Body of `POST /api/sessions`; every field is optional."""

    title: str = Field("", max_length=500)
    model: str | None = Field(None, min_length=1)
    system_prompt: str = ""
    permission_mode: ev.PermissionMode | None = None
    workspace: str | None = Field(None, min_length=1)
    tools: list[str] | None = None
    rules: list[str] = Field(default_factory=list)


class Prompt(_Body):
    """Body of `POST /api/sessions/{id}/prompts`."""

    content: str = Field(min_length=1, pattern=r"\S")
    """The prompt; must hold more than white space."""


class Cancel(_Body):
    """Body of `POST /api/sessions/{id}/cancel`."""

    mode: Literal["immediate", "after_turn"] = "immediate"
    reason: str = ""


class Approval(_Body):
    """Body of `POST /api/sessions/{id}/approvals/{tool_call_id}`."""

    decision: Literal["allow", "deny"]
    always: bool = False
    """With `allow`: add a rule so the same call is allowed from now on."""
    reason: str = ""


class SwitchModel(_Body):
    """Body of `POST /api/sessions/{id}/model`."""

    model: str = Field(min_length=1)


def check_prompt_size(content: str, limit: int) -> None:
    """Refuse a prompt above the configured size before it reaches the manager."""
    size = len(content.encode())
    if size > limit:
        raise PayloadTooLarge(f"prompt is {size} bytes; the limit is {limit}")


@router.get("/health")
async def health(context: Context) -> JSONResponse:
    """200 while the store commits; 503 once it has failed closed."""
    manager = context.manager
    stats = manager.store.stats()
    body = {
        "status": "ok" if stats.healthy else "unhealthy",
        "version": __version__,
        "store": {
            "healthy": stats.healthy,
            "appended": stats.appended,
            "committed": stats.committed,
            "lag": stats.queued,
            "last_error": stats.last_error,
        },
        "active_runs": manager.active_runs(),
        "default_model": manager.default_model,
        "scripted_fallback": manager.using_scripted_fallback,
        "auth": context.settings.token is not None,
    }
    return JSONResponse(body, status_code=200 if stats.healthy else 503)


@router.get("/models")
async def models(context: Context) -> dict[str, Any]:
    """The default model, whether it is the offline fallback, and each provider's key status."""
    providers = provider_status()
    return {
        "default": context.manager.default_model,
        "scripted_fallback": context.manager.using_scripted_fallback,
        "providers": [
            {"name": p.name, "configured": p.configured, "key_variable": p.key_variable}
            for p in providers
        ],
        "suggestions": ["scripted", *(f"{p.name}:" for p in providers if p.configured)],
    }


@router.get("/sessions")
async def list_sessions(context: Context) -> dict[str, Any]:
    """Every session, newest first (the read model)."""
    return {"sessions": [summary_view(s) for s in await context.manager.list()]}


@router.post("/sessions", status_code=201)
async def create_session(
    context: Context, body: Annotated[CreateSession | None, Body()] = None
) -> dict[str, Any]:
    """Start a session; 422 for an unknown model or mode."""
    body = body or CreateSession()
    session = await context.manager.create(
        model=body.model,
        title=body.title,
        system_prompt=body.system_prompt,
        permission_mode=body.permission_mode,
        workspace=body.workspace,
        tools=body.tools,
        rules=body.rules,
    )
    return session_view(session.state)


@router.get("/sessions/{session_id}")
async def get_session(session_id: str, context: Context) -> Any:
    """A session's state: status, messages, usage, pending approvals, last seq."""
    session = await context.manager.get(session_id)
    return session_view(session.state)


@router.delete("/sessions/{session_id}")
async def end_session(
    session_id: str,
    context: Context,
    reason: Annotated[str, Query(max_length=1000)] = "",
) -> dict[str, Any]:
    """End the session (`session_ended`); 409 while a run is active."""
    await context.manager.end(session_id, reason)
    session = await context.manager.get(session_id)
    return session_view(session.state)


@router.get("/sessions/{session_id}/events", response_class=JSONResponse)
async def list_events(
    session_id: str,
    context: Context,
    after: Annotated[
        int, Query(ge=0, le=MAX_SEQ, description="Only events with a larger seq.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    types: Annotated[str | None, Query(description="Comma-separated event types.")] = None,
) -> Response:
    """Committed events in seq order, each in the wire format; `more` says a page was full.

    `{"events": [...], "more": false}`, spliced from the log's wire JSON: no event is decoded
    and encoded again on the way out.
    """
    wanted = parse_types(types)
    await context.manager.get(session_id)
    rows = await context.manager.store.query_wire(
        session_id=session_id, types=wanted, after=after, limit=limit
    )
    more = "true" if len(rows) == limit else "false"
    body = '{"events":[' + ",".join(text for _, _, text in rows) + '],"more":' + more + "}"
    return Response(body, media_type="application/json")


def parse_types(types: str | None) -> list[str] | None:
    """`a,b` -> ["a", "b"]; an unknown name is a 422 that names it."""
    if types is None or not types.strip():
        return None
    names = [t.strip() for t in types.split(",") if t.strip()]
    unknown = [t for t in names if t not in ev.EVENT_TYPES]
    if unknown:
        raise ConfigError(f"unknown event type {unknown[0]!r}")
    return names


@router.post("/sessions/{session_id}/prompts", status_code=202)
async def send_prompt(session_id: str, body: Prompt, context: Context) -> dict[str, Any]:
    """Start a run; 409 while one is active, 413 above the prompt size limit."""
    check_prompt_size(body.content, context.settings.max_prompt_bytes)
    session = await context.manager.get(session_id)
    run_id = await session.prompt(body.content, user=WEB_USER)
    return {"session_id": session_id, "run_id": run_id}


@router.post("/sessions/{session_id}/cancel", status_code=202)
async def cancel_run(
    session_id: str,
    context: Context,
    body: Annotated[Cancel | None, Body()] = None,
) -> dict[str, Any]:
    """Cancel the active run (`immediate`, or `after_turn`); 409 when none is active."""
    body = body or Cancel()
    session = await context.manager.get(session_id)
    await session.cancel(body.mode, body.reason)
    return {"session_id": session_id, "mode": body.mode}


@router.post("/sessions/{session_id}/approvals/{tool_call_id}")
async def decide_approval(
    session_id: str,
    tool_call_id: str,
    body: Approval,
    context: Context,
) -> dict[str, Any]:
    """Answer a pending permission request; 404 when nothing waits under this id."""
    session = await context.manager.get(session_id)
    await decide(session, tool_call_id, body)
    return {"session_id": session_id, "tool_call_id": tool_call_id, "decision": body.decision}


async def decide(session: Session, tool_call_id: str, body: Approval) -> None:
    """Carry out an approval decision (shared by the REST route and the WebSocket)."""
    if body.decision == "allow":
        await session.approve(tool_call_id, always=body.always, user=WEB_USER, reason=body.reason)
    elif body.always:
        raise InvalidInput("always applies to allow only: a denial is for this call alone")
    else:
        await session.deny(tool_call_id, reason=body.reason, user=WEB_USER)


@router.post("/sessions/{session_id}/model")
async def switch_model(session_id: str, body: SwitchModel, context: Context) -> dict[str, Any]:
    """Use another model from the next run on; 422 for an unknown model, 409 during a run."""
    session = await context.manager.get(session_id)
    await session.switch_model(body.model)
    return session_view(session.state)
