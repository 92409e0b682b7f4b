"""The agent loop of one session: ask the model, run the tools it asks for, repeat.

The loop decides and appends events; everything it knows comes from the session's fold
(`port.state`). Cancellation, approvals and failures are handled in `run`, in one place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from bassi import events as ev
from bassi.errors import (
    ApprovalNotFound,
    InvalidEventError,
    ModelError,
    RunCancelled,
    ToolError,
    ToolNotFound,
)
from bassi.messages import ToolUseBlock
from bassi.models.base import (
    BlockStart,
    BlockStop,
    Delta,
    MessageEnd,
    MessageStart,
    Model,
    ModelRequest,
    open_stream,
)
from bassi.session import OpenToolCall, SessionState
from bassi.tools.base import Tool, ToolContext
from bassi.tools.executor import ToolCall, ToolExecutor, ToolOutcome
from bassi.tools.permissions import (
    Decision,
    PermissionPolicy,
    decision_event,
    request_event,
    rule_for_always,
    user_decision,
)
from bassi.tools.registry import ToolRegistry

log = logging.getLogger(__name__)


class SessionPort(Protocol):
    """What the agent needs from its session: the fold, and appending to it."""

    @property
    def state(self) -> SessionState: ...

    async def append(self, *events: ev.Event, durable: bool = True) -> None: ...

    async def settle(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """A user's answer to a parked tool call."""

    decision: Decision
    always: bool = False


@dataclass(slots=True)
class Agent:
    """Runs the runs of one session, one at a time."""

    port: SessionPort
    model: Model
    registry: ToolRegistry
    executor: ToolExecutor
    policy: PermissionPolicy
    workspace: Path
    output_cap: int = 100_000
    approvals: dict[str, asyncio.Future[Answer]] = field(default_factory=dict)
    cancel_after_turn: str | None = None
    """Set to a reason when a user asked to stop once the current step is done."""
    cancel_reason: str = ""
    """Why the run was cancelled at once (recorded in `run_cancelled`)."""
    shutting_down: bool = False
    """Set when the process stops: a cancelled run is left for recovery, not marked cancelled."""
    started: bool = False
    """Set once `run` has begun: a task cancelled before its first step never runs the code
    that records its cancel."""

    async def run(self, run_id: str) -> None:
        """Drive the run to its terminal event. Only a shutdown leaves it open (for recovery)."""
        self.started = True
        # A run resumed after a restart goes on counting from where its first part got to.
        state = self.port.state
        turns, usage = state.run_turns, state.run_usage
        started = state.run_started_at or ev.utcnow()
        stop_reason = "end_turn"
        try:
            while True:
                if self.port.state.open_tool_calls:
                    await self._run_tools(run_id)
                    self._stop_if_asked()
                    continue
                if turns >= self.port.state.max_turns:
                    stop_reason = "max_turns"
                    break
                message = await self._ask_model(run_id)
                turns, usage = turns + 1, usage + message.usage
                self._stop_if_asked()
                if not any(isinstance(b, ToolUseBlock) for b in message.content):
                    stop_reason = message.stop_reason
                    break
            if self.port.state.permission_mode == "plan":
                plan = self.port.state.messages[-1].text if self.port.state.messages else ""
                await self.port.append(ev.PlanGenerated(**self._ids(run_id), plan=plan))
            await self.port.append(
                ev.RunCompleted(
                    **self._ids(run_id),
                    stop_reason=stop_reason,
                    turns=turns,
                    usage=usage,
                    duration_ms=_ms(started),
                )
            )
        except asyncio.CancelledError:
            if self.shutting_down:
                raise
            cancelled = ev.RunCancelled(
                **self._ids(run_id), mode="immediate", reason=self.cancel_reason
            )
            await self._end(run_id, cancelled)
        except RunCancelled as stop:
            await self._end(
                run_id, ev.RunCancelled(**self._ids(run_id), mode="after_turn", reason=stop.reason)
            )
        except ModelError as exc:
            error = ev.Error(
                **self._ids(run_id),
                where="model",
                error_type=exc.error_type,
                message=str(exc),
                retryable=exc.retryable,
                request_id=exc.request_id,
            )
            await self._end(
                run_id,
                error,
                ev.RunFailed(**self._ids(run_id), error_type="ModelError", message=str(exc)),
            )
        except Exception as exc:  # a bug: record it, keep the session usable
            log.exception("run %s failed", run_id)
            kind = type(exc).__name__
            error = ev.Error(**self._ids(run_id), where="agent", error_type=kind, message=str(exc))
            await self._end(
                run_id, error, ev.RunFailed(**self._ids(run_id), error_type=kind, message=str(exc))
            )
        finally:
            self.cancel_after_turn, self.cancel_reason = None, ""
            for future in self.approvals.values():
                future.cancel()
            self.approvals.clear()

    # --- one model turn ----------------------------------------------------------------

    async def _ask_model(self, run_id: str) -> MessageEnd:
        state = self.port.state
        request = ModelRequest(
            system=state.system_prompt,
            messages=state.messages,
            tools=self.registry.specs([n for n in state.tools if n in self.registry.names()]),
            max_tokens=state.max_tokens,
        )
        message_id = ""
        async with open_stream(self.model, request) as stream:
            async for item in stream:
                ids = self._ids(run_id)
                match item:
                    case MessageStart():
                        message_id = item.message_id
                        await self.port.append(
                            ev.MessageStarted(
                                **ids,
                                message_id=message_id,
                                model=item.model,
                                provider=item.provider,
                            ),
                            durable=False,
                        )
                    case BlockStart():
                        await self.port.append(
                            ev.ContentBlockStarted(
                                **ids,
                                message_id=message_id,
                                index=item.index,
                                block_type=item.block_type,
                                tool_call_id=item.tool_call_id,
                                tool_name=item.tool_name,
                            ),
                            durable=False,
                        )
                    case Delta():
                        await self.port.append(
                            ev.TokenDelta(
                                **ids,
                                message_id=message_id,
                                index=item.index,
                                channel=item.channel,
                                text=item.text,
                            ),
                            durable=False,
                        )
                    case BlockStop():
                        await self.port.append(
                            ev.ContentBlockStopped(**ids, message_id=message_id, index=item.index),
                            durable=False,
                        )
                    case MessageEnd():
                        await self.port.append(
                            ev.MessageCompleted(
                                **ids,
                                message_id=item.message_id or message_id,
                                content=list(item.content),
                                stop_reason=item.stop_reason,
                                usage=item.usage,
                                model=item.model,
                                provider=item.provider,
                                request_id=item.request_id,
                            )
                        )
                        return item
        raise ModelError("the model stream ended without a complete message", retryable=True)

    # --- tools -------------------------------------------------------------------------

    async def _run_tools(self, run_id: str) -> None:
        """Decide, ask, start (write-ahead) and run every open call of the last message."""
        state = self.port.state
        ready: list[tuple[OpenToolCall, dict[str, Any]]] = []
        waiting: list[OpenToolCall] = []
        for call in state.open_tool_calls.values():
            if call.started or call.decision == "allow":  # resumed after a restart
                ready.append((call, dict(call.decided_input or call.input)))
            elif call.tool_call_id in state.pending_approvals:  # re-offered after a restart
                waiting.append(call)
            else:
                verdict = await self._decide(run_id, call)
                if verdict == "ask":
                    waiting.append(call)
                elif isinstance(verdict, dict):
                    ready.append((call, verdict))
        for call, answer in await self._answers(waiting):
            # The answered future stays in `approvals` until the decision is on record: until
            # then the call still looks pending, and a second answer must find it answered,
            # not make a fresh future nobody reads (and be told 200 for an answer thrown away).
            try:
                await self._record_answer(run_id, call, answer, ready)
            finally:
                self.approvals.pop(call.tool_call_id, None)
        if not ready:
            return
        await self.port.append(
            *[
                ev.ToolCallStarted(
                    **self._ids(run_id),
                    tool_call_id=c.tool_call_id,
                    tool_name=c.tool_name,
                    input=args,
                )
                for c, args in ready
                if not c.started
            ]
        )

        async def record(call: ToolCall, outcome: ToolOutcome) -> None:
            event = outcome.to_event(session_id=self._sid, run_id=run_id)
            try:
                await self.port.append(event)
            except InvalidEventError as exc:
                # What the tool returned cannot be stored (a NUL, which PostgreSQL refuses):
                # the call fails saying so, and the model carries on with that.
                await self.port.append(
                    ev.ToolCallFailed(
                        **self._ids(run_id),
                        tool_call_id=event.tool_call_id,
                        tool_name=event.tool_name,
                        error=f"the tool's result could not be recorded: {exc}",
                        error_type="InvalidEventError",
                        duration_ms=event.duration_ms,
                    )
                )

        calls = [
            ToolCall(
                tool_call_id=c.tool_call_id,
                name=c.tool_name,
                input=args,
                ctx=self._ctx(run_id, c.tool_call_id),
            )
            for c, args in ready
        ]
        await self.executor.run_parallel(calls, on_done=record)

    async def _decide(self, run_id: str, call: OpenToolCall) -> dict[str, Any] | str | None:
        """Allowed input, "ask", or None when the call was refused (and recorded as failed)."""
        ids = self._ids(run_id)
        try:
            tool = self._tool(call.tool_name)
            args = tool.validate(dict(call.input))
        except ToolError as exc:
            await self.port.append(
                ev.PermissionDecided(
                    **ids,
                    tool_call_id=call.tool_call_id,
                    tool_name=call.tool_name,
                    decision="deny",
                    decided_by="validation",
                    reason=str(exc),
                ),
                self._failed(run_id, call, str(exc), type(exc).__name__),
            )
            return None
        decision = await self.policy.decide(tool, args, self._ctx(run_id, call.tool_call_id))
        names = {"tool_call_id": call.tool_call_id, "tool_name": call.tool_name}
        if decision.outcome == "ask":
            self.approvals[call.tool_call_id] = asyncio.get_running_loop().create_future()
            await self.port.append(
                request_event(decision, session_id=self._sid, run_id=run_id, input=args, **names)
            )
            return "ask"
        recorded = decision_event(decision, session_id=self._sid, run_id=run_id, **names)
        if decision.outcome == "deny":
            reason = f"denied by {decision.decided_by}: {decision.reason}"
            await self.port.append(recorded, self._failed(run_id, call, reason, "PermissionDenied"))
            return None
        await self.port.append(recorded)
        return dict(decision.updated_input if decision.updated_input is not None else args)

    async def _answers(self, waiting: Sequence[OpenToolCall]) -> list[tuple[OpenToolCall, Answer]]:
        loop = asyncio.get_running_loop()
        futures = [self.approvals.setdefault(c.tool_call_id, loop.create_future()) for c in waiting]
        answers = await asyncio.gather(*futures)
        return list(zip(waiting, answers, strict=True))

    async def _record_answer(
        self,
        run_id: str,
        call: OpenToolCall,
        answer: Answer,
        ready: list[tuple[OpenToolCall, dict[str, Any]]],
    ) -> None:
        names = {"tool_call_id": call.tool_call_id, "tool_name": call.tool_name}
        recorded = decision_event(answer.decision, session_id=self._sid, run_id=run_id, **names)
        if answer.decision.outcome != "allow":
            reason = f"denied by {answer.decision.decided_by}: {answer.decision.reason or 'no reason given'}"
            await self.port.append(recorded, self._failed(run_id, call, reason, "PermissionDenied"))
            return
        events: list[ev.Event] = [recorded]
        pending = self.port.state.pending_approvals.get(call.tool_call_id)
        args = dict(pending.input) if pending is not None else dict(call.input)
        if answer.always:
            rule = rule_for_always(self._tool(call.tool_name), args)
            self.policy = self.policy.with_rule(rule)
            events.append(
                ev.PermissionRuleAdded(
                    session_id=self._sid, rule=rule, added_by=answer.decision.decided_by
                )
            )
        await self.port.append(*events)
        ready.append((call, args))

    def answer(self, tool_call_id: str, decision: Decision, *, always: bool = False) -> None:
        """Deliver a user's answer to a parked call (raises ApprovalNotFound)."""
        future = self.approvals.get(tool_call_id)
        if future is None:
            if tool_call_id not in self.port.state.pending_approvals:
                raise ApprovalNotFound(f"no approval is pending for tool call {tool_call_id!r}")
            future = self.approvals[tool_call_id] = asyncio.get_running_loop().create_future()
        if future.done():
            raise ApprovalNotFound(f"tool call {tool_call_id!r} was already answered")
        future.set_result(Answer(decision, always))

    # --- endings -----------------------------------------------------------------------

    def _stop_if_asked(self) -> None:
        if self.cancel_after_turn is not None:
            raise RunCancelled("after_turn", self.cancel_after_turn)

    async def _end(self, run_id: str, *terminal: ev.Event) -> None:
        """Close every open call (the history stays valid for any provider), then end the run."""
        await self.port.settle()
        if self.port.state.current_run_id != run_id:
            return  # its end committed while the run was being stopped: it has one already
        closing = close_open_calls(
            self.port.state,
            run_id,
            decided_by="cancel",
            started_reason="the run was cancelled",
            unstarted_reason="the run ended before the call ran",
            timed=True,
        )
        await self.port.append(*closing, *terminal)

    # --- small pieces ------------------------------------------------------------------

    @property
    def _sid(self) -> str:
        return self.port.state.session_id

    def _ids(self, run_id: str) -> dict[str, Any]:
        return {"session_id": self._sid, "run_id": run_id}

    def _tool(self, name: str) -> Tool:
        if name not in self.port.state.tools:
            raise ToolNotFound(f"tool {name!r} is not available in this session")
        return self.registry.get(name)

    def _ctx(self, run_id: str, tool_call_id: str) -> ToolContext:
        return ToolContext(
            workspace=self.workspace,
            session_id=self._sid,
            run_id=run_id,
            tool_call_id=tool_call_id,
            permission_mode=self.port.state.permission_mode,
            output_cap=self.output_cap,
        )

    def _failed(
        self,
        run_id: str,
        call: OpenToolCall,
        error: str,
        error_type: str,
    ) -> ev.ToolCallFailed:
        return ev.ToolCallFailed(
            **self._ids(run_id),
            tool_call_id=call.tool_call_id,
            tool_name=call.tool_name,
            error=error,
            error_type=error_type,
        )


def close_open_calls(
    state: SessionState,
    run_id: str,
    *,
    decided_by: str,
    started_reason: str,
    unstarted_reason: str,
    keep: Callable[[OpenToolCall], bool] = lambda call: False,
    timed: bool = False,
) -> list[ev.Event]:
    """Events that give every open call of a run an end, so the history stays valid for any
    provider: a deny for a call still waiting for approval, then `tool_call_failed(interrupted)`.
    Calls for which `keep` is true are left open (recovery re-runs idempotent ones). `timed`:
    a started call's duration runs until now (a cancel, not a restart that came hours later).
    """
    ids = {"session_id": state.session_id, "run_id": run_id}
    closing: list[ev.Event] = []
    for call in state.open_tool_calls.values():
        if keep(call):
            continue
        if call.tool_call_id in state.pending_approvals:
            closing.append(
                ev.PermissionDecided(
                    **ids,
                    tool_call_id=call.tool_call_id,
                    tool_name=call.tool_name,
                    decision="deny",
                    decided_by=decided_by,
                    reason="the run ended before anyone answered",
                )
            )
        closing.append(
            ev.ToolCallFailed(
                **ids,
                tool_call_id=call.tool_call_id,
                tool_name=call.tool_name,
                error=started_reason if call.started else unstarted_reason,
                error_type="Interrupted",
                interrupted=True,
                duration_ms=_ms(call.started_at) if timed and call.started_at else 0,
            )
        )
    return closing


def _ms(started: datetime) -> int:
    """Milliseconds since `started` by the wall clock (a run may span a restart)."""
    return max(0, int((ev.utcnow() - started).total_seconds() * 1000))


def user_answer(decision: str, *, user: str = "user", reason: str = "") -> Decision:
    """A user's allow or deny as a policy decision (`decided_by = user:NAME`)."""
    if decision not in ("allow", "deny"):
        raise ValueError(f"decision must be allow or deny, not {decision!r}")
    return user_decision(decision, user=user, reason=reason)  # type: ignore[arg-type]
