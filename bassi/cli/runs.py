"""`bassi run PROMPT`: one run, the reply on stdout (or every event as JSON lines)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from bassi import events as ev
from bassi.cli.app import (
    DbOption,
    JsonOption,
    ModelOption,
    WorkspaceOption,
    app,
    cancelled_by_signals,
    db_url,
    fail,
    load_settings,
    run,
)
from bassi.cli.approval import TERMINAL_USER
from bassi.cli.render import LiveView, console, wire_json
from bassi.errors import InvalidInput, check_text

if TYPE_CHECKING:
    from bassi.manager import Session, SessionManager

NO_ONE_TO_APPROVE = "no one to approve (use --yes)"

T = TypeVar("T")


@app.command("run")
def run_prompt(
    prompt: Annotated[str, typer.Argument(help="What to ask; `-` reads it from stdin.")],
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Continue this session (id or prefix).")
    ] = None,
    model: ModelOption = None,
    workspace: WorkspaceOption = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Allow every tool call (permission mode bypass).")
    ] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Run one prompt to the end. Exit 0 when it completes, 1 when it fails or is cancelled."""
    from bassi.manager import SessionManager

    if prompt == "-":
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise fail("the prompt is empty", 2)
    try:
        check_text(prompt, "the prompt")  # before a session is made for it
    except InvalidInput as exc:
        raise fail(str(exc), 2) from None
    settings = load_settings(database=db, workspace=workspace)
    url = db_url(db)
    err = console(stderr=True)
    view = LiveView(err, text=sys.stdout)
    interactive = sys.stdin.isatty() and not as_json

    output_closed = cancelled = False
    stopped: list[signal.Signals] = []

    async def main() -> ev.Event | None:
        nonlocal output_closed, cancelled
        # No recovery of every session here: a daemon may be running other sessions' runs on
        # this database. The session used is accounted for (`open_session`).
        async with SessionManager.open(url, settings=settings, recover=False) as manager:
            target = await _session(manager, session, model, workspace, yes)
            if session is None and not as_json:
                err.print(f"session {target.id}", style="dim")  # to continue it with --session
            terminal: ev.Event | None = None
            try:
                with cancelled_by_signals(stopped):
                    try:
                        async for event in target.send(prompt):
                            if as_json:
                                sys.stdout.write(wire_json(event) + "\n")
                                sys.stdout.flush()
                            else:
                                view.show(event)
                            if isinstance(event, ev.PermissionRequested):
                                await _answer(
                                    target, event, yes=yes, interactive=interactive, console=err
                                )
                            if event.type in ev.TERMINAL_RUN_TYPES:
                                terminal = event
                    except asyncio.CancelledError:
                        if not stopped:
                            raise
                        # Ctrl-C, SIGTERM or SIGHUP (a closed terminal): stop the run on the
                        # record rather than leave it "running" with no process to finish it.
                        # Still inside: a second signal cuts this short.
                        current = asyncio.current_task()
                        if current is not None:
                            current.uncancel()
                        if target.run_active:
                            reason = f"the command was stopped ({stopped[0].name})"
                            await target.cancel(reason=reason)
                            cancelled = True
            except BrokenPipeError:
                # `bassi run ... | head`: nobody reads the rest. Stop the run on the record
                # (cancelled) rather than leave it unfinished when this process exits.
                output_closed = True
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                if target.run_active:
                    await target.cancel(reason="the output was closed")
            return terminal

    terminal = run(main)
    if stopped:
        outcome = ", so the run was cancelled" if cancelled else ""
        raise fail(f"stopped by {stopped[0].name}{outcome}", 128 + stopped[0])
    if output_closed:
        raise fail("the output was closed, so the run was cancelled")
    if isinstance(terminal, ev.RunCompleted):
        return
    raise typer.Exit(1)


async def _session(
    manager: SessionManager,
    given: str | None,
    model: str | None,
    workspace: object,
    yes: bool,
) -> Session:
    if given is None:
        return await manager.create(
            model=model,
            workspace=str(workspace) if workspace is not None else None,
            permission_mode="bypass" if yes else None,
        )
    from bassi.cli.lookup import open_session

    target, note = await open_session(manager, given)
    if note is not None:
        console(stderr=True).print(note, style="yellow")
    if model is not None and model != target.state.model:
        await target.switch_model(model)
    return target


async def _answer(
    target: Session,
    request: ev.PermissionRequested,
    *,
    yes: bool,
    interactive: bool,
    console: Console,
) -> None:
    if yes:  # a flag, not a person, allowed it
        await target.approve(request.tool_call_id, reason="--yes", decided_by="cli:--yes")
    elif not interactive:
        await target.deny(
            request.tool_call_id, reason=NO_ONE_TO_APPROVE, decided_by="cli:no-terminal"
        )
    else:
        from bassi.cli.approval import ask

        # Asked on a thread of its own: a signal cancels this wait at once, where input() on
        # the loop's thread would hold it until the person typed an answer.
        answer = await _off_the_loop(ask, console, request)
        if answer == "n":
            await target.deny(
                request.tool_call_id, reason="denied at the terminal", user=TERMINAL_USER
            )
        else:
            await target.approve(
                request.tool_call_id, always=answer == "always", user=TERMINAL_USER
            )


async def _off_the_loop(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on a daemon thread of its own. Not `asyncio.to_thread`: the loop's executor
    is joined at exit, and a thread blocked in input() would hold the exit until Enter."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the waiter, whatever it is
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=work, name="bassi-ask", daemon=True).start()
    return await future
