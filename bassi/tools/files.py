"""File tools: `read_file`, `write_file`, `edit_file`, each confined to the workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from bassi.errors import ToolError
from bassi.tools.base import ToolContext, tool
from bassi.tools.workspace import atomic_write, confine, relative

MAX_READ_LINES = 2000
"""Lines `read_file` returns unless asked for fewer."""

_SNIFF_BYTES = 8192


class ReadFileInput(BaseModel):
    """Arguments of `read_file`."""

    model_config = ConfigDict(extra="forbid")

    path: Annotated[str, Field(description="File path, relative to the workspace.")]
    offset: Annotated[int, Field(ge=1, description="First line to return (1-based).")] = 1
    limit: Annotated[int, Field(ge=1, le=MAX_READ_LINES, description="Most lines to return.")] = (
        MAX_READ_LINES
    )


class WriteFileInput(BaseModel):
    """Arguments of `write_file`."""

    model_config = ConfigDict(extra="forbid")

    path: Annotated[str, Field(description="File path, relative to the workspace.")]
    content: Annotated[str, Field(description="The whole new content of the file.")]


class EditFileInput(BaseModel):
    """Arguments of `edit_file`."""

    model_config = ConfigDict(extra="forbid")

    path: Annotated[str, Field(description="File path, relative to the workspace.")]
    old_string: Annotated[str, Field(min_length=1, description="Exact text to replace.")]
    new_string: Annotated[str, Field(description="Text to put in its place.")]
    replace_all: Annotated[
        bool, Field(description="Replace every occurrence instead of exactly one.")
    ] = False


@tool(name="read_file", read_only=True, idempotent=True, rule_field="path", rule_style="path")
def read_file(args: ReadFileInput, ctx: ToolContext) -> str:
    """Read a text file in the workspace. Lines are numbered; use offset and limit to page."""
    path = confine(ctx.workspace, args.path)
    text = _read_text(path, shown=args.path)
    lines = text.splitlines()
    start = args.offset - 1
    if start >= len(lines) and lines:
        raise ToolError(f"{args.path} has {len(lines)} lines; offset {args.offset} is past the end")
    chosen = lines[start : start + args.limit]
    body = "\n".join(f"{start + i + 1:>6}\t{line}" for i, line in enumerate(chosen))
    rest = len(lines) - start - len(chosen)
    if rest > 0:
        body += f"\n[{rest} more lines; continue with offset {start + len(chosen) + 1}]"
    return body if lines else f"[{args.path} is empty]"


@tool(name="write_file", kind="edit", rule_field="path", rule_style="path", idempotent=True)
def write_file(args: WriteFileInput, ctx: ToolContext) -> str:
    """Create or overwrite a file in the workspace with the given content (atomically)."""
    path = confine(ctx.workspace, args.path)
    if path.is_dir():
        raise ToolError(f"{args.path} is a directory")
    data = args.content.encode("utf-8")
    atomic_write(path, data)
    return f"wrote {len(data)} bytes to {relative(ctx.workspace, path)}"


@tool(name="edit_file", kind="edit", rule_field="path", rule_style="path")
def edit_file(args: EditFileInput, ctx: ToolContext) -> str:
    """Replace an exact string in a file; it must occur exactly once unless replace_all is set."""
    path = confine(ctx.workspace, args.path)
    text = _read_text(path, shown=args.path)
    count = text.count(args.old_string)
    if count == 0:
        raise ToolError(f"old_string was not found in {args.path}; nothing was changed")
    if count > 1 and not args.replace_all:
        lines = _match_lines(text, args.old_string)
        raise ToolError(
            f"old_string occurs {count} times in {args.path} (lines {', '.join(map(str, lines))});"
            " include more context to make it unique, or set replace_all; nothing was changed"
        )
    atomic_write(path, text.replace(args.old_string, args.new_string).encode("utf-8"))
    done = f"{count} occurrences" if count > 1 else "1 occurrence"
    return f"replaced {done} in {relative(ctx.workspace, path)}"


def _read_text(path: Path, *, shown: str) -> str:
    if not path.exists():
        raise ToolError(f"{shown} does not exist")
    if path.is_dir():
        raise ToolError(f"{shown} is a directory; use list_dir")
    data = path.read_bytes()
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise ToolError(f"{shown} is a binary file ({len(data)} bytes); only text can be read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(
            f"{shown} is not UTF-8 text ({len(data)} bytes); only text can be read"
        ) from None


def _match_lines(text: str, needle: str) -> list[int]:
    lines, start = [], 0
    while (found := text.find(needle, start)) != -1:
        lines.append(text.count("\n", 0, found) + 1)
        start = found + 1
    return lines
