"""Child process for the crash tests: a daemon-like SessionManager that the parent SIGKILLs.

    python -m tests.agent.crash_daemon campaign DB WORKSPACE
    python -m tests.agent.crash_daemon park DB WORKSPACE
    python -m tests.agent.crash_daemon race DB SESSION_ID

It prints `ack EVENT_ID` for every event a live subscriber received (subscribers only ever
see committed events), so the parent knows what was acknowledged before the kill.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

from bassi import events as ev
from bassi.errors import ConcurrencyError, InvalidStateError
from bassi.manager import Session, SessionManager
from bassi.settings import Settings

PROMPTS = ["/stream 500 5", "/bash echo crash-test", "/tools 2", "hello"]


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def settings(db: str) -> Settings:
    home = Path(db).parent / "home"
    return Settings.load({"home": home, "database": db}, environ={})


async def acks(manager: SessionManager) -> None:
    async for event in manager.store.subscribe(after=None, maxsize=100_000):
        say(f"ack {event.event_id}")


async def drive(session: Session, offset: int) -> None:
    for prompt in itertools.islice(itertools.cycle(PROMPTS), offset, None):
        await session.wait()
        async for _ in session.send(prompt):
            pass


async def campaign(db: str, workspace: str) -> None:
    async with SessionManager.open(db, settings=settings(db)) as manager:
        asyncio.get_running_loop().create_task(acks(manager))
        known = [s.session_id for s in await manager.list()]
        while len(known) < 5:
            created = await manager.create(
                model="scripted", workspace=workspace, permission_mode="bypass"
            )
            known.append(created.id)
        sessions = [await manager.get(sid) for sid in known]
        say("ready")
        await asyncio.gather(*(drive(s, n) for n, s in enumerate(sessions)))


async def park(db: str, workspace: str) -> None:
    async with SessionManager.open(db, settings=settings(db)) as manager:
        session = await manager.create(model="scripted", workspace=workspace)
        async for event in session.send("/bash echo parked"):
            if isinstance(event, ev.PermissionRequested):
                say(f"parked {session.id} {event.tool_call_id}")
        say("the run ended without waiting for approval")


async def race(db: str, session_id: str) -> None:
    async with SessionManager.open(db, settings=settings(db), recover=False) as manager:
        session = await manager.get(session_id)
        say("loaded")
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        try:
            async for _ in session.send("/stream 100 2"):
                pass
        except (ConcurrencyError, InvalidStateError) as exc:
            # The other process holds the session's run lock (InvalidStateError), or it has
            # already run and appended past the head this one loaded (ConcurrencyError).
            say(f"conflict {exc}")
            return
        say("ok")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    main = {"campaign": campaign, "park": park, "race": race}[command]
    asyncio.run(main(*args))
