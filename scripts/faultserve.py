"""`bassi serve` with a dormant disk-full switch, for scripts/crashtest.py.

    python scripts/faultserve.py serve --db PATH --port N ...   (the same arguments as bassi)

Runs bassi's own CLI in this process. SIGUSR1 caps every database connection at its current
size with SQLite's `PRAGMA max_page_count` (the next write that needs a page fails with
SQLITE_FULL, "database or disk is full", as on a full disk); SIGUSR2 lifts the cap. Until a
signal arrives nothing differs from `bassi serve`.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

UNCAPPED = 1_073_741_823

_wanted = {"capped": False}
_applied: dict[int, bool] = {}  # id(DBAPI connection) -> capped


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    _wanted["capped"] = signum == signal.SIGUSR1


@event.listens_for(Engine, "before_cursor_execute")
def _apply_cap(
    conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
) -> None:
    key = id(conn.connection.dbapi_connection)
    capped = _wanted["capped"]
    if _applied.get(key, False) == capped:
        return
    if capped:
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {int(pages)}")
    else:
        cursor.execute(f"PRAGMA max_page_count = {UNCAPPED}")
    _applied[key] = capped


def main() -> None:
    signal.signal(signal.SIGUSR1, _on_signal)
    signal.signal(signal.SIGUSR2, _on_signal)
    from bassi.cli import main as bassi_main

    sys.argv = ["bassi", *sys.argv[1:]]
    bassi_main()


if __name__ == "__main__":
    main()
