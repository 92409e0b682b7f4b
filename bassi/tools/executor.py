"""Running tool calls: validation, timeout, output cap, post-tool hooks, parallelism.

`ToolExecutor.run` never raises for a tool's own failure: it returns a `ToolOutcome` that is
either a result (`tool_call_completed`) or a failure (`tool_call_failed`). Only cancellation
propagates: the awaiting task is cancelled, the tool is stopped (bash kills its process group)
and `CancelledError` goes on up. Sync handlers run in a worker thread; Python cannot stop a
thread, so a cancelled or timed-out sync handler finishes in the background, unobserved.

Post-tool hooks see results only (`is_error` ones included); a call that failed skips them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bassi.errors import ToolTimeout
from bassi.events import ToolCallCompleted, ToolCallFailed
from bassi.tools.base import DEFAULT_OUTPUT_CAP, Tool, ToolContext, ToolResult
from bassi.tools.hooks import Hook, HookCall, apply_post_hooks
from bassi.tools.output import cap_text, storable
from bassi.tools.registry import ToolRegistry


@dataclass(frozen=True, kw_only=True)
class ToolOutcome:
    """How one call ended: a result, or a failure (`error` set)."""

    tool_call_id: str
    """The call."""
    tool_name: str
    """The tool."""
    output: str = ""
    """Output shown to the model (empty for a failure)."""
    is_error: bool = False
    """The tool ran but reports a failure (a result), or the call failed."""
    truncated: bool = False
    """Output was cut at the cap."""
    original_size: int | None = None
    """Output size in bytes before the cap."""
    duration_ms: int = 0
    """Wall time of the call."""
    error: str | None = None
    """For a failure: what went wrong, shown to the model."""
    error_type: str | None = None
    """For a failure: the exception class (`ToolTimeout`, `ToolInputError`, `ValueError`, ...)."""

    @property
    def failed(self) -> bool:
        """True when the call did not produce a result."""
        return self.error is not None

    def to_event(
        self, *, session_id: str, run_id: str | None
    ) -> ToolCallCompleted | ToolCallFailed:
        """The `tool_call_completed` or `tool_call_failed` event recording this outcome."""
        if self.error is not None:
            return ToolCallFailed(
                session_id=session_id,
                run_id=run_id,
                tool_call_id=self.tool_call_id,
                tool_name=self.tool_name,
                error=self.error,
                error_type=self.error_type or "",
                duration_ms=self.duration_ms,
            )
        return ToolCallCompleted(
            session_id=session_id,
            run_id=run_id,
            tool_call_id=self.tool_call_id,
            tool_name=self.tool_name,
            output=self.output,
            is_error=self.is_error,
            duration_ms=self.duration_ms,
            truncated=self.truncated,
            original_size=self.original_size,
        )


@dataclass(frozen=True, kw_only=True)
class ToolCall:
    """One call to run: what the model asked for, as allowed."""

    tool_call_id: str
    """The call id."""
    name: str
    """The tool."""
    input: Mapping[str, Any]
    """Arguments (as a hook may have rewritten them)."""
    ctx: ToolContext
    """Where it runs."""


OnDone = Callable[[ToolCall, ToolOutcome], Awaitable[None]]
"""Called as each call of a parallel batch ends, in completion order."""


class ToolExecutor:
    """Runs calls of registered tools under their timeout and output cap, then post-tool hooks."""

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        hooks: Iterable[Hook] = (),
        output_cap: int = DEFAULT_OUTPUT_CAP,
    ) -> None:
        self.registry = registry
        self.hooks = tuple(h for h in hooks if h.event == "PostToolUse")
        self.output_cap = output_cap

    async def run(
        self, tool_call_id: str, name: str, input: Mapping[str, Any], ctx: ToolContext
    ) -> ToolOutcome:
        """Run one call to its outcome; only cancellation propagates."""
        started = time.monotonic()

        def failure(exc: BaseException) -> ToolOutcome:
            return ToolOutcome(
                tool_call_id=tool_call_id,
                tool_name=name,
                is_error=True,
                duration_ms=_ms_since(started),
                error=storable(str(exc)) or type(exc).__name__,
                error_type=type(exc).__name__,
            )

        try:
            tool = self.registry.get(name)
            args = tool.parse(input)
            cap = min(tool.output_cap or self.output_cap, self.output_cap)
            ctx = replace(ctx, tool_call_id=tool_call_id, output_cap=cap)
            result = await self._call(tool, args, ctx)
            output, is_error = result.output, result.is_error
            truncated, size = result.truncated, result.original_size
            if not truncated:
                capped = cap_text(output, cap)
                output, truncated, size = capped.text, capped.truncated, capped.original_size
            if self.hooks:
                hooked = await apply_post_hooks(
                    self.hooks, _post_call(tool, input, ctx), output=output, is_error=is_error
                )
                if hooked.changed_by:
                    capped = cap_text(hooked.output, cap)
                    output, is_error = capped.text, hooked.is_error
                    truncated = truncated or capped.truncated
        except Exception as exc:
            return failure(exc)
        return ToolOutcome(
            tool_call_id=tool_call_id,
            tool_name=name,
            output=storable(output),
            is_error=is_error,
            truncated=truncated,
            original_size=size,
            duration_ms=_ms_since(started),
        )

    async def run_parallel(
        self, calls: Sequence[ToolCall], *, on_done: OnDone | None = None
    ) -> list[ToolOutcome]:
        """Run calls concurrently; outcomes in the order of `calls`. Cancelling cancels them all."""

        async def one(call: ToolCall) -> ToolOutcome:
            outcome = await self.run(call.tool_call_id, call.name, call.input, call.ctx)
            if on_done is not None:
                await on_done(call, outcome)
            return outcome

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(call)) for call in calls]
        return [task.result() for task in tasks]

    async def _call(self, tool: Tool, args: Any, ctx: ToolContext) -> ToolResult:
        timer = asyncio.timeout(tool.timeout)
        try:
            async with timer:
                if tool.is_async:
                    value = await tool.invoke(args, ctx)
                else:
                    value = await asyncio.to_thread(tool.invoke, args, ctx)
        except TimeoutError:
            if timer.expired():
                raise ToolTimeout(f"{tool.name} timed out after {tool.timeout:g}s") from None
            raise
        return _as_result(value)


def _as_result(value: Any) -> ToolResult:
    if isinstance(value, ToolResult):
        return value
    if isinstance(value, str):
        return ToolResult(output=value)
    if value is None:
        return ToolResult(output="")
    return ToolResult(output=json.dumps(value, default=str, ensure_ascii=False))


def _post_call(tool: Tool, input: Mapping[str, Any], ctx: ToolContext) -> HookCall:
    return HookCall(
        event="PostToolUse",
        tool_name=tool.name,
        tool_input=input,
        tool_use_id=ctx.tool_call_id,
        session_id=ctx.session_id,
        cwd=str(ctx.workspace),
        permission_mode=ctx.permission_mode,
    )


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
