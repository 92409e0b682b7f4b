"""Must show 1: `../x`, absolute paths outside the workspace and symlinks pointing outside are
refused by every file tool; nothing outside is read or written. Real files on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bassi.tools.base import ToolContext
from bassi.tools.executor import ToolExecutor


@pytest.fixture
def links(workspace: Path, outside: Path) -> None:
    """Symlinks inside the workspace that lead out of it."""
    (workspace / "to_secret").symlink_to(outside / "secret.txt")
    (workspace / "to_outside").symlink_to(outside, target_is_directory=True)
    (workspace / "dangling").symlink_to(outside / "not_yet.txt")


def escapes(outside: Path) -> dict[str, str]:
    """Every way out, by name."""
    return {
        "dotdot": "../outside/secret.txt",
        "dotdot_nested": "sub/../../outside/secret.txt",
        "absolute": str(outside / "secret.txt"),
        "symlink_file": "to_secret",
        "symlink_dir": "to_outside/secret.txt",
        "dangling_symlink": "dangling",
    }


def calls(path: str) -> dict[str, dict[str, Any]]:
    """One call of every file tool on `path`."""
    return {
        "read_file": {"path": path},
        "write_file": {"path": path, "content": "pwned\n"},
        "edit_file": {"path": path, "old_string": "top secret", "new_string": "pwned"},
        "list_dir": {"path": path},
        "grep": {"pattern": "secret", "path": path},
    }


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


ESCAPES = [
    "dotdot",
    "dotdot_nested",
    "absolute",
    "symlink_file",
    "symlink_dir",
    "dangling_symlink",
]
TOOLS = ["read_file", "write_file", "edit_file", "list_dir", "grep"]


@pytest.mark.usefixtures("links")
@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("escape", ESCAPES)
async def test_every_file_tool_refuses_every_escape(
    executor: ToolExecutor,
    ctx: ToolContext,
    outside: Path,
    tool: str,
    escape: str,
) -> None:
    before = snapshot(outside)
    atime = os.stat(outside / "secret.txt").st_atime_ns
    outcome = await executor.run("c1", tool, calls(escapes(outside)[escape])[tool], ctx)
    assert outcome.failed, outcome.output
    assert outcome.error_type == "WorkspaceEscape"
    assert outcome.error is not None and "outside the workspace" in outcome.error
    assert "top secret" not in outcome.error
    assert snapshot(outside) == before
    assert not (outside / "not_yet.txt").exists()
    assert os.stat(outside / "secret.txt").st_atime_ns == atime


@pytest.mark.usefixtures("links")
async def test_grep_over_the_workspace_skips_links_that_lead_out(
    executor: ToolExecutor, ctx: ToolContext, workspace: Path
) -> None:
    (workspace / "notes.txt").write_text("a secret of our own\n")
    outcome = await executor.run("c1", "grep", {"pattern": "secret"}, ctx)
    assert outcome.output == "notes.txt:1:a secret of our own"


async def test_symlinks_inside_the_workspace_are_followed(
    executor: ToolExecutor, ctx: ToolContext, workspace: Path
) -> None:
    (workspace / "real").mkdir()
    (workspace / "real" / "a.txt").write_text("inside\n")
    (workspace / "alias").symlink_to(workspace / "real", target_is_directory=True)
    read = await executor.run("c1", "read_file", {"path": "alias/a.txt"}, ctx)
    assert read.output == "     1\tinside"
    wrote = await executor.run("c2", "write_file", {"path": "alias/b.txt", "content": "new\n"}, ctx)
    assert not wrote.failed
    assert (workspace / "real" / "b.txt").read_text() == "new\n"


async def test_absolute_paths_inside_the_workspace_are_fine(
    executor: ToolExecutor, ctx: ToolContext, workspace: Path
) -> None:
    outcome = await executor.run("c1", "read_file", {"path": str(workspace / "hello.txt")}, ctx)
    assert outcome.output == "     1\thello\n     2\tworld"
