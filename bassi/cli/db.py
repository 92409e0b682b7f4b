"""`bassi db upgrade|current|check`: the schema, owned by Alembic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from bassi.cli.app import DbOption, app, db_url, existing_db, fail, run

db_app = typer.Typer(
    help="Database schema: upgrade, current revision, check.", no_args_is_help=True
)
app.add_typer(db_app, name="db")


def ensure_parent(url: str) -> None:
    """Create the directory of a SQLite file if needed."""
    if url.startswith("sqlite") and ":memory:" not in url:
        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None, revision: str = typer.Argument("head")) -> None:
    """Create or migrate the schema to the newest revision."""
    from bassi.store import migrate
    from bassi.store.log import SqlEventLog

    url = db_url(db)
    ensure_parent(url)

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

    url = existing_db(db)  # a mistyped path is an error, never a new empty file

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

    url = existing_db(db)

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
