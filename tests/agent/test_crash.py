"""Crash recovery with real processes killed by SIGKILL."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bassi import events as ev
from bassi.manager import SessionManager
from tests.agent.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.agent.crash_daemon", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(child: subprocess.Popen[str], prefix: str) -> str:
    assert child.stdout is not None
    while True:
        line = child.stdout.readline()
        if not line:
            err = child.stderr.read() if child.stderr else ""
            raise AssertionError(f"child ended before printing {prefix!r}: {err[-2000:]}")
        if line.startswith(prefix):
            return line.strip()


def kill(child: subprocess.Popen[str]) -> str:
    os.kill(child.pid, signal.SIGKILL)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return out


def check_log(db: Path, acked: set[str]) -> None:
    """The invariants every restart must keep, in SQL."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {row[0] for row in conn.execute("SELECT event_id FROM events")}
        missing = acked - stored
        assert not missing, f"{len(missing)} acknowledged events are missing"
        gaps = conn.execute(
            "SELECT session_id FROM events GROUP BY session_id HAVING COUNT(*) != MAX(seq) OR MIN(seq) != 1"
        ).fetchall()
        assert not gaps, f"seq gaps in {gaps}"
        unterminated = conn.execute(
            """
            SELECT json_extract(s.payload, '$.tool_call_id') FROM events s
            WHERE s.type = 'tool_call_started' AND NOT EXISTS (
                SELECT 1 FROM events t WHERE t.session_id = s.session_id
                AND t.type IN ('tool_call_completed', 'tool_call_failed')
                AND json_extract(t.payload, '$.tool_call_id') = json_extract(s.payload, '$.tool_call_id'))
            """
        ).fetchall()
        assert not unterminated, f"tool calls without an end: {unterminated}"
        open_runs = conn.execute(
            """
            SELECT p.run_id FROM events p WHERE p.type = 'prompt_received' AND (
                SELECT COUNT(*) FROM events t WHERE t.session_id = p.session_id AND t.run_id = p.run_id
                AND t.type IN ('run_completed', 'run_cancelled', 'run_failed', 'run_interrupted')) != 1
            """
        ).fetchall()
        assert not open_runs, f"runs without exactly one end: {open_runs}"


@pytest.mark.slow
async def test_crash_campaign_loses_nothing_and_every_session_carries_on(tmp_path: Path) -> None:
    db, workspace = tmp_path / "bassi.db", tmp_path / "ws"
    workspace.mkdir()
    rng = random.Random(5)
    acked: set[str] = set()
    outcomes: dict[str, int] = {}
    for round_ in range(20):
        child = spawn("campaign", str(db), str(workspace))
        await asyncio.to_thread(wait_for_line, child, "ready")
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        out = await asyncio.to_thread(kill, child)
        acked |= {
            line.split()[1]
            for line in out.splitlines()
            if line.startswith("ack ") and len(line.split()) == 2
        }
        # restart: recovery carries interrupted runs on (even rounds) or marks them (odd rounds)
        mode = "continue" if round_ % 2 == 0 else "mark"
        settings = make_settings(tmp_path, resume_interrupted_runs=mode)
        async with SessionManager.open(str(db), settings=settings) as manager:
            for report in manager.recovery:
                outcomes[report.action] = outcomes.get(report.action, 0) + 1
            sessions = [await manager.get(s.session_id) for s in await manager.list()]
            assert len(sessions) == 5
            for session in sessions:
                await asyncio.wait_for(session.wait(), 30)
            check_log(db, acked)
            for session in sessions:  # the next prompt works
                replies = [
                    e async for e in session.send("ping") if isinstance(e, ev.MessageCompleted)
                ]
                assert replies and replies[-1].content[0].text.startswith("Echo #")  # type: ignore[union-attr]
        check_log(db, acked)
    assert len(acked) > 1000
    assert outcomes.get("continue", 0) > 0 and outcomes.get("mark", 0) > 0, outcomes


@pytest.mark.slow
async def test_a_parked_approval_survives_the_kill_and_carries_the_run_on(tmp_path: Path) -> None:
    db, workspace = tmp_path / "bassi.db", tmp_path / "ws"
    workspace.mkdir()
    child = spawn("park", str(db), str(workspace))
    _, session_id, tool_call_id = (await asyncio.to_thread(wait_for_line, child, "parked")).split()
    await asyncio.to_thread(kill, child)
    async with SessionManager.open(str(db), settings=make_settings(tmp_path)) as manager:
        session = await manager.get(session_id)
        assert tool_call_id in session.state.pending_approvals
        assert session.run_active  # recovery carried the run on, parked on the same approval
        await session.approve(tool_call_id, user="after-restart")
        await asyncio.wait_for(session.wait(), 10)
        ends = await manager.store.query(session_id=session_id, types=list(ev.TERMINAL_RUN_TYPES))
        assert [e.type for e in ends] == ["run_completed"]
        [done] = await manager.store.query(session_id=session_id, types=["tool_call_completed"])
        assert "parked" in done.output  # type: ignore[union-attr]
        [decided] = await manager.store.query(session_id=session_id, types=["permission_decided"])
        assert decided.decided_by == "user:after-restart"  # type: ignore[union-attr]


@pytest.mark.slow
async def test_two_processes_on_one_session_one_conflicts_nothing_interleaves(
    tmp_path: Path,
) -> None:
    db = tmp_path / "bassi.db"
    async with SessionManager.open(str(db), settings=make_settings(tmp_path)) as manager:
        session = await manager.create(model="scripted")
        head = session.state.last_seq
    children = [spawn("race", str(db), session.id) for _ in range(2)]
    for child in children:
        await asyncio.to_thread(wait_for_line, child, "loaded")
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = []
    for child in children:
        out, err = await asyncio.to_thread(child.communicate, timeout=60)
        results.append(out.strip().splitlines()[-1] if out.strip() else err[-500:])
    assert sorted(r.split()[0] for r in results) == ["conflict", "ok"], results
    with sqlite3.connect(db) as conn:
        runs = [
            r[0]
            for r in conn.execute(
                "SELECT run_id FROM events WHERE session_id = ? AND seq > ? ORDER BY seq",
                (session.id, head),
            )
        ]
    assert len(set(runs)) == 1, "events of two runs are interleaved"
    assert runs and runs[0] is not None


def _bash_processes(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(pid))
    return found


async def test_immediate_cancel_during_bash_kills_it_and_keeps_anthropic_history_valid(
    tmp_path: Path, workspace: Path, db_path: str
) -> None:
    from bassi.models.registry import get_model
    from tests.fakes import anthropic_server as A

    # A duration no other process on the machine is likely to sleep: finds only our own.
    marker = f"sleep {random.randint(300, 900)}.{random.randint(10_000, 99_999)}"
    async with A.AnthropicFake() as fake:
        fake.add(
            A.stream(
                A.events(
                    A.ToolUse("toolu_sleep", "bash", [f'{{"command": "{marker}"}}']),
                    stop_reason="tool_use",
                )
            ),
            A.stream(A.events(A.text("fine, ", "stopped"))),
        )

        def model(spec: str):  # type: ignore[no-untyped-def]
            return get_model("anthropic:claude-fake-1", api_key="test", base_url=fake.url)

        async with SessionManager.open(
            db_path, settings=make_settings(tmp_path), model_factory=model
        ) as manager:
            session = await manager.create(
                model="anthropic:claude-fake-1", workspace=str(workspace), permission_mode="bypass"
            )
            await session.prompt("sleep please")
            deadline = time.monotonic() + 10
            while not _bash_processes(marker):
                assert time.monotonic() < deadline, "bash never started"
                await asyncio.sleep(0.02)
            asked = time.monotonic()
            await session.cancel("immediate")
            assert time.monotonic() - asked < 1.0
            assert [
                e.type
                for e in await manager.store.query(session_id=session.id, types=["run_cancelled"])
            ] == ["run_cancelled"]
            for _ in range(50):
                if not _bash_processes(marker):
                    break
                await asyncio.sleep(0.02)
            assert not _bash_processes(marker), "the bash process tree outlived the cancel"
            [failed] = await manager.store.query(session_id=session.id, types=["tool_call_failed"])
            assert failed.interrupted  # type: ignore[union-attr]
            # the next request carries tool_use + tool_result and passes the fake's structure check
            events = [e async for e in session.send("go on")]
            assert events[-1].type == "run_completed", events[-3:]
            follow_up = fake.bodies[-1]["messages"]
            assert follow_up[1]["content"][0]["type"] == "tool_use"
            assert follow_up[2]["content"][0]["type"] == "tool_result"
            assert follow_up[2]["content"][0]["tool_use_id"] == "toolu_sleep"


async def test_opening_a_session_reads_only_what_the_fold_needs(manager: SessionManager) -> None:
    from bassi.messages import TextBlock

    sid = "big-session"
    events: list[ev.Event] = [ev.SessionStarted(session_id=sid, model="scripted")]
    for turn in range(25):
        run = f"r{turn}"
        events.append(ev.PromptReceived(session_id=sid, run_id=run, content=f"q{turn}"))
        events += [
            ev.TokenDelta(
                session_id=sid, run_id=run, message_id=f"m{turn}", index=0, channel="text", text="x"
            )
            for _ in range(400)
        ]
        events.append(
            ev.MessageCompleted(
                session_id=sid,
                run_id=run,
                message_id=f"m{turn}",
                content=[TextBlock(text="x" * 400)],
                stop_reason="end_turn",
            )
        )
        events.append(ev.RunCompleted(session_id=sid, run_id=run, stop_reason="end_turn", turns=1))
    await manager.store.append_many(events, durable=True)
    read: list[ev.Event] = []
    original = manager.store.log.read

    async def spy(**kwargs):  # type: ignore[no-untyped-def]
        result = await original(**kwargs)
        read.extend(result)
        return result

    manager.store.log.read = spy  # type: ignore[method-assign]
    session = await manager.get(sid)
    assert len(session.state.messages) == 50
    assert sum(e.type == "token_delta" for e in events) == 10_000
    assert read, "the session was rebuilt from the log"
    assert not [e for e in read if e.type == "token_delta"]
    assert len(read) == 1 + 25 * 3
