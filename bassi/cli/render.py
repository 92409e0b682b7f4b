"""How events look in a terminal: one-line summaries (`events tail`) and a live run view."""

from __future__ import annotations

import json
import re
import sys
from typing import Any, TextIO, assert_never

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from bassi import events as ev
from bassi.messages import Usage

STOPPED_SHORT = {
    "max_tokens": "the reply hit the token limit",
    "max_turns": "the run hit its turn limit",
    "refusal": "the model refused",
    "model_context_window_exceeded": "the conversation no longer fits the model",
}
"""Stop reasons a user should hear about: the answer may be incomplete (the web UI says the
same)."""


def console(*, stderr: bool = False, width: int = 200) -> Console:
    """A console for the terminal, at its width; or for a pipe or a file, which has none: then
    `width` columns for tables, and text left unwrapped (Rich would fold it at 80)."""
    terminal = (sys.stderr if stderr else sys.stdout).isatty()
    return Console(
        stderr=stderr,
        highlight=False,
        width=None if terminal else width,
        soft_wrap=not terminal,
    )


_CONTROL = re.compile(r"\r\n|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""What a terminal would act on rather than show: C0 controls but newline and tab (ESC starts
colour, cursor, title and clipboard sequences; a lone CR overwrites the line), DEL, C1 controls
(U+009B is CSI on terminals that take C1 in UTF-8) and the bidi overrides and isolates that
reorder what is seen (Trojan Source)."""


def _shown(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\r\n":  # a Windows line end is a line end, not something to point at
        return "\n"
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def visible(text: str) -> str:
    """`text` safe to print to a terminal: every control character but newline and tab as a
    `\\x1b`-style escape (bidi controls as `\\u202e`), so text that came from a model, a tool
    or the log can be read but cannot clear the screen, retitle the window, or hide text.

    Every place the CLI shows such text to a person goes through here; `--json`, `--csv` and
    exports are data, and stay as they are.
    """
    return _CONTROL.sub(_shown, text)


def clip(text: str, width: int = 80) -> str:
    """One line of at most `width` characters."""
    flat = " ".join(text.split()) if "\n" in text else text
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def compact(data: Any) -> str:
    """JSON without spaces after separators, for inputs in one line."""
    return json.dumps(data, ensure_ascii=False, separators=(", ", ": "))


def usage_text(usage: Usage) -> str:
    """`12 in / 34 out tokens`."""
    return f"{usage.input_tokens} in / {usage.output_tokens} out tokens"


def summary(event: ev.Event) -> str:
    """What happened, in one line, without the envelope."""
    match event:
        case ev.SessionStarted():
            return f"model={event.model} mode={event.permission_mode} title={event.title!r}"
        case ev.ModelSwitched():
            return f"{event.previous} -> {event.model}"
        case ev.PermissionModeChanged():
            return f"{event.previous} -> {event.mode}"
        case ev.PermissionRuleAdded():
            return f"{event.rule} (by {event.added_by})"
        case ev.SessionRecovered():
            calls = len(event.interrupted_tool_calls)
            return f"action={event.action} interrupted_tool_calls={calls}"
        case ev.SessionEnded():
            return event.reason
        case ev.PromptReceived():
            return clip(event.content)
        case ev.RunStarted():
            return f"model={event.model}" + (" resumed" if event.resumed else "")
        case ev.PlanGenerated():
            return clip(event.plan)
        case ev.RunCompleted():
            return (
                f"{event.stop_reason}, {event.turns} turns, {usage_text(event.usage)}, "
                f"{event.duration_ms} ms"
            )
        case ev.RunCancelled():
            return f"{event.mode} {event.reason}".strip()
        case ev.RunFailed():
            return f"{event.error_type}: {clip(event.message)}"
        case ev.RunInterrupted():
            return event.reason
        case ev.MessageStarted():
            return f"{event.provider}:{event.model}".strip(":")
        case ev.ContentBlockStarted():
            tool = f" {event.tool_name}" if event.tool_name else ""
            return f"#{event.index} {event.block_type}{tool}"
        case ev.TokenDelta():
            return f"{event.channel} {event.text!r}"
        case ev.ContentBlockStopped():
            return f"#{event.index}"
        case ev.MessageCompleted():
            return f"{event.stop_reason}, {usage_text(event.usage)}"
        case ev.PermissionRequested():
            return f"{event.tool_name} {clip(compact(event.input), 60)} ({event.reason})"
        case ev.PermissionDecided():
            why = f": {event.reason}" if event.reason else ""
            return f"{event.decision} {event.tool_name} by {event.decided_by}{why}"
        case ev.ToolCallStarted():
            return f"{event.tool_name} {clip(compact(event.input), 60)}"
        case ev.ToolCallCompleted():
            error = " error" if event.is_error else ""
            return f"{event.tool_name}{error} {event.duration_ms} ms: {clip(event.output, 60)}"
        case ev.ToolCallFailed():
            cut = " interrupted" if event.interrupted else ""
            return f"{event.tool_name}{cut}: {clip(event.error, 60)}"
        case ev.Error():
            return f"{event.where} {event.error_type}: {clip(event.message)}"
        case _:
            assert_never(event)


def line(event: ev.Event) -> str:
    """`position  session  seq  type  summary` for `events tail`."""
    return visible(
        f"{event.position or 0:>6}  {event.session_id[:8]}  #{event.seq:<4} "
        f"{event.type:<22} {summary(event)}"
    )


def wire_json(event: ev.Event) -> str:
    """The event's wire form as one JSON line (the same text the log and the streams give)."""
    return event.model_dump_json()


class LiveView:
    """Prints a run as it happens: streamed text, dimmed thinking, tool cards, the outcome.

    `text` receives the reply (stdout for `bassi run`); `console` everything else.
    """

    def __init__(self, console: Console, *, text: TextIO | None = None) -> None:
        self.console = console
        self.text = text
        self._column = 0  # characters printed on the current line of streamed output
        self._streamed: set[str] = set()

    def _write(self, chunk: str, style: str | None = None) -> None:
        if not chunk:
            return
        chunk = visible(chunk)
        if self.text is not None and style is None:
            self.text.write(chunk)
            self.text.flush()
        else:
            self.console.print(chunk, style=style, end="", markup=False, highlight=False)
            self.console.file.flush()
        self._column = 0 if chunk.endswith("\n") else self._column + len(chunk)

    def newline(self) -> None:
        """End the line of streamed output, if one is open."""
        if self._column:
            self._write("\n")

    def note(self, message: str, style: str = "dim") -> None:
        """A line about the run (not part of the reply)."""
        self.newline()
        self.console.print(visible(message), style=style, markup=False, highlight=False)

    def show(self, event: ev.Event) -> None:
        """Render one event of a run."""
        match event:
            case ev.TokenDelta(channel="text"):
                self._streamed.add(event.message_id)
                self._write(event.text)
            case ev.TokenDelta(channel="thinking"):
                self._streamed.add(event.message_id)
                self._write(event.text, style="dim italic")
            case ev.ContentBlockStopped():
                self.newline()
            case ev.MessageCompleted() if event.message_id not in self._streamed:
                # Nothing was streamed (a provider that does not stream): print it whole.
                for block in event.content:
                    if block.type == "text":
                        self._write(block.text)
                    elif block.type == "thinking":
                        self._write(block.thinking, style="dim italic")
                    self.newline()
            case ev.ToolCallStarted():
                self.newline()
                self.console.print(
                    Panel(
                        escape(visible(compact(event.input))),
                        title=f"tool {escape(visible(event.tool_name))}",
                        title_align="left",
                        expand=False,
                        border_style="cyan",
                    )
                )
            case ev.ToolCallCompleted():
                lines = visible(event.output).splitlines() or [""]
                shown = "\n".join(clip(x, 100) for x in lines[:6])
                more = f"\n… {len(lines) - 6} more lines" if len(lines) > 6 else ""
                style = "red" if event.is_error else "dim"
                self.note(f"  {event.tool_name} ({event.duration_ms} ms):", style)
                self.console.print(escape(shown + more), style=style, highlight=False)
            case ev.ToolCallFailed():
                cut = "interrupted" if event.interrupted else "failed"
                self.note(f"  {event.tool_name} {cut}: {event.error}", "red")
            case ev.RunCompleted():
                self.newline()
                if event.stop_reason in STOPPED_SHORT:
                    self.note(f"run completed: {STOPPED_SHORT[event.stop_reason]}", "yellow")
            case ev.RunCancelled():
                self.note(f"run cancelled{': ' + event.reason if event.reason else ''}", "yellow")
            case ev.RunFailed():
                self.note(f"run failed: {event.message}", "red")
            case ev.RunInterrupted():
                self.note(f"run interrupted: {event.reason}", "yellow")
            case ev.Error():
                self.note(f"error in {event.where}: {event.message}", "red")
            case _:
                pass
