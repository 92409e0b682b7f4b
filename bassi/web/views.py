"""JSON shapes of sessions as the API and the UI see them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bassi.events import format_time
from bassi.session import SessionState
from bassi.store.readmodel import SessionSummary


def session_view(state: SessionState) -> dict[str, Any]:
    """A session's state: config, status, conversation, usage, pending approvals, last seq."""
    return {
        "id": state.session_id,
        "title": state.title,
        "status": state.status.value,
        "model": state.model,
        "system_prompt": state.system_prompt,
        "tools": list(state.tools),
        "workspace": state.workspace,
        "permission_mode": state.permission_mode,
        "rules": list(state.rules),
        "messages": [m.model_dump(mode="json") for m in state.messages],
        "usage": state.usage.model_dump(mode="json"),
        "pending_approvals": [
            {
                "tool_call_id": a.tool_call_id,
                "tool_name": a.tool_name,
                "input": dict(a.input),
                "reason": a.reason,
                "run_id": a.run_id,
            }
            for a in state.pending_approvals.values()
        ],
        "last_seq": state.last_seq,
        "run_active": state.run_active,
        "current_run_id": state.current_run_id,
        "last_run_id": state.last_run_id,
        "prompts": state.prompts,
        "runs": state.runs,
        "created_at": format_time(state.created_at) if state.created_at else None,
        "updated_at": format_time(state.updated_at) if state.updated_at else None,
    }


def summary_view(summary: SessionSummary) -> dict[str, Any]:
    """One row of the session list."""
    return {"id": summary.session_id, **asdict(summary)}
