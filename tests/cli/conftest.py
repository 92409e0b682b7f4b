"""Run `bassi` as a user does: real subprocesses, a private BASSI_HOME, no provider keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from bassi.models.catalog import PROVIDERS


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user with no keys and no bassi variables, home in `home`."""
    keys = {p.key_variable for p in PROVIDERS.values()} | {"OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASSI_") and k not in keys}
    env.update(BASSI_HOME=str(home), NO_COLOR="1", COLUMNS="200", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@dataclass
class Bassi:
    """Runs `python -m bassi.cli ...` with a database and a home of its own."""

    home: Path
    db: Path
    cwd: Path

    def command(self, *args: str, db: bool = True) -> list[str]:
        return [sys.executable, "-m", "bassi.cli", *args, *(["--db", str(self.db)] if db else [])]

    def __call__(
        self,
        *args: str,
        db: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args, db=db),
            cwd=self.cwd,
            env=clean_env(self.home, **(env or {})),
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def json_lines(self, *args: str) -> list[dict[str, object]]:
        result = self(*args)
        assert result.returncode == 0, result.stderr
        return [json.loads(x) for x in result.stdout.splitlines()]


def make_bassi(root: Path) -> Bassi:
    workspace = root / "workspace"
    workspace.mkdir(parents=True)
    return Bassi(home=root / "home", db=root / "bassi.db", cwd=workspace)


@pytest.fixture
def bassi(tmp_path: Path) -> Bassi:
    """A fresh home, database and workspace."""
    return make_bassi(tmp_path)


def run_ends(bassi: Bassi) -> list[tuple[str, str | None]]:
    """(outcome, detail) of every run on record, from `bassi audit`."""
    result = bassi("audit", "SELECT outcome, detail FROM audit_runs", "--json")
    assert result.returncode == 0, result.stderr
    return [(r["outcome"], r["detail"]) for r in json.loads(result.stdout)]


def streaming_run(bassi: Bassi, tokens: int) -> subprocess.Popen[bytes]:
    """`bassi run "/stream TOKENS 5"`, once it has printed its first bytes."""
    process = subprocess.Popen(
        bassi.command("run", f"/stream {tokens} 5", "--model", "scripted"),
        cwd=bassi.cwd,
        env=clean_env(bassi.home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(20)  # the run streams
    return process


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single readable stderr line of a failed command (never a traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bassi: ")
    return lines[0]


@pytest.fixture
def pg_server() -> str:
    """The test PostgreSQL server's admin URL (skips without one, unless it is required)."""
    url = os.environ.get("BASSI_TEST_POSTGRES_URL", "")
    if not url:
        if os.environ.get("BASSI_REQUIRE_POSTGRES"):
            pytest.fail("BASSI_REQUIRE_POSTGRES is set but BASSI_TEST_POSTGRES_URL is not")
        pytest.skip("PostgreSQL tests need BASSI_TEST_POSTGRES_URL")
    return url


@pytest.fixture
def empty_pg(pg_server: str) -> Iterator[str]:
    """The URL of a new PostgreSQL database with nothing in it (no bassi schema)."""
    import asyncio

    import asyncpg

    name = f"bassi_cli_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{pg_server.rpartition('/')[0]}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
