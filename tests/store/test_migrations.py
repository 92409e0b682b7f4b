"""Alembic owns the schema: head matches the metadata, the append-only guards survive, the wheel ships it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bassi.store import migrate
from bassi.store.log import SqlEventLog

GUARDS = {
    ("trigger", "events_no_update"),
    ("trigger", "events_no_delete"),
    ("index", "ix_events_run_id"),
    ("index", "ix_events_session_id_type"),
    ("view", "audit_tool_calls"),
    ("view", "audit_runs"),
    ("view", "audit_permissions"),
    ("view", "audit_usage"),
    ("view", "audit_messages"),
}


def schema_objects(db: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return {
            (kind, name)
            for kind, name in conn.execute(
                "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            )
        }


def test_schema_head_constant_is_the_newest_revision() -> None:
    assert migrate.head() == migrate.SCHEMA_HEAD


async def test_upgrade_head_on_an_empty_database_matches_the_metadata(file_url: str) -> None:
    log = SqlEventLog(file_url)
    try:
        assert await migrate.current(log.writer) is None
        await migrate.upgrade(log.writer)
        assert await migrate.current(log.writer) == migrate.head()
        assert await migrate.diff(log.writer) == []
    finally:
        await log.close()


async def test_guards_survive_upgrade_downgrade_upgrade(tmp_path: Path, file_url: str) -> None:
    db = tmp_path / "events.db"
    log = SqlEventLog(file_url)
    try:
        await migrate.upgrade(log.writer)
        assert schema_objects(db) >= GUARDS
        await migrate.downgrade(log.writer, "base")
        assert not (GUARDS & schema_objects(db))
        await migrate.upgrade(log.writer)
        assert schema_objects(db) >= GUARDS
    finally:
        await log.close()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO events VALUES (1, 'e1', 's', 1, NULL, 'session_ended', 1, '2026-01-01T00:00:00.000000Z', '{}')"
        )
        conn.commit()
        for sql in ("UPDATE events SET seq = 2", "DELETE FROM events"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)


async def test_postgres_guards_survive_downgrade_and_upgrade(pg_url: str) -> None:
    from sqlalchemy import text

    log = SqlEventLog(pg_url)
    try:
        await migrate.downgrade(log.writer, "base")
        await migrate.upgrade(log.writer)
        assert await migrate.diff(log.writer) == []
        async with log.writer.connect() as conn:
            triggers = set(
                (
                    await conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
                ).scalars()
            )
        assert {"events_append_only", "events_no_truncate"} <= triggers
    finally:
        await log.close()


# The wheel built from the repo is tested in tests/cli/test_wheel.py (db upgrade and a run).
