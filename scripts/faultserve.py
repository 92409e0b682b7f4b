"""`bassi serve` with a dormant disk-full switch, for scripts/crashtest.py.

    python scripts/faultserve.py serve --db PATH --port N ...   (the same arguments as bassi)

Runs bassi's own CLI in this process. SIGUSR1 caps the event log's writer connection at its current
size with SQLite's `PRAGMA max_page_count` (the next write that needs a page fails with
SQLITE_FULL, "database or disk is full", as on a full disk); SIGUSR2 lifts the cap. Until a
signal arrives nothing differs from `bassi serve`.
"""

from __future__ import annotations

import signal
import sqlite3
import sys
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bassi.store.sqlite import SqliteEventLog

UNCAPPED = 1_073_741_823

_wanted = {"capped": False}
_applied: dict[int, bool] = {}  # id(sqlite3 connection) -> capped


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    _wanted["capped"] = signum == signal.SIGUSR1


def _apply_cap(conn: sqlite3.Connection) -> None:
    capped = _wanted["capped"]
    if _applied.get(id(conn), False) == capped:
        return
    if capped:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {int(pages)}")
    else:
        conn.execute(f"PRAGMA max_page_count = {UNCAPPED}")
    _applied[id(conn)] = capped


_commit = SqliteEventLog._commit


def _capped_commit(self: SqliteEventLog, *args: Any) -> None:
    # Runs on the log's writer thread, just before the transaction, on the writer's connection.
    _apply_cap(self._writer_conn())
    _commit(self, *args)


SqliteEventLog._commit = _capped_commit  # type: ignore[method-assign]


def main() -> None:
    signal.signal(signal.SIGUSR1, _on_signal)
    signal.signal(signal.SIGUSR2, _on_signal)
    from bassi.cli import main as bassi_main

    sys.argv = ["bassi", *sys.argv[1:]]
    bassi_main()


if __name__ == "__main__":
    main()
