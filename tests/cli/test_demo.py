"""`bassi demo` runs its five scenarios offline and quickly."""

from __future__ import annotations

import time

from tests.cli.conftest import Bassi


def test_the_demo_runs_offline_in_under_a_minute(bassi: Bassi) -> None:
    started = time.monotonic()
    result = bassi("demo", db=False, timeout=90)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    out = result.stdout
    for n in range(1, 6):
        assert f"{n}/5" in out
    assert "Echo #1: hello bassi" in out
    assert "decided_by=user:demo" in out and "outcome=completed" in out
    assert "3 tool_call_started events in one run" in out
    assert "run cancelled" in out and "Echo #2: still there?" in out
    assert "(exit -9)" in out and "recovery: run" in out and "run_completed" in out
    assert not (bassi.home / "bassi.db").exists()  # the tour leaves the user's database alone


def test_the_demo_does_not_claim_a_recovery_another_process_owns(bassi: Bassi) -> None:
    """With --db on a database a daemon owns, the killed run is the daemon's to recover: the
    demo must say so, not narrate a recovery that did not happen."""
    import fcntl
    import os

    bassi.db.parent.mkdir(parents=True, exist_ok=True)
    owner = os.open(f"{bassi.db}.owner", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `bassi serve` holds it
    try:
        result = bassi("demo", timeout=90)
    finally:
        os.close(owner)
    assert result.returncode == 0, result.stderr
    assert "no recovery here: another process owns this database" in result.stdout
    assert "the run finished after the crash" not in result.stdout
