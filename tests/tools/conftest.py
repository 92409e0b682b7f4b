"""Fixtures for the tool tests: a real workspace on disk, a directory outside it, an executor."""

from __future__ import annotations

from pathlib import Path

import pytest

from bassi.tools.base import ToolContext
from bassi.tools.executor import ToolExecutor
from bassi.tools.registry import ToolRegistry


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The session's workspace, with one file in it."""
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "hello.txt").write_text("hello\nworld\n")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the workspace that tools must never touch."""
    root = tmp_path / "outside"
    root.mkdir()
    (root / "secret.txt").write_text("top secret\n")
    return root


@pytest.fixture
def ctx(workspace: Path) -> ToolContext:
    """A context for calls in the workspace."""
    return ToolContext(workspace=workspace, session_id="s1", run_id="r1", tool_call_id="c1")


@pytest.fixture
def executor() -> ToolExecutor:
    """An executor over the built-in tools."""
    return ToolExecutor(ToolRegistry.with_builtins())
