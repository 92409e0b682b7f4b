"""Looking at the real process table (Linux /proc)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path


def running_with(marker: str) -> list[int]:
    """Pids of live processes whose command line contains `marker` (zombies have none)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry.name))
    return pids


async def wait_until_gone(marker: str, *, within: float) -> list[int]:
    """Poll until no process carries `marker`, for at most `within` seconds; the survivors."""
    deadline = time.monotonic() + within
    while (alive := running_with(marker)) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    return alive


async def wait_until_running(marker: str, count: int, *, within: float = 5.0) -> list[int]:
    """Poll until at least `count` processes carry `marker`; the pids found."""
    deadline = time.monotonic() + within
    while len(alive := running_with(marker)) < count and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    return alive
