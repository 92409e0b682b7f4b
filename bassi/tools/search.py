"""Looking around the workspace: `list_dir` and `grep`."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from bassi.errors import ToolError, ToolInputError
from bassi.tools.base import ToolContext, tool
from bassi.tools.workspace import confine, relative

MAX_ENTRIES = 1000
"""Most entries `list_dir` shows."""

SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv"})
"""Directories `grep` does not descend into."""

_MAX_GREP_FILE = 5_000_000


class ListDirInput(BaseModel):
    """Arguments of `list_dir`."""

    model_config = ConfigDict(extra="forbid")

    path: Annotated[str, Field(description="Directory, relative to the workspace.")] = "."


class GrepInput(BaseModel):
    """Arguments of `grep`."""

    model_config = ConfigDict(extra="forbid")

    pattern: Annotated[str, Field(min_length=1, description="Python regular expression.")]
    path: Annotated[str, Field(description="File or directory to search.")] = "."
    glob: Annotated[
        str | None, Field(description="Only files whose name or relative path matches, e.g. *.py")
    ] = None
    ignore_case: bool = False
    max_results: Annotated[int, Field(ge=1, le=10_000, description="Most matching lines.")] = 200


@tool(name="list_dir", read_only=True, idempotent=True, rule_field="path", rule_style="path")
def list_dir(args: ListDirInput, ctx: ToolContext) -> str:
    """List a directory in the workspace: directories end with `/`, symlinks show their target."""
    path = confine(ctx.workspace, args.path)
    if not path.is_dir():
        raise ToolError(f"{args.path} is not a directory")
    entries = sorted(os.scandir(path), key=lambda e: e.name)
    lines = [_describe(entry) for entry in entries[:MAX_ENTRIES]]
    if len(entries) > MAX_ENTRIES:
        lines.append(f"[{len(entries) - MAX_ENTRIES} more entries not shown]")
    return "\n".join(lines) if lines else f"[{relative(ctx.workspace, path)} is empty]"


@tool(name="grep", read_only=True, idempotent=True, rule_field="path", rule_style="path")
def grep(args: GrepInput, ctx: ToolContext) -> str:
    """Search file contents in the workspace for a regular expression; prints path:line:text."""
    try:
        regex = re.compile(args.pattern, re.IGNORECASE if args.ignore_case else 0)
    except re.error as exc:
        raise ToolInputError(f"grep: invalid pattern: {exc}", field="pattern") from exc
    root = confine(ctx.workspace, args.path)
    if not root.exists():
        raise ToolError(f"{args.path} does not exist")
    hits: list[str] = []
    more = False
    for file in _files(root, ctx.workspace):
        shown = relative(ctx.workspace, file)
        if args.glob and not (
            fnmatch.fnmatch(file.name, args.glob) or fnmatch.fnmatch(shown, args.glob)
        ):
            continue
        for number, line in _lines(file):
            if regex.search(line):
                if len(hits) == args.max_results:
                    more = True
                    break
                hits.append(f"{shown}:{number}:{line[:500]}")
        if more:
            break
    if more:
        hits.append(f"[stopped at {args.max_results} matches; narrow the pattern or path]")
    return "\n".join(hits) if hits else "no matches"


def _describe(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return f"{entry.name} -> {os.readlink(entry.path)}"
    return entry.name + "/" if entry.is_dir() else entry.name


def _files(root: Path, workspace: Path) -> Iterator[Path]:
    """Regular files under `root`, sorted, never following a symlink out of the workspace."""
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        for name in sorted(filenames):
            file = Path(dirpath) / name
            if file.is_symlink():
                try:
                    file = confine(workspace, file)
                except ToolError:
                    continue
            if file.is_file():
                yield file


def _lines(file: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines of a text file; binary, huge and unreadable files yield nothing."""
    try:
        if file.stat().st_size > _MAX_GREP_FILE:
            return
        data = file.read_bytes()
    except OSError:
        return
    if b"\x00" in data[:8192]:
        return
    text = data.decode("utf-8", errors="replace")
    yield from enumerate(text.splitlines(), start=1)
