"""`bassi chat`: an interactive terminal chat on one session at a time.

The event loop lives in an `asyncio.Runner` that only runs while a run is streaming; reading
the keyboard happens outside it, so `input()` keeps readline's editing and history, and
Ctrl-C during a run reaches the runner, which cancels just the waiting step: the chat then
cancels the run and keeps going. A second Ctrl-C before the run has stopped quits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bassi import events as ev
from bassi.cli.app import (
    DbOption,
    ModelOption,
    WorkspaceOption,
    app,
    database_error,
    db_url,
    exit_code,
    fail,
    load_settings,
    one_line,
)
from bassi.cli.approval import TERMINAL_USER, ask
from bassi.cli.render import LiveView, console, usage_text, visible
from bassi.errors import BassiError

if TYPE_CHECKING:
    from bassi.manager import Session, SessionManager

T = TypeVar("T")

HELP = """\
/help            this list
/sessions        every session
/switch ID       continue another session (id or unique prefix)
/new             start a new session
/model P:N       use another model from the next prompt on (e.g. /model scripted)
/cost            tokens used by this session
/exit            quit (or Ctrl-D)
Anything else, including other /commands, goes to the model (the scripted model knows
/bash CMD, /read PATH, /write PATH TEXT, /tools N, /stream N [MS], /think TEXT, /fail).
Ctrl-C cancels a running run; a second Ctrl-C quits."""

COMMANDS = {"/help", "/sessions", "/switch", "/new", "/model", "/cost", "/exit", "/quit"}


class _Quit(Exception):
    """The user asked to leave."""


class Chat:
    """One terminal chat: reads lines, sends prompts, renders runs, answers approvals."""

    def __init__(
        self,
        runner: asyncio.Runner,
        manager: SessionManager,
        session: Session,
        console: Console,
        *,
        model: str | None,
        workspace: str | None,
    ) -> None:
        self.runner = runner
        self.step: asyncio.Task[Any] | None = None
        self.stopped: signal.Signals | None = None
        self.manager = manager
        self.session = session
        self.console = console
        self.model = model
        self.workspace = workspace

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one step on the event loop (`stop` cancels it)."""
        step: asyncio.Task[T] = self.runner.get_loop().create_task(coro)
        self.step = step
        try:
            return self.runner.run(_finish(step))
        except asyncio.CancelledError:
            if self.stopped is not None:
                raise _Stopped(self.stopped) from None
            raise

    def stop(self, sig: int) -> None:
        """SIGTERM or SIGHUP arrived (in the main thread, between any two bytecodes): end the
        chat. Raised right away when no step runs (the chat waits for input); else the step
        is cancelled, and `call` raises once the loop has unwound it, so no exception lands
        in the middle of the loop's or the agent's code."""
        self.stopped = signal.Signals(sig)
        loop = self.runner.get_loop()
        if not loop.is_running():
            raise _Stopped(sig)
        if self.step is not None:
            loop.call_soon_threadsafe(self.step.cancel)

    def say(self, message: str, style: str = "dim") -> None:
        self.console.print(Text(visible(message), style=style))

    def banner(self) -> None:
        state = self.session.state
        self.say(
            f"bassi chat · session {self.session.id} · model {state.model} · "
            f"mode {state.permission_mode}",
            "bold",
        )
        if self.manager.using_scripted_fallback and state.model.startswith("scripted"):
            self.say(
                "no provider key is set: using the offline scripted model (see `bassi models`)"
            )
        self.say("/help for commands, Ctrl-D to quit")

    def loop(self) -> None:
        """Read lines until /exit, Ctrl-D, or Ctrl-C twice."""
        self.banner()
        armed = False  # a Ctrl-C at the prompt arms quitting; a second one quits
        while True:
            try:
                line = input("> ")
            except EOFError:
                self.console.print()
                return
            except KeyboardInterrupt:
                if armed:
                    self.console.print()
                    return
                armed = True
                try:
                    self.console.print()
                    self.say("(Ctrl-C again, Ctrl-D or /exit to quit)")
                except KeyboardInterrupt:  # the second Ctrl-C came before the prompt did
                    return
                continue
            armed = False
            text = line.strip()
            if not text:
                continue
            try:
                word = text.split(maxsplit=1)[0]
                if word in COMMANDS:
                    self.command(word, text[len(word) :].strip())
                else:
                    self.send(line)
            except _Quit:
                return
            except BassiError as exc:
                self.say(one_line(str(exc)), "red")
            except Exception as exc:
                message = database_error(exc)
                if message is None:
                    raise
                self.say(message, "red")

    # --- slash commands --------------------------------------------------------------------

    def command(self, word: str, arg: str) -> None:
        match word:
            case "/help":
                self.console.print(Text(HELP))
            case "/exit" | "/quit":
                raise _Quit
            case "/sessions":
                self.sessions()
            case "/switch":
                if not arg:
                    self.say("usage: /switch ID", "yellow")
                    return
                from bassi.cli.lookup import open_session

                self.session, note = self.call(open_session(self.manager, arg))
                if note is not None:
                    self.say(note, "yellow")
                self.banner()
            case "/new":
                self.session = self.call(
                    self.manager.create(model=self.model, workspace=self.workspace)
                )
                self.banner()
            case "/model":
                if not arg:
                    self.say(f"model: {self.session.state.model} (usage: /model P:N)")
                    return
                self.call(self.session.switch_model(arg))
                self.say(f"model: {self.session.state.model}")
            case "/cost":
                state = self.session.state
                usage = state.usage
                self.say(
                    f"{usage_text(usage)}, cache {usage.cache_read_tokens} read / "
                    f"{usage.cache_write_tokens} written, over {state.runs} runs",
                    "",
                )

    def sessions(self) -> None:
        table = Table("id", "title", "status", "model", "runs", "tokens in/out")
        for s in self.call(self.manager.list()):
            mark = " *" if s.session_id == self.session.id else ""
            table.add_row(
                Text(s.session_id + mark),
                Text(visible(s.title or "-")),
                s.status,
                Text(visible(s.model)),
                str(s.runs),
                f"{s.input_tokens}/{s.output_tokens}",
            )
        self.console.print(table)

    # --- a run -----------------------------------------------------------------------------

    def send(self, prompt: str) -> None:
        """Send a prompt and render its run; Ctrl-C cancels the run, a second one quits."""
        queue: asyncio.Queue[ev.Event | BaseException] = asyncio.Queue()
        session = self.session

        async def pump() -> None:
            try:
                async for event in session.send(prompt):
                    await queue.put(event)
            except Exception as exc:
                await queue.put(exc)

        async def start() -> asyncio.Task[None]:
            return asyncio.create_task(pump())

        view = LiveView(self.console)
        task = self.call(start())
        cancelling = False
        try:
            while True:
                try:
                    stop = self.call(self._until_pause(queue, view))
                    if isinstance(stop, ev.PermissionRequested):
                        answer = ask(self.console, stop)
                        if answer == "n":
                            self.call(
                                session.deny(
                                    stop.tool_call_id,
                                    reason="denied at the terminal",
                                    user=TERMINAL_USER,
                                )
                            )
                        else:
                            self.call(
                                session.approve(
                                    stop.tool_call_id, always=answer == "always", user=TERMINAL_USER
                                )
                            )
                        continue
                    return
                except KeyboardInterrupt:
                    if cancelling:
                        view.newline()
                        raise _Quit from None
                    cancelling = True
                    view.note("cancelling the run… (Ctrl-C again to quit)", "yellow")
                    self.call(session.cancel("immediate", reason="Ctrl-C at the terminal"))
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    self.call(_settle(task))

    async def _until_pause(
        self, queue: asyncio.Queue[ev.Event | BaseException], view: LiveView
    ) -> ev.Event:
        """Render events until a permission request (to answer) or the run's end."""
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            view.show(item)
            if isinstance(item, ev.PermissionRequested) or item.type in ev.TERMINAL_RUN_TYPES:
                return item


async def _settle(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _history(home: Path) -> Path | None:
    """Keep input history across runs in `HOME/history`, if readline is available."""
    try:
        import readline
    except ImportError:  # pragma: no cover - not on every platform
        return None
    path = home / "history"
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(1000)
    return path


def _save_history(path: Path | None) -> None:
    if path is None:
        return
    import readline

    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(path)


@app.command("chat")
def chat(
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Continue this session (id or prefix).")
    ] = None,
    model: ModelOption = None,
    workspace: WorkspaceOption = None,
    db: DbOption = None,
) -> None:
    """Interactive chat: streamed replies, tool cards, approvals (y / n / always), /help."""
    from bassi.manager import SessionManager

    settings = load_settings(database=db, workspace=workspace)
    url = db_url(db)
    ws = str(workspace) if workspace is not None else None
    out = console()
    history = _history(settings.home)
    stopped: signal.Signals | None = None
    with asyncio.Runner() as runner:
        with _one_line_errors():
            manager = runner.run(SessionManager.connect(url, settings=settings, recover=False))
        talk: Chat | None = None

        def on_stop(sig: int, frame: object) -> None:
            if talk is None:
                raise _Stopped(sig)
            talk.stop(sig)

        previous = {sig: signal.signal(sig, on_stop) for sig in _STOPPING}
        try:
            with _one_line_errors():
                current = runner.run(_first_session(manager, session, model, ws))
                talk = Chat(runner, manager, current, out, model=model, workspace=ws)
                talk.loop()
        except _Stopped as exc:
            stopped = exc.signal
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            _save_history(history)
            with contextlib.suppress(KeyboardInterrupt, _Stopped):
                if stopped is not None and talk is not None and talk.session.run_active:
                    # Nobody is left to finish the run: it ends cancelled, not "running".
                    reason = f"the command was stopped ({stopped.name})"
                    runner.run(talk.session.cancel(reason=reason))
                runner.run(manager.close())
    if stopped is not None:
        raise fail(f"stopped by {stopped.name}", 128 + stopped)


_STOPPING = (signal.SIGTERM, signal.SIGHUP)
"""Signals that end a chat (a `kill`, a closed terminal); Ctrl-C only cancels the run."""


class _Stopped(BaseException):
    """SIGTERM or SIGHUP arrived: the chat ends, and cancels its run on the record."""

    def __init__(self, sig: int) -> None:
        super().__init__(sig)
        self.signal = signal.Signals(sig)


async def _finish(step: asyncio.Task[T]) -> T:
    return await step


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """bassi's and the database's errors as one line and an exit code; a bug keeps its
    traceback."""
    try:
        yield
    except BassiError as exc:
        raise fail(one_line(str(exc)), exit_code(exc)) from None
    except Exception as exc:
        message = database_error(exc)
        if message is None:
            raise
        raise fail(message) from None


async def _first_session(
    manager: SessionManager, given: str | None, model: str | None, workspace: str | None
) -> Session:
    if given is None:
        return await manager.create(model=model, workspace=workspace)
    from bassi.cli.lookup import open_session

    found, note = await open_session(manager, given)
    if note is not None:
        console().print(note, style="yellow")
    if model is not None and model != found.state.model:
        await found.switch_model(model)
    return found
