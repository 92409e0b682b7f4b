"""`bassi demo`: an offline, narrated tour on the scripted model, in five scenarios.

1. a chat, streamed; 2. a tool call paused for approval, answered, and audited with SQL;
3. parallel tool calls; 4. cancelling a run mid-stream; 5. a bassi process killed with SIGKILL
mid-run and its run recovered from the log by the next process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from bassi import events as ev
from bassi.cli.app import DbOption, app, db_url, fail, run
from bassi.cli.render import LiveView, console, line
from bassi.settings import Settings

if TYPE_CHECKING:
    from bassi.manager import Session, SessionManager


class Narrator:
    """Headings, explanations and the live view of each scenario."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.scene = 0

    def heading(self, title: str, text: str) -> None:
        self.scene += 1
        self.console.print()
        self.console.print(Rule(Text(f"{self.scene}/5  {title}", style="bold"), align="left"))
        self.console.print(Text(text, style="italic"))

    def say(self, text: str, style: str = "cyan") -> None:
        self.console.print(Text(text, style=style))

    def you(self, prompt: str) -> None:
        self.console.print(Text.assemble(("you> ", "bold green"), prompt))

    async def run(self, session: Session, prompt: str) -> ev.Event:
        """Send a prompt, show the run, return its terminal event (approvals handled by caller)."""
        self.you(prompt)
        view = LiveView(self.console)
        async for event in session.send(prompt):
            view.show(event)
            if event.type in ev.TERMINAL_RUN_TYPES:
                return event
        raise RuntimeError("the run ended without a terminal event")


@app.command("demo")
def demo(db: DbOption = None) -> None:
    """A narrated tour of bassi, offline on the scripted model (under a minute).

    With --db the demo's sessions stay in that database to explore afterwards; otherwise
    everything lives in a temporary directory that is removed at the end.
    """
    out = console(width=100)  # its rules span the width
    with tempfile.TemporaryDirectory(prefix="bassi-demo-") as tmp:
        root = Path(tmp)
        url = db_url(db or str(root / "demo.db"))
        if not url.startswith("sqlite"):
            raise fail("the demo runs on a SQLite file (its scenario 5 kills a process)", 2)
        workspace = root / "workspace"
        workspace.mkdir()
        home = root / "home"
        settings = Settings.load(
            {"home": home, "database": url, "workspace": workspace}, environ={}
        )
        started = time.monotonic()
        narrator = Narrator(out)

        async def main() -> None:
            from bassi.manager import SessionManager

            async with SessionManager.open(url, settings=settings) as manager:
                await _chat(narrator, manager)
                await _approval(narrator, manager, url)
                await _parallel(narrator, manager)
                await _cancel(narrator, manager)
            await _crash(narrator, url, root, settings)

        run(main)
        out.print()
        out.print(Rule(Text("done", style="bold"), align="left"))
        out.print(
            f"five scenarios in {time.monotonic() - started:.1f} s. "
            + (
                f"The sessions are in {db}: try `bassi sessions list --db {db}` "
                f"or `bassi audit tools --db {db}`."
                if db
                else "Run `bassi demo --db demo.db` to keep the sessions and audit them with SQL."
            ),
            markup=False,
        )


async def _chat(n: Narrator, manager: SessionManager) -> None:
    n.heading(
        "chat",
        "Every token the model streams is an event, committed to SQLite before anyone sees it.",
    )
    session = await manager.create(model="scripted", title="demo: chat")
    await n.run(session, "hello bassi")
    await n.run(session, "/think Thinking streams too, dimmed; then comes the answer.")
    events = await manager.store.query(session_id=session.id)
    n.say(f"the session's log now holds {len(events)} events, seq 1 to {events[-1].seq}")


async def _approval(n: Narrator, manager: SessionManager, url: str) -> None:
    from bassi.store.audit import run_query

    n.heading(
        "a tool call that needs approval",
        "In the default permission mode, writing a file asks first. The run pauses on a durable "
        "permission_requested event until someone answers, from the web, the CLI or the API.",
    )
    session = await manager.create(model="scripted", title="demo: approval")
    prompt = "/write notes.txt bassi was here"
    n.you(prompt)
    view = LiveView(n.console)
    async for event in session.send(prompt):
        view.show(event)
        if isinstance(event, ev.PermissionRequested):
            view.note(
                f"permission requested: {event.tool_name} {event.input} ({event.reason})", "yellow"
            )
            n.say("the demo approves, as user 'demo'")
            await session.approve(event.tool_call_id, user="demo", reason="looks fine")
    workspace = Path(session.state.workspace or ".")
    n.say(f"notes.txt now says: {(workspace / 'notes.txt').read_text()!r}")
    sql = (
        "SELECT tool_name, decision, decided_by, outcome, duration_ms "
        "FROM audit_tool_calls WHERE session_id = ?"
    )
    result = await run_query(url, sql, [session.id])
    n.say(f'bassi audit "{sql}"')
    for row in result.rows:
        n.say("  " + "  ".join(f"{c}={v}" for c, v in zip(result.columns, row, strict=True)))


async def _parallel(n: Narrator, manager: SessionManager) -> None:
    n.heading(
        "parallel tool calls",
        "One model message may ask for several tools; read-only ones run at once, each with "
        "its own started/completed events.",
    )
    session = await manager.create(model="scripted", title="demo: parallel tools")
    await n.run(session, "/tools 3")
    started = await manager.store.query(session_id=session.id, types=["tool_call_started"])
    n.say(f"{len(started)} tool_call_started events in one run")


async def _cancel(n: Narrator, manager: SessionManager) -> None:
    n.heading(
        "cancelling a run",
        "A run streaming 200 tokens is cancelled after ten; the session carries on.",
    )
    session = await manager.create(model="scripted", title="demo: cancel")
    prompt = "/stream 200 20"
    n.you(prompt)
    view = LiveView(n.console)
    deltas = 0
    async for event in session.send(prompt):
        view.show(event)
        if isinstance(event, ev.TokenDelta):
            deltas += 1
            if deltas == 10:
                view.note("cancelling (what Ctrl-C does in `bassi chat`)", "cyan")
                await session.cancel("immediate", reason="demo")
    await n.run(session, "still there?")


async def _crash(n: Narrator, url: str, root: Path, settings: Settings) -> None:
    from bassi.cli.lookup import reading
    from bassi.manager import SessionManager

    n.heading(
        "a process killed mid-run, and recovered",
        "A separate bassi process streams a reply; the demo kills it with SIGKILL halfway. "
        "The next process to open the database (as `bassi serve` does on start) finds the run "
        "without a terminal event and carries it on.",
    )
    prompt = "/stream 40 40"
    n.you(f'bassi run "{prompt}"   (in a child process)')
    env = {**os.environ, "BASSI_HOME": str(root / "home"), "NO_COLOR": "1"}
    env.pop("BASSI_MODEL", None)
    child = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "bassi.cli", "run", prompt, "--model", "scripted", "--db", url],
        cwd=settings.workspace,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        session_id = await _read_session_id(child)
        async with reading(url) as log:
            while True:  # wait until a dozen tokens are committed
                deltas = await log.read(session_id=session_id, types=["token_delta"])
                if len(deltas) >= 12 or child.returncode is not None:
                    break
                await asyncio.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    n.say(f"killed pid {child.pid} (exit {child.returncode}) after {len(deltas)} committed tokens")
    async with reading(url) as log:
        before = await log.last_seq(session_id)
    async with SessionManager.open(url, settings=settings) as manager:
        for report in manager.recovery:
            n.say(
                f"recovery: run {report.run_id[:8]} of session {report.session_id[:8]}: {report.action}"
            )
        if not any(r.session_id == session_id for r in manager.recovery):
            n.say(
                "no recovery here: another process owns this database (a running `bassi "
                "serve`?), so recovering the killed run is its job, not the demo's"
            )
            return
        session = await manager.get(session_id)
        await session.wait()
        after = await manager.store.query(session_id=session_id, after=before)
    for event in after:
        if not isinstance(event, ev.TokenDelta | ev.ContentBlockStarted | ev.ContentBlockStopped):
            n.console.print(Text(line(event), style="dim"))
    tokens = sum(isinstance(e, ev.TokenDelta) for e in after)
    n.say(f"(and {tokens} token_delta events) — the run finished after the crash")


async def _read_session_id(child: asyncio.subprocess.Process) -> str:
    """`bassi run` prints `session ID` on stderr first."""
    assert child.stderr is not None
    first = (await asyncio.wait_for(child.stderr.readline(), timeout=30)).decode()
    words = first.split()
    if len(words) != 2 or words[0] != "session":
        raise RuntimeError(f"the child process did not start a session: {first.strip()!r}")
    return words[1]
