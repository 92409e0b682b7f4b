"""SIGKILL a process appending with durable acks; nothing acknowledged may be lost."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_until_killed(db: Path, rng: random.Random) -> list[tuple[str, str, int]]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.store.kill_writer", str(db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready", child.stderr.read() if child.stderr else ""
    time.sleep(rng.uniform(0.05, 0.6))
    os.kill(child.pid, signal.SIGKILL)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    acks = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "ack":  # a line cut by the kill is not an ack
            acks.append((parts[1], parts[2], int(parts[3])))
    return acks


@pytest.mark.slow
def test_acked_events_survive_sigkill_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    rng = random.Random(20261126)
    acked: list[tuple[str, str, int]] = []
    for _ in range(20):
        acked.extend(run_until_killed(db, rng))
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            rows = conn.execute("SELECT event_id, session_id, seq, position FROM events").fetchall()
        stored = {r[0]: (r[1], r[2]) for r in rows}
        assert len(stored) == len(rows), "an event_id is stored twice"
        missing = [a for a in acked if a[0] not in stored]
        assert not missing, f"{len(missing)} acknowledged events are missing"
        assert all(stored[event_id] == (sid, seq) for event_id, sid, seq in acked)
        by_session: dict[str, list[int]] = {}
        for _, sid, seq, _ in rows:
            by_session.setdefault(sid, []).append(seq)
        for seqs in by_session.values():
            assert sorted(seqs) == list(range(1, len(seqs) + 1)), "seq has a gap"
        positions = sorted(r[3] for r in rows)
        assert positions == sorted(set(positions))
    assert len(acked) > 100, "the writer should have acknowledged plenty before the kills"
