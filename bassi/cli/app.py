"""The `bassi` Typer app, its shared options, and how commands turn errors into one line.

Exit codes: 0 ok, 1 failure (a run failed, the database refused), 2 usage error (bad flag,
unknown session, invalid setting). Bad input never prints a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from typer.exceptions import TyperException

from bassi.errors import (
    BassiError,
    ConfigError,
    InvalidEventError,
    InvalidInput,
    InvalidStateError,
    SessionNotFound,
)
from bassi.settings import Settings, database_url

T = TypeVar("T")

app = typer.Typer(
    name="bassi",
    help="An event-sourced LLM agent service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _not_empty_db(value: str | None) -> str | None:
    """`--db ""` (an unset variable in a script, say) is a mistake, not "the default database"."""
    if value is not None and not value.strip():
        raise typer.BadParameter("give a database path or URL, not an empty string")
    return value


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database path or URL (default: $BASSI_HOME/bassi.db).",
        callback=_not_empty_db,
    ),
]
ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="Model as provider:name, e.g. scripted.")
]
WorkspaceOption = Annotated[
    Path | None, typer.Option("--workspace", "-w", help="Directory the tools work in.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]


class UsageError(BassiError):
    """The command line asks for something that cannot be (exit 2)."""


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one readable line to stderr and return the exit to raise."""
    typer.echo(f"bassi: {message}", err=True)
    return typer.Exit(code)


def exit_code(exc: BaseException) -> int:
    """2 for what the user asked wrongly, 1 for everything that failed."""
    if isinstance(
        exc,
        ConfigError
        | SessionNotFound
        | UsageError
        | InvalidStateError
        | InvalidInput
        | InvalidEventError,
    ):
        return 2
    return 1


@contextlib.contextmanager
def cancelled_by_signals(stopped: list[signal.Signals]) -> Iterator[None]:
    """Inside: SIGINT, SIGTERM and SIGHUP cancel the current task (appending the signal to
    `stopped`), so it can end its work on the record before the command exits: the code that
    catches that CancelledError inside the block uncancels the task before it awaits. A second
    signal cancels again, cutting that short."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def on(sig: signal.Signals) -> None:
        stopped.append(sig)
        task.cancel()

    for sig in signals:
        loop.add_signal_handler(sig, on, sig)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine, turning bassi's and the database's errors into one line."""
    try:
        return asyncio.run(main())
    except asyncio.CancelledError:  # a second Ctrl-C or SIGTERM cut the clean-up short
        raise fail("stopped", 130) from None
    except BassiError as exc:
        raise fail(one_line(str(exc)), exit_code(exc)) from None
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise fail(database_error(exc) or one_line(str(exc))) from None
    except Exception as exc:
        message = database_error(exc)
        if message is None:
            raise
        raise fail(message) from None


def database_error(exc: BaseException) -> str | None:
    """One line for an error the database raised, else None (see `bassi.store.dberror`)."""
    from bassi.store.dberror import describe

    return describe(exc)


def one_line(text: str) -> str:
    """The first line of a message (database errors carry SQL and links below it)."""
    return text.strip().splitlines()[0] if text.strip() else "unknown error"


def load_settings(**overrides: Any) -> Settings:
    """Settings with command-line overrides; a bad value exits 2 with one line.

    The workspace file is `--workspace`'s (or the current directory's) `.bassi/settings.toml`.
    """
    try:
        return Settings.load(overrides, workspace=Path.cwd())
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def db_url(db: str | None) -> str:
    """The async URL for `--db` (or the configured default)."""
    try:
        return database_url(db) if db else load_settings().database_url
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def existing_db(db: str | None) -> str:
    """Like `db_url`, but a SQLite file must exist already (reading never creates one)."""
    url = db_url(db)
    if url.startswith("sqlite") and ":memory:" not in url:
        path = Path(url.split(":///", 1)[1].split("?", 1)[0])
        if not path.is_file():
            raise fail(f"no database at {path} (run `bassi db upgrade` or `bassi serve` first)")
    return url


class _Lines(logging.Formatter):
    """`bassi: what happened` for news (what recovery did at start), `bassi: warning: ...`
    and `bassi: error: ...` for trouble."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)  # the message, and a bug's traceback when there is one
        if record.levelno <= logging.INFO:
            return f"bassi: {text}"
        return f"bassi: {record.levelname.lower()}: {text}"


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Lines())
    root = logging.getLogger("bassi")
    if not root.handlers:
        root.addHandler(handler)
        root.setLevel(logging.INFO)  # the few INFO lines are news an operator wants
        root.propagate = False


def main(args: list[str] | None = None) -> NoReturn:
    """Console-script entry point: usage errors are one line and exit 2, Ctrl-C exits 130."""
    _configure_logging()
    try:
        code = app(args=args, prog_name="bassi", standalone_mode=False)
    except TyperException as exc:  # click's usage errors, as vendored by typer
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(exc.format_message(), err=True)
            sys.exit(2)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        typer.echo(f"bassi: {one_line(exc.format_message())}{hint}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        # The reader went away (`bassi events tail | head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
