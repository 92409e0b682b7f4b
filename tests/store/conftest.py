"""Event-log backends for the store's contract suite: SQLite file, SQLite memory, PostgreSQL.

PostgreSQL runs when `BASSI_TEST_POSTGRES_URL` is set (`.ci/run` sets it and also sets
`BASSI_REQUIRE_POSTGRES=1`, which turns a skip into a failure). Each test gets a fresh database
cloned from a migrated template, dropped afterwards.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest

from bassi.settings import database_url
from bassi.store import migrate
from bassi.store.eventstore import EventStore
from bassi.store.log import SqlEventLog

PG_URL = os.environ.get("BASSI_TEST_POSTGRES_URL", "")
_counter = itertools.count()


def _pg_dsn(database: str) -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database, created once per test run."""
    if not PG_URL:
        if os.environ.get("BASSI_REQUIRE_POSTGRES"):
            pytest.fail("BASSI_REQUIRE_POSTGRES is set but BASSI_TEST_POSTGRES_URL is not")
        pytest.skip("PostgreSQL tests need BASSI_TEST_POSTGRES_URL")
    import asyncio

    name = f"bassi_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def create() -> None:
        admin = await asyncpg.connect(PG_URL)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        log = SqlEventLog(database_url(_pg_dsn(name)))
        try:
            await migrate.upgrade(log.writer)
        finally:
            await log.close()

    async def drop() -> None:
        admin = await asyncpg.connect(PG_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    # Session fixtures may be set up from inside a test's event loop: run on a thread of our own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, create()).result()
        yield name
        pool.submit(asyncio.run, drop()).result()


@pytest.fixture
async def pg_url(pg_template: str) -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    name = f"bassi_t_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    finally:
        await admin.close()
    yield database_url(_pg_dsn(name))
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite_file", "sqlite_memory", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which database the contract test runs on."""
    return str(request.param)


@pytest.fixture
def url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An async SQLAlchemy URL for the backend."""
    if backend == "sqlite_file":
        return database_url(str(tmp_path / "events.db"))
    if backend == "sqlite_memory":
        return "sqlite+aiosqlite:///:memory:"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def store(url: str) -> AsyncIterator[EventStore]:
    """An open, migrated event store on the backend."""
    s = await EventStore.open(url)
    yield s
    await s.close()


@pytest.fixture
def file_url(tmp_path: Path) -> str:
    """A SQLite file URL for tests that are about SQLite itself."""
    return database_url(str(tmp_path / "events.db"))
