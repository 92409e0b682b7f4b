"""Hooks: code that runs before a tool (may allow, deny, ask or rewrite the input) or after it
(may rewrite the output).

Two kinds share one protocol, the one Claude Code uses for PreToolUse/PostToolUse, so existing
hook scripts work unchanged:

- `CommandHook`: an executable configured in settings. It gets the call as JSON on stdin
  (`hook_event_name`, `tool_name`, `tool_input`, `tool_use_id`, `session_id`, `cwd`,
  `permission_mode`, and `tool_response` after the tool) and may answer JSON on stdout:
  `{"hookSpecificOutput": {"permissionDecision": "allow"|"deny"|"ask",
  "permissionDecisionReason": "...", "updatedInput": {...}}}` before a tool;
  `{"decision": "block", "reason": "...", "hookSpecificOutput": {"additionalContext": "...",
  "updatedMCPToolOutput": ...}}` after one. The older `{"decision": "approve"|"block",
  "reason": ...}` is understood too, and `{"continue": false, "stopReason": ...}` denies. Exit
  code 2 denies with stderr as the reason; no output (or plain text) with exit code 0 means
  no opinion.
- `CallableHook`: a Python function (sync or async) taking a `HookCall` and returning a
  `HookAnswer` or None.

A hook that crashes (any other exit code, an exception, an unreadable answer) or times out
denies, and its answer says so (`failed=True`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import inspect
import json
import os
import re
import signal
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

from bassi.settings import HookConfig

HookEvent: TypeAlias = Literal["PreToolUse", "PostToolUse"]
"""When a hook runs: before or after the tool."""

HookDecision: TypeAlias = Literal["allow", "deny", "ask"]
"""A hook's verdict on a call (after a tool, `deny` means "block": the output is an error)."""


@dataclass(frozen=True, kw_only=True)
class HookCall:
    """What a hook is told about a tool call."""

    event: HookEvent
    """Before or after the tool."""
    tool_name: str
    """The tool."""
    tool_input: Mapping[str, Any]
    """Its arguments (as rewritten by earlier hooks)."""
    tool_use_id: str
    """The call id."""
    session_id: str
    """The session."""
    cwd: str
    """The session's workspace."""
    permission_mode: str = "default"
    """Approval mode in force."""
    tool_response: Mapping[str, Any] | None = None
    """After the tool: `{"output": str, "is_error": bool}`."""

    def to_json(self) -> dict[str, Any]:
        """The object a command hook reads on stdin (Claude Code's field names)."""
        data: dict[str, Any] = {
            "hook_event_name": self.event,
            "session_id": self.session_id,
            "transcript_path": None,
            "cwd": self.cwd,
            "permission_mode": self.permission_mode,
            "tool_name": self.tool_name,
            "tool_input": dict(self.tool_input),
            "tool_use_id": self.tool_use_id,
        }
        if self.tool_response is not None:
            data["tool_response"] = dict(self.tool_response)
        return data


@dataclass(frozen=True, kw_only=True)
class HookAnswer:
    """What a hook answered. Every field is optional: an empty answer is no opinion."""

    decision: HookDecision | None = None
    """Allow, deny or ask; after a tool, `deny` marks the output as an error."""
    reason: str = ""
    """Why; a deny reason is shown to the model."""
    updated_input: dict[str, Any] | None = None
    """Before a tool: arguments to use instead."""
    updated_output: str | None = None
    """After a tool: output to show instead."""
    additional_context: str = ""
    """After a tool: text appended to the output for the model."""
    failed: bool = False
    """True when the hook crashed, timed out or answered nonsense (the answer then denies)."""

    @classmethod
    def from_json(cls, data: Any, *, event: HookEvent) -> HookAnswer:
        """Read a Claude Code hook answer; `ValueError` when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("the answer must be a JSON object")
        specific = data.get("hookSpecificOutput") or {}
        if not isinstance(specific, dict):
            raise ValueError("hookSpecificOutput must be an object")
        decision: HookDecision | None = None
        reason = str(data.get("reason") or "")
        legacy = data.get("decision")
        if legacy in ("approve", "allow"):
            decision = "allow"
        elif legacy in ("block", "deny"):
            decision = "deny"
        elif legacy is not None:
            raise ValueError(f"unknown decision {legacy!r}")
        if (verdict := specific.get("permissionDecision")) is not None:
            if verdict not in ("allow", "deny", "ask"):
                raise ValueError(f"unknown permissionDecision {verdict!r}")
            decision = verdict
            reason = str(specific.get("permissionDecisionReason") or reason)
        if data.get("continue") is False:
            decision = "deny"
            reason = str(data.get("stopReason") or reason or "the hook stopped the call")
        updated_input = specific.get("updatedInput")
        if updated_input is not None and not isinstance(updated_input, dict):
            raise ValueError("updatedInput must be an object")
        updated_output = specific.get("updatedMCPToolOutput", specific.get("updatedToolOutput"))
        if updated_output is not None and not isinstance(updated_output, str):
            updated_output = json.dumps(updated_output)
        return cls(
            decision=decision,
            reason=reason,
            updated_input=updated_input if event == "PreToolUse" else None,
            updated_output=updated_output if event == "PostToolUse" else None,
            additional_context=str(specific.get("additionalContext") or ""),
        )


HookFunction: TypeAlias = Callable[[HookCall], HookAnswer | Awaitable[HookAnswer | None] | None]
"""A Python hook: sync or async, returns an answer or None for no opinion."""


@dataclass(frozen=True, kw_only=True)
class Hook(ABC):
    """Something that runs before or after matching tools."""

    name: str
    """Shown in `decided_by` as `hook:NAME`."""
    event: HookEvent
    """Before or after the tool."""
    matcher: str = "*"
    """Tool names it applies to: `*` or empty for all, else a regular expression (`a|b`)
    matching the whole name (or, if it is not one, a glob)."""
    timeout: float = 30.0
    """Seconds before it counts as failed."""

    def matches(self, tool_name: str) -> bool:
        """True when this hook applies to `tool_name`."""
        if self.matcher in ("", "*"):
            return True
        try:
            return re.fullmatch(self.matcher, tool_name) is not None
        except re.error:  # not a regular expression: read it as a glob
            return fnmatch.fnmatchcase(tool_name, self.matcher)

    async def run(self, call: HookCall) -> HookAnswer:
        """The hook's answer; a crash or a timeout becomes a failed answer that denies."""
        try:
            async with asyncio.timeout(self.timeout):
                answer = await self._answer(call)
        except TimeoutError:
            return self._failure(f"timed out after {self.timeout:g}s")
        except Exception as exc:
            return self._failure(f"crashed: {type(exc).__name__}: {exc}")
        return answer or HookAnswer()

    @abstractmethod
    async def _answer(self, call: HookCall) -> HookAnswer | None:
        """Ask the hook; may raise (and so fail)."""

    def _failure(self, what: str) -> HookAnswer:
        return HookAnswer(
            decision="deny", reason=f"hook {self.name} {what}; failing closed", failed=True
        )


@dataclass(frozen=True, kw_only=True)
class CallableHook(Hook):
    """A hook written in Python; sync functions run off the event loop."""

    fn: HookFunction = field(repr=False)
    """The function."""

    async def _answer(self, call: HookCall) -> HookAnswer | None:
        result: object
        if inspect.iscoroutinefunction(self.fn):
            result = self.fn(call)
        else:
            sync_fn: Callable[[HookCall], object] = self.fn
            result = await asyncio.to_thread(sync_fn, call)
        if inspect.isawaitable(result):
            result = await result
        if result is not None and not isinstance(result, HookAnswer):
            raise TypeError(f"returned {type(result).__name__}, not HookAnswer or None")
        return result


@dataclass(frozen=True, kw_only=True)
class CommandHook(Hook):
    """An executable that gets the call as JSON on stdin and may answer JSON on stdout."""

    command: str
    """Shell command (run by `sh -c` in the workspace)."""

    @classmethod
    def from_config(cls, config: HookConfig) -> CommandHook:
        """The hook a settings entry describes."""
        return cls(
            name=config.name or config.command,
            event=config.event,
            matcher=config.matcher,
            timeout=config.timeout,
            command=config.command,
        )

    async def _answer(self, call: HookCall) -> HookAnswer | None:
        env = {**os.environ, "BASSI_PROJECT_DIR": call.cwd, "CLAUDE_PROJECT_DIR": call.cwd}
        proc = await asyncio.create_subprocess_shell(
            self.command,
            cwd=call.cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = await proc.communicate(json.dumps(call.to_json()).encode())
        finally:
            if proc.returncode is None:  # timed out or cancelled
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        err = stderr.decode("utf-8", errors="replace").strip()
        if proc.returncode == 2:
            return HookAnswer(decision="deny", reason=err or f"hook {self.name} exited with 2")
        if proc.returncode != 0:
            detail = f": {err}" if err else ""
            return self._failure(f"failed with exit code {proc.returncode}{detail}")
        text = stdout.decode("utf-8", errors="replace").strip()
        if not text.startswith("{"):
            return None  # plain text on exit 0 is a log line, not an answer
        try:
            return HookAnswer.from_json(json.loads(text), event=call.event)
        except ValueError as exc:
            return self._failure(f"gave an unreadable answer: {exc}")


def command_hooks(configs: Iterable[HookConfig]) -> tuple[CommandHook, ...]:
    """The command hooks configured in settings."""
    return tuple(CommandHook.from_config(c) for c in configs)


def pre_tool_hook(
    *, name: str | None = None, matcher: str = "*", timeout: float = 30.0
) -> Callable[[HookFunction], CallableHook]:
    """Decorator: make a PreToolUse hook of a function."""
    return lambda fn: CallableHook(
        name=name or str(getattr(fn, "__name__", "hook")),
        event="PreToolUse",
        matcher=matcher,
        timeout=timeout,
        fn=fn,
    )


def post_tool_hook(
    *, name: str | None = None, matcher: str = "*", timeout: float = 30.0
) -> Callable[[HookFunction], CallableHook]:
    """Decorator: make a PostToolUse hook of a function."""
    return lambda fn: CallableHook(
        name=name or str(getattr(fn, "__name__", "hook")),
        event="PostToolUse",
        matcher=matcher,
        timeout=timeout,
        fn=fn,
    )


@dataclass(frozen=True, kw_only=True)
class HookedOutput:
    """A tool's output after the post-tool hooks."""

    output: str
    """Text shown to the model."""
    is_error: bool
    """Whether it counts as a failure."""
    changed_by: tuple[str, ...] = ()
    """Names of the hooks that changed it."""


async def apply_post_hooks(
    hooks: Sequence[Hook], call: HookCall, *, output: str, is_error: bool
) -> HookedOutput:
    """Run the matching PostToolUse hooks in order, each seeing the output the last one left.

    A failed hook withholds the output (it may have been there to redact it).
    """
    changed: list[str] = []
    for hook in hooks:
        if hook.event != "PostToolUse" or not hook.matches(call.tool_name):
            continue
        response = {"output": output, "is_error": is_error}
        answer = await hook.run(replace(call, tool_response=response))
        if answer.failed:
            return HookedOutput(
                output=f"[output withheld: {answer.reason}]",
                is_error=True,
                changed_by=(*changed, hook.name),
            )
        before = (output, is_error)
        if answer.updated_output is not None:
            output = answer.updated_output
        if answer.decision == "deny":
            is_error = True
            output += f"\n[hook {hook.name}: {answer.reason or 'blocked'}]"
        if answer.additional_context:
            output += f"\n{answer.additional_context}"
        if (output, is_error) != before:
            changed.append(hook.name)
    return HookedOutput(output=output, is_error=is_error, changed_by=tuple(changed))
