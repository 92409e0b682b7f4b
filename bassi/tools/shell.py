"""The `bash` tool: a command in the workspace, in its own process group, with a timeout and an
output cap; the whole group is killed when the command ends, times out or is cancelled, and
within a second or so of bassi's own death (`_GUARD`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from bassi.errors import ToolTimeout
from bassi.tools.base import ToolContext, ToolResult, tool
from bassi.tools.output import marker

MAX_TIMEOUT = 600.0
"""Longest timeout a command may ask for, in seconds."""

_KILL_GRACE = 0.3
"""Seconds between SIGTERM and SIGKILL to the process group."""

_DRAIN_GRACE = 1.0
"""Seconds to wait for the pipes to close after the group is killed."""

_POLL = 0.01
"""Seconds between looks at whether bash has exited."""

_GUARD = (
    '( (while kill -0 "$PPID" && kill -0 "$$"; do sleep 1; done; kill -KILL 0) & ) '
    "</dev/null >/dev/null 2>&1; "
    'exec bash -c "$1"'
)
"""What bash runs first: a watcher in the command's process group that kills the group once
the process that started it (bassi) or the command is gone, then the command itself, in place
of this shell (so it keeps the pid and leads the group). bassi kills the group when the
command ends, times out or is cancelled; but if bassi itself is killed (SIGKILL, a crash)
nothing would, and a command and its children could run on for ever. The watcher is forked
twice, so it is not the command's child (a command that waits for all its children would wait
for it). In every subshell `$PPID` is bassi's pid and `$$` the command's."""


class BashInput(BaseModel):
    """Arguments of `bash`."""

    model_config = ConfigDict(extra="forbid")

    command: Annotated[str, Field(min_length=1, description="The command line, run by bash -c.")]
    timeout: Annotated[
        float,
        Field(gt=0, le=MAX_TIMEOUT, description="Seconds before the command is killed."),
    ] = 120.0


@tool(name="bash", kind="exec", rule_field="command", timeout=MAX_TIMEOUT + 30)
async def bash(args: BashInput, ctx: ToolContext) -> ToolResult:
    """Run a bash command in the workspace. Returns stdout, stderr and the exit code.

    Background processes it starts are killed when it returns.
    """
    spawn = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            "bash",
            "-c",
            _GUARD,
            "bash",  # $0: what bash's own messages start with, as if it ran the command alone
            args.command,
            cwd=ctx.workspace,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    )
    try:
        proc = await asyncio.shield(spawn)
    except asyncio.CancelledError:
        # Cancelled while bash was starting: asyncio would kill bash alone, and whatever it
        # had started yet (the watcher) would live on. Let it start, then stop the group.
        with contextlib.suppress(Exception):
            await _stop(await spawn, [])
        raise
    assert proc.stdout is not None and proc.stderr is not None
    out = _Capture(cap=ctx.output_cap)
    err = _Capture(cap=ctx.output_cap)
    readers = [
        asyncio.create_task(out.read(proc.stdout)),
        asyncio.create_task(err.read(proc.stderr)),
    ]
    timed_out = False
    try:
        async with asyncio.timeout(args.timeout):
            code = await _exit_code(proc)
    except TimeoutError:
        timed_out = True
    finally:
        # Always, also on success: background children must not outlive the call. On cancel
        # this runs while CancelledError propagates.
        await _stop(proc, readers)
    if timed_out:
        so_far = _render(out, err, None, ctx.output_cap)[0].strip()
        raise ToolTimeout(
            f"command timed out after {args.timeout:g}s; its process group was killed"
            + (f"\noutput so far:\n{so_far}" if so_far else "")
        )
    text, truncated = _render(out, err, code, ctx.output_cap)
    return ToolResult(
        output=text,
        is_error=code != 0,
        truncated=truncated,
        original_size=out.total + err.total,
    )


@dataclass
class _Capture:
    """Reads a pipe to its end, keeping at most `cap` bytes and counting the rest."""

    cap: int
    kept: bytearray = field(default_factory=bytearray)
    total: int = 0

    async def read(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self.total += len(chunk)
            room = self.cap - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]

    def text(self, budget: int) -> str:
        text = self.kept[:budget].decode("utf-8", errors="replace")
        if self.total > budget:
            text += marker(kept=min(budget, len(self.kept)), original_size=self.total)
        return text


def _render(out: _Capture, err: _Capture, code: int | None, cap: int) -> tuple[str, bool]:
    """Output shown to the model (stdout, stderr, exit code within the cap) and whether it was cut.

    stderr gets at least a quarter of the cap when stdout would fill it.
    """
    err_budget = min(len(err.kept), max(cap - len(out.kept), cap // 4))
    out_budget = cap - err_budget
    parts = [out.text(out_budget)]
    if err.total:
        parts.append(f"[stderr]\n{err.text(err_budget)}")
    if code is not None:
        parts.append(f"[exit code {code}]" if code >= 0 else f"[killed by signal {-code}]")
    text = "\n".join(p.rstrip("\n") for p in parts if p)
    return text, out.total > out_budget or err.total > err_budget


async def _exit_code(proc: asyncio.subprocess.Process) -> int:
    """Wait for bash itself to exit.

    Not `proc.wait()`: that also waits for the pipes to close, which background children hold.
    """
    while proc.returncode is None:  # noqa: ASYNC110 - no event tells of the exit alone
        await asyncio.sleep(_POLL)
    return proc.returncode


async def _stop(proc: asyncio.subprocess.Process, readers: list[asyncio.Task[None]]) -> None:
    """Kill the process group (TERM, then KILL) and wait for the pipes to drain."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_exit_code(proc), _KILL_GRACE)
    finally:
        _signal_group(proc.pid, signal.SIGKILL)
    _, pending = await asyncio.wait(readers, timeout=_DRAIN_GRACE)
    for task in pending:  # a grandchild that left the group still holds a pipe
        task.cancel()
    await _exit_code(proc)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
