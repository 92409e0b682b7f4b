"""`bassi sessions list|show|export|end`."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bassi import events as ev
from bassi.cli.app import DbOption, app, existing_db, load_settings, run
from bassi.cli.lookup import find_session, reading
from bassi.cli.render import compact, console, usage_text, visible
from bassi.messages import TextBlock, ThinkingBlock, ToolResultBlock, ToolUseBlock
from bassi.session import FOLD_TYPES, SessionState, replay
from bassi.store.readmodel import SessionSummary
from bassi.store.rows import WireRow

sessions_app = typer.Typer(help="List, show, export and end sessions.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")

SessionArg = Annotated[str, typer.Argument(help="Session id (or a unique prefix).")]


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    markdown = "markdown"


def _console() -> Console:
    return console(width=160)


@sessions_app.command("list")
def list_sessions(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    db: DbOption = None,
) -> None:
    """Every session, newest first."""
    url = existing_db(db)

    async def main() -> list[SessionSummary]:
        async with reading(url) as log:
            return await log.sessions()

    rows = run(main)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row.as_row()))
        return
    if not rows:
        typer.echo('no sessions yet: try `bassi run "hello"` or `bassi chat`')
        return
    table = Table("id", "title", "status", "model", "runs", "tokens in/out", "updated")
    for s in rows:
        table.add_row(
            Text(s.session_id),
            Text(visible(s.title or "-")),
            Text(s.status),
            Text(visible(s.model)),
            str(s.runs),
            f"{s.input_tokens}/{s.output_tokens}",
            Text(s.updated_at[:19].replace("T", " ")),
        )
    _console().print(table)


async def _load(url: str, given: str) -> tuple[SessionSummary, SessionState]:
    async with reading(url) as log:
        summary = await find_session(log, given)
        state = replay(await log.read(session_id=summary.session_id, types=FOLD_TYPES))
        return summary, state


@sessions_app.command("show")
def show(session: SessionArg, db: DbOption = None) -> None:
    """A session's settings, status, usage, pending approvals and conversation."""
    url = existing_db(db)
    summary, state = run(lambda: _load(url, session))
    out = _console()
    facts = {
        "id": state.session_id,
        "title": state.title or "-",
        "status": summary.status,
        "model": state.model,
        "permission mode": state.permission_mode,
        "workspace": state.workspace or "-",
        "created": summary.created_at,
        "runs": str(summary.runs),
        "usage": usage_text(state.usage),
        "events": str(summary.last_seq),
    }
    for key, value in facts.items():
        out.print(Text.assemble((f"{key:>16}  ", "bold"), visible(value)))
    for pending in state.pending_approvals.values():
        out.print(
            Text(
                visible(
                    f"  awaiting approval: {pending.tool_name} {compact(dict(pending.input))} "
                    f"(tool call {pending.tool_call_id})"
                ),
                style="yellow",
            )
        )
    out.print()
    out.print(Text(visible(_markdown_body(state))))


@sessions_app.command("export")
def export(
    session: SessionArg,
    fmt: Annotated[
        ExportFormat,
        typer.Option("--format", "-f", help="jsonl: every event; markdown: transcript."),
    ] = ExportFormat.jsonl,
    db: DbOption = None,
) -> None:
    """Every event as JSON lines (the wire format), or the conversation as Markdown."""
    url = existing_db(db)

    async def lines() -> list[WireRow]:
        async with reading(url) as log:
            summary = await find_session(log, session)
            return await log.read_wire(session_id=summary.session_id)

    async def folded() -> list[ev.Event]:
        async with reading(url) as log:
            summary = await find_session(log, session)
            return await log.read(session_id=summary.session_id, types=FOLD_TYPES)

    if fmt is ExportFormat.jsonl:
        sys.stdout.writelines(text + "\n" for _, _, text in run(lines))
        return
    state = replay(run(folded))
    head = f"# {state.title or 'Session ' + state.session_id}\n\n"
    head += f"- session: `{state.session_id}`\n- model: `{state.model}`\n"
    head += f"- usage: {usage_text(state.usage)}\n\n"
    sys.stdout.write(head + _markdown_body(state))


def _markdown_body(state: SessionState) -> str:
    """The conversation as Markdown: user and assistant turns, thinking quoted, tools fenced."""
    parts: list[str] = []
    for message in state.messages:
        results = [b for b in message.content if isinstance(b, ToolResultBlock)]
        if message.role == "user" and results and len(results) == len(message.content):
            for result in results:
                label = "error" if result.is_error else "result"
                parts.append(f"**tool {label}**\n\n```\n{result.content}\n```\n")
            continue
        parts.append("## User\n" if message.role == "user" else "## Assistant\n")
        for block in message.content:
            match block:
                case TextBlock():
                    parts.append(block.text + "\n")
                case ThinkingBlock():
                    parts.append("\n".join("> " + x for x in block.thinking.splitlines()) + "\n")
                case ToolUseBlock():
                    parts.append(
                        f"**tool call** `{block.name}`\n\n```json\n{compact(block.input)}\n```\n"
                    )
                case ToolResultBlock():
                    parts.append(f"**tool result**\n\n```\n{block.content}\n```\n")
    return "\n".join(parts)


@sessions_app.command("end")
def end(
    session: SessionArg,
    reason: Annotated[str, typer.Option("--reason", help="Why, kept in the log.")] = "",
    db: DbOption = None,
) -> None:
    """End a session: it takes no more prompts."""
    from bassi.manager import SessionManager

    url = existing_db(db)
    settings = load_settings()

    async def main() -> str:
        async with reading(url) as log:
            session_id = (await find_session(log, session)).session_id
        async with SessionManager.open(url, settings=settings, recover=False) as manager:
            await manager.end(session_id, reason)
        return session_id

    typer.echo(f"ended session {run(main)}")
