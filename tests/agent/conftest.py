"""Fixtures for the agent loop and the session manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bassi.manager import SessionManager
from bassi.settings import Settings


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings isolated from the machine's ~/.bassi and BASSI_* variables."""
    return Settings.load({"home": tmp_path / "home", **overrides}, environ={})


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty workspace directory for tools."""
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    """A fresh SQLite file."""
    return str(tmp_path / "bassi.db")


@pytest.fixture
async def manager(tmp_path: Path, db_path: str) -> AsyncIterator[SessionManager]:
    """A session manager on a fresh SQLite file."""
    async with SessionManager.open(db_path, settings=make_settings(tmp_path)) as m:
        yield m
