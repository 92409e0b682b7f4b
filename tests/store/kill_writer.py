"""Child process for the kill test: appends with durable acks and prints each acked event_id.

Usage: python -m tests.store.kill_writer DB_PATH
"""

from __future__ import annotations

import asyncio
import sys

from bassi import events as ev
from bassi.settings import database_url
from bassi.store.eventstore import EventStore


async def writer(store: EventStore, session_id: str) -> None:
    n = 0
    while True:
        n += 1
        batch = [
            ev.TokenDelta(
                session_id=session_id, message_id="m", index=0, channel="text", text="x" * 200
            )
            for _ in range(1 + n % 3)
        ]
        committed = await store.append_many(batch, durable=True)
        sys.stdout.write("".join(f"ack {e.event_id} {e.session_id} {e.seq}\n" for e in committed))
        sys.stdout.flush()


async def main(path: str) -> None:
    store = await EventStore.open(database_url(path))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.gather(*(writer(store, f"kill-{i}") for i in range(4)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
