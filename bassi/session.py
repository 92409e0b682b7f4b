"""A session's state as a pure fold over its events.

`evolve(state, event)` has no I/O and returns a new state; `replay(events)` folds a whole
stream. The agent and the manager decide what happens next from this state, append events, and
never keep state of their own outside it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from bassi import events as ev
from bassi.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock, Usage


class SessionStatus(enum.StrEnum):
    """Lifecycle of a session, derived from its events."""

    IDLE = "idle"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """A tool call parked until a user answers."""

    tool_call_id: str
    tool_name: str
    input: Mapping[str, Any]
    reason: str
    run_id: str | None


@dataclass(frozen=True, slots=True)
class OpenToolCall:
    """A tool call the model asked for that has no result yet."""

    tool_call_id: str
    tool_name: str
    input: Mapping[str, Any]
    started: bool = False
    """True once `tool_call_started` was recorded (the tool may have run)."""
    decision: str | None = None
    """`allow` or `deny` once `permission_decided` was recorded."""
    decided_input: Mapping[str, Any] | None = None
    """Arguments as rewritten by the decision (a hook), if they were."""
    started_at: datetime | None = None
    """When `tool_call_started` was recorded."""


@dataclass(frozen=True, slots=True)
class SessionState:
    """Everything bassi knows about one session, rebuilt from its events alone."""

    session_id: str
    status: SessionStatus = SessionStatus.IDLE
    title: str = ""
    model: str = "scripted"
    system_prompt: str = ""
    tools: tuple[str, ...] = ()
    workspace: str | None = None
    permission_mode: ev.PermissionMode = "default"
    rules: tuple[str, ...] = ()
    max_turns: int = 50
    max_tokens: int = 4096
    messages: tuple[Message, ...] = ()
    """Provider-neutral history; valid for every provider at every run boundary."""
    open_tool_calls: Mapping[str, OpenToolCall] = field(default_factory=dict)
    pending_approvals: Mapping[str, PendingApproval] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    last_seq: int = 0
    current_run_id: str | None = None
    """The run in progress (no terminal event yet), if any."""
    run_started_at: datetime | None = None
    """When the run in progress started (its first `run_started`, not a resumption's)."""
    run_turns: int = 0
    """Model calls the run in progress has made, across restarts."""
    run_usage: Usage = field(default_factory=Usage)
    """Tokens the run in progress has used, across restarts."""
    last_run_id: str | None = None
    prompts: int = 0
    runs: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def run_active(self) -> bool:
        """True while a run has started and not ended."""
        return self.current_run_id is not None


FOLD_TYPES: frozenset[str] = frozenset(ev.EVENT_TYPES) - {
    "message_started",
    "content_block_started",
    "token_delta",
    "content_block_stopped",
}
"""The event types `evolve` needs; rebuilding a session reads only these (never deltas)."""


T = TypeVar("T")


def _with_tool_result(
    messages: tuple[Message, ...], result: ToolResultBlock, *, answered: bool
) -> tuple[Message, ...]:
    """Append a tool result to the user turn that answers the last assistant message.

    `answered`: the call may have a result already (it was not open), which is then kept.
    Linear in the number of results over a whole message: a model may ask for thousands of
    calls at once, and a check of every earlier result per result made a replay quadratic.
    """
    last = messages[-1] if messages else None
    # A user turn of results only: a prompt that joins it comes last (`_with_prompt`).
    if (
        last is not None
        and last.role == "user"
        and last.content
        and isinstance(last.content[-1], ToolResultBlock)
    ):
        if answered and any(
            isinstance(b, ToolResultBlock) and b.tool_use_id == result.tool_use_id
            for b in last.content
        ):
            return messages
        # The blocks are validated already: validating them again per result is quadratic.
        turn = Message.model_construct(role="user", content=(*last.content, result))
        return (*messages[:-1], turn)
    return (*messages, Message(role="user", content=(result,)))


def _with_prompt(messages: tuple[Message, ...], text: str) -> tuple[Message, ...]:
    """Append a prompt; it joins a trailing tool-result turn so roles keep alternating."""
    block = TextBlock(text=text)
    if messages and messages[-1].role == "user":
        last = messages[-1]
        return (*messages[:-1], Message(role="user", content=(*last.content, block)))
    return (*messages, Message(role="user", content=(block,)))


def _without(mapping: Mapping[str, T], key: str) -> Mapping[str, T]:
    """`mapping` without `key` (the same mapping when it lacks the key: states never change)."""
    if key not in mapping:
        return mapping
    rest = dict(mapping)
    del rest[key]
    return rest


def _close_call(state: SessionState, tool_call_id: str, result: ToolResultBlock) -> SessionState:
    pending = _without(state.pending_approvals, tool_call_id)
    status = state.status
    if status is SessionStatus.AWAITING_APPROVAL and not pending:
        status = SessionStatus.RUNNING
    answered = tool_call_id not in state.open_tool_calls
    return replace(
        state,
        messages=_with_tool_result(state.messages, result, answered=answered),
        open_tool_calls=_without(state.open_tool_calls, tool_call_id),
        pending_approvals=pending,
        status=status,
    )


def _end_run(state: SessionState) -> SessionState:
    status = SessionStatus.ENDED if state.status is SessionStatus.ENDED else SessionStatus.IDLE
    return replace(
        state,
        current_run_id=None,
        pending_approvals={},
        status=status,
        run_started_at=None,
        run_turns=0,
        run_usage=Usage(),
    )


def evolve(state: SessionState, event: ev.Event) -> SessionState:
    """The state after `event`. Pure: no I/O, no clocks, `state` is left unchanged."""
    state = replace(state, last_seq=max(state.last_seq, event.seq), updated_at=event.recorded_at)
    match event:
        case ev.SessionStarted():
            return replace(
                state,
                title=event.title,
                model=event.model,
                system_prompt=event.system_prompt,
                tools=tuple(event.tools),
                workspace=event.workspace,
                permission_mode=event.permission_mode,
                rules=tuple(event.rules),
                max_turns=event.max_turns,
                max_tokens=event.max_tokens,
                created_at=event.recorded_at,
            )
        case ev.ModelSwitched():
            return replace(state, model=event.model)
        case ev.PermissionModeChanged():
            return replace(state, permission_mode=event.mode)
        case ev.PermissionRuleAdded():
            return replace(state, rules=(*state.rules, event.rule))
        case ev.SessionEnded():
            return replace(state, status=SessionStatus.ENDED)
        case ev.PromptReceived():
            return replace(
                state,
                messages=_with_prompt(state.messages, event.content),
                prompts=state.prompts + 1,
                current_run_id=event.run_id,
                status=SessionStatus.RUNNING,
            )
        case ev.RunStarted():
            if not event.resumed or state.run_started_at is None:
                state = replace(
                    state, run_started_at=event.recorded_at, run_turns=0, run_usage=Usage()
                )
            return replace(
                state,
                current_run_id=event.run_id,
                last_run_id=event.run_id,
                runs=state.runs if event.resumed else state.runs + 1,
                status=(
                    SessionStatus.AWAITING_APPROVAL
                    if state.pending_approvals
                    else SessionStatus.RUNNING
                ),
            )
        case ev.MessageCompleted():
            message = Message(role="assistant", content=tuple(event.content))
            calls = dict(state.open_tool_calls)
            for use in message.tool_uses:
                calls[use.id] = OpenToolCall(use.id, use.name, use.input)
            return replace(
                state,
                messages=(*state.messages, message),
                open_tool_calls=calls,
                usage=state.usage + event.usage,
                run_turns=state.run_turns + 1,
                run_usage=state.run_usage + event.usage,
            )
        case ev.PermissionRequested():
            approval = PendingApproval(
                event.tool_call_id, event.tool_name, event.input, event.reason, event.run_id
            )
            return replace(
                state,
                pending_approvals={**state.pending_approvals, event.tool_call_id: approval},
                status=SessionStatus.AWAITING_APPROVAL,
            )
        case ev.PermissionDecided():
            pending = _without(state.pending_approvals, event.tool_call_id)
            status = state.status
            if status is SessionStatus.AWAITING_APPROVAL and not pending:
                status = SessionStatus.RUNNING
            calls = dict(state.open_tool_calls)
            if event.tool_call_id in calls:
                calls[event.tool_call_id] = replace(
                    calls[event.tool_call_id],
                    decision=event.decision,
                    decided_input=event.updated_input,
                )
            return replace(state, pending_approvals=pending, status=status, open_tool_calls=calls)
        case ev.ToolCallStarted():
            previous = state.open_tool_calls.get(event.tool_call_id)
            call = OpenToolCall(
                event.tool_call_id,
                event.tool_name,
                event.input,
                started=True,
                decision=previous.decision if previous else None,
                started_at=event.recorded_at,
            )
            return replace(
                state, open_tool_calls={**state.open_tool_calls, event.tool_call_id: call}
            )
        case ev.ToolCallCompleted():
            result = ToolResultBlock(
                tool_use_id=event.tool_call_id, content=event.output, is_error=event.is_error
            )
            return _close_call(state, event.tool_call_id, result)
        case ev.ToolCallFailed():
            text = f"interrupted: {event.error}" if event.interrupted else event.error
            result = ToolResultBlock(tool_use_id=event.tool_call_id, content=text, is_error=True)
            return _close_call(state, event.tool_call_id, result)
        case ev.RunCompleted() | ev.RunCancelled() | ev.RunFailed() | ev.RunInterrupted():
            return _end_run(state)
        case (
            ev.SessionRecovered()
            | ev.PlanGenerated()
            | ev.MessageStarted()
            | ev.ContentBlockStarted()
            | ev.TokenDelta()
            | ev.ContentBlockStopped()
            | ev.Error()
        ):
            return state
    raise AssertionError(f"unhandled event type {event.type!r}")  # pragma: no cover


def replay(events: Iterable[ev.Event], *, session_id: str | None = None) -> SessionState:
    """Fold a session's events, oldest first, into its state."""
    state: SessionState | None = None if session_id is None else SessionState(session_id=session_id)
    for event in events:
        if state is None:
            state = SessionState(session_id=event.session_id)
        state = evolve(state, event)
    if state is None:
        raise ValueError("replay of no events needs a session_id")
    return state


def open_tool_uses(state: SessionState) -> tuple[ToolUseBlock, ...]:
    """Tool uses of the history that still lack a result, oldest first."""
    return tuple(
        ToolUseBlock(id=c.tool_call_id, name=c.tool_name, input=dict(c.input))
        for c in state.open_tool_calls.values()
    )
