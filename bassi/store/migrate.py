"""Schema migrations with Alembic, from the repo's `migrations/` or the wheel's copy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bassi.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine

# Alembic is imported only when a migration has to run: opening an up-to-date database
# should not pay for it. A test keeps this equal to the newest revision.
SCHEMA_HEAD = "0001"


def migrations_dir() -> Path:
    """Where the revisions live: inside the installed package, else the source checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigError("bassi's migrations directory is missing from this installation")


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at bassi's revisions (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if url is not None:
        config.attributes["url"] = url
    return config


def _on(connection: Connection, action: str, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to `revision` (idempotent)."""
    async with engine.connect() as conn:
        await conn.run_sync(_on, "upgrade", revision)
        await conn.commit()


async def ensure_schema(engine: AsyncEngine) -> None:
    """Upgrade to the newest revision unless the database is already there."""
    from sqlalchemy.exc import DBAPIError

    try:
        async with engine.connect() as conn:
            result = await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
            current = result.scalar()
    except DBAPIError:
        current = None  # no alembic_version table yet
    if current != SCHEMA_HEAD:
        await upgrade(engine)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Take the database back to `revision` (`base` removes everything)."""
    async with engine.connect() as conn:
        await conn.run_sync(_on, "downgrade", revision)
        await conn.commit()


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def head() -> str:
    """The newest revision in this installation."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    rev = script.get_current_head()
    if rev is None:  # pragma: no cover - the package always ships revisions
        raise ConfigError("no migrations found")
    return rev


def _diff(connection: Connection) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from bassi.store.tables import metadata

    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def diff(engine: AsyncEngine) -> list[Any]:
    """Differences between the database and bassi's metadata (empty when they match)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_diff)
