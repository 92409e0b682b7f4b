"""Asking the person at the terminal whether a tool call may run: y / n / always."""

from __future__ import annotations

from typing import Literal

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from bassi import events as ev
from bassi.cli.render import compact, visible

Answer = Literal["y", "n", "always"]

_ANSWERS: dict[str, Answer] = {
    "y": "y",
    "yes": "y",
    "n": "n",
    "no": "n",
    "a": "always",
    "always": "always",
}

TERMINAL_USER = "terminal"
"""Who the events say answered an approval at the terminal (`decided_by = user:terminal`), as
the web's answers are `user:web`."""


def ask(console: Console, request: ev.PermissionRequested) -> Answer:
    """Show the call and read an answer; end of input counts as no."""
    body = Text(visible(compact(request.input)))
    if request.reason:
        # In the panel, not on its border: a border is as wide as the call, and would cut a
        # reason longer than that off mid-word.
        body.append("\n" + visible(request.reason), style="italic")
    console.print(
        Panel(
            body,
            title=f"allow {escape(visible(request.tool_name))}?",
            title_align="left",
            expand=False,
            border_style="yellow",
        )
    )
    while True:
        try:
            reply = input("allow? [y]es / [n]o / [a]lways: ").strip().lower()
        except EOFError:
            return "n"
        if reply in _ANSWERS:
            return _ANSWERS[reply]
        console.print("please answer y, n or always", style="yellow")
