"""`bassi events tail`: the log, one event per line, optionally following new commits."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Annotated

import typer

from bassi.cli.app import DbOption, JsonOption, app, existing_db, fail, run
from bassi.cli.lookup import find_session, reading
from bassi.cli.render import line
from bassi.events import MAX_SEQ

events_app = typer.Typer(help="Read the event log.", no_args_is_help=True)
app.add_typer(events_app, name="events")

POLL_SECONDS = 0.2
"""How often `--follow` asks the log for new events (another process may be writing)."""


@events_app.command("tail")
def tail(
    session: Annotated[
        str | None, typer.Argument(help="Only this session (id or unique prefix).")
    ] = None,
    after: Annotated[
        int | None,
        typer.Option(
            "--after", help="Start after this cursor: the seq with SESSION, else the position."
        ),
    ] = None,
    lines: Annotated[
        int, typer.Option("--lines", "-n", help="Without --after: how many recent events.")
    ] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing events as they are committed.")
    ] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Print the last events of the log (or of one session), then follow it with --follow."""
    if after is not None and not 0 <= after <= MAX_SEQ:  # the database's 64-bit integers
        raise fail(f"--after must be from 0 to {MAX_SEQ}", 2)
    if lines < 0:
        raise fail("--lines must be 0 or more", 2)
    url = existing_db(db)

    async def main() -> None:
        async with reading(url) as log:
            session_id = None if session is None else (await find_session(log, session)).session_id
            if after is not None:
                cursor = after
            elif session_id is not None:
                cursor = max(0, await log.last_seq(session_id) - lines)
            else:
                cursor = max(0, await log.last_position() - lines)
            while True:
                if as_json:  # the log's wire JSON as it is: nothing decoded and encoded again
                    rows = await log.read_wire(session_id=session_id, after=cursor, limit=1000)
                    texts = [text for _, _, text in rows]
                    marks = [seq if session_id is not None else pos for pos, seq, _ in rows]
                else:
                    events = await log.read(session_id=session_id, after=cursor, limit=1000)
                    texts = [line(event) for event in events]
                    marks = [e.seq if session_id is not None else e.position or 0 for e in events]
                sys.stdout.writelines(text + "\n" for text in texts)
                sys.stdout.flush()
                cursor = marks[-1] if marks else cursor
                if len(marks) == 1000:
                    continue
                if not follow:
                    return
                await asyncio.sleep(POLL_SECONDS)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how one stops following
        run(main)
