"""The `bassi` command."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.exc import DBAPIError, OperationalError

from bassi import __version__
from bassi.errors import BassiError, ConfigError
from bassi.settings import Settings, database_url

T = TypeVar("T")

app = typer.Typer(
    name="bassi",
    help="An event-sourced LLM agent service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(
    help="Database schema: upgrade, current revision, check.", no_args_is_help=True
)
app.add_typer(db_app, name="db")

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database path or URL (default: $BASSI_HOME/bassi.db)."),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one readable line to stderr and return the exit to raise."""
    typer.echo(f"bassi: {message}", err=True)
    return typer.Exit(code)


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine, turning bassi's and the database's errors into one line and exit 1."""
    try:
        return asyncio.run(main())
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    except BassiError as exc:
        raise fail(str(exc)) from None
    except OperationalError as exc:
        raise fail(f"database error: {exc.orig}") from None
    except DBAPIError as exc:
        raise fail(f"database error: {exc.orig}") from None
    except OSError as exc:
        raise fail(str(exc)) from None


def settings(**overrides: Any) -> Settings:
    """Settings with command-line overrides; a bad value exits 2 with one line."""
    try:
        return Settings.load(overrides)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def db_url(db: str | None) -> str:
    """The async URL for `--db` (or the configured default)."""
    try:
        return database_url(db) if db else settings().database_url
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def _ensure_parent(url: str) -> None:
    if url.startswith("sqlite") and ":memory:" not in url:
        from pathlib import Path

        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None, revision: str = typer.Argument("head")) -> None:
    """Create or migrate the schema to the newest revision."""
    from bassi.store import migrate
    from bassi.store.log import SqlEventLog

    url = db_url(db)
    _ensure_parent(url)

    async def main() -> str | None:
        log = SqlEventLog(url)
        try:
            await migrate.upgrade(log.writer, revision)
            return await migrate.current(log.writer)
        finally:
            await log.close()

    typer.echo(f"database at revision {run(main)}")


@db_app.command("current")
def db_current(db: DbOption = None) -> None:
    """Print the schema revision of the database."""
    from bassi.store import migrate
    from bassi.store.log import SqlEventLog

    url = db_url(db)

    async def main() -> str | None:
        log = SqlEventLog(url)
        try:
            return await migrate.current(log.reader)
        finally:
            await log.close()

    typer.echo(run(main) or "empty (no revision)")


@db_app.command("check")
def db_check(db: DbOption = None) -> None:
    """Exit 0 when the schema is at the newest revision and matches bassi's tables."""
    from bassi.store import migrate
    from bassi.store.log import SqlEventLog

    url = db_url(db)

    async def main() -> tuple[str | None, list[Any]]:
        log = SqlEventLog(url)
        try:
            return await migrate.current(log.reader), await migrate.diff(log.reader)
        finally:
            await log.close()

    current, diff = run(main)
    head = migrate.head()
    if current != head:
        raise fail(
            f"database is at revision {current or 'none'}, bassi needs {head}: run `bassi db upgrade`"
        )
    if diff:
        raise fail(f"schema differs from bassi's tables: {diff[0]}")
    typer.echo(f"ok: revision {head}, schema matches")


@app.command("version")
def version() -> None:
    """Print bassi's version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
