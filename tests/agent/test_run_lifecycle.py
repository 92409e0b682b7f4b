"""A run's start and end at the edges: cancels that race its end, a caller that goes away,
another process in the same database. Each case once left a run with two ends, none, or a run
lock that another process could take while the run was live."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bassi import events as ev
from bassi.errors import ConcurrencyError, InvalidInput, InvalidStateError
from bassi.manager import Session, SessionManager
from bassi.session import SessionStatus
from tests.agent.conftest import make_settings


async def two_managers(tmp_path: Path) -> tuple[SessionManager, SessionManager]:
    """A manager, and a second one on the same database (another process, as far as the run
    locks go: each has its own log)."""
    db = str(tmp_path / "bassi.db")
    first = await SessionManager.connect(db, settings=make_settings(tmp_path))
    second = await SessionManager.connect(db, settings=make_settings(tmp_path), recover=False)
    return first, second


def slow_commits(manager: SessionManager, when: Callable[[list[Any]], bool]) -> asyncio.Event:
    """Make the commits `when` picks take 0.2 s (a slow disk); the event is set as one begins."""
    log = manager.store.log
    real: Callable[..., Awaitable[None]] = log.commit
    started = asyncio.Event()

    async def commit(groups: list[Any], heads: Any) -> None:
        if when(groups):
            started.set()
            await asyncio.sleep(0.2)
        await real(groups, heads)

    log.commit = commit  # type: ignore[method-assign]
    return started


def ending(type_: str) -> Callable[[list[Any]], bool]:
    return lambda groups: any(e.type == type_ for g in groups for e in g.events)


async def ends_of(manager: SessionManager, session: Session) -> list[str]:
    events = await manager.store.query(session_id=session.id, types=list(ev.TERMINAL_RUN_TYPES))
    return [e.type for e in events]


async def test_a_prompt_right_after_a_run_ends_holds_the_run_lock(tmp_path: Path) -> None:
    first, second = await two_managers(tmp_path)
    try:
        session = await first.create(model="scripted")
        await session.prompt("hello")
        # Polled, not awaited: the next prompt must come in the very step the last run ends,
        # before anything it scheduled on its way out has run.
        while session.run_active:  # noqa: ASYNC110
            await asyncio.sleep(0)
        await session.prompt("/stream 200 5")
        await asyncio.sleep(0.1)
        assert session.run_active
        assert not await second.store.log.lock_run(session.id), "a live run's lock was free"
    finally:
        await second.close()
        await first.close()


async def test_a_second_cancel_while_the_end_commits_leaves_one_end_and_no_lock(
    tmp_path: Path,
) -> None:
    first, second = await two_managers(tmp_path)
    try:
        session = await first.create(model="scripted")
        await session.prompt("/stream 1000 5")
        await asyncio.sleep(0.1)
        committing = slow_commits(first, ending("run_cancelled"))
        assert session._task is not None
        session._task.cancel()  # the first click: the run stops, writing run_cancelled ...
        await committing.wait()
        await session.cancel()  # ... and a second click lands while that commits
        await asyncio.sleep(0.5)
        assert await ends_of(first, session) == ["run_cancelled"]
        assert session.state.status is SessionStatus.IDLE
        assert await second.store.log.lock_run(session.id), "an idle session kept its run lock"
    finally:
        await second.close()
        await first.close()


async def test_a_cancel_while_run_completed_commits_adds_no_second_end(tmp_path: Path) -> None:
    async with SessionManager.open(str(tmp_path / "b.db"), settings=make_settings(tmp_path)) as m:
        session = await m.create(model="scripted")
        committing = slow_commits(m, ending("run_completed"))
        await session.prompt("hello")
        await committing.wait()
        await session.cancel()
        await session.settle()
        assert await ends_of(m, session) == ["run_completed"]
        assert session.state.status is SessionStatus.IDLE


async def test_a_run_ending_elsewhere_while_a_session_loads_is_never_ended_twice(
    tmp_path: Path,
) -> None:
    daemon, cli = await two_managers(tmp_path)
    try:
        theirs = await cli.create(model="scripted")
        await theirs.prompt("/stream 100 5")  # a run in the other process
        await asyncio.sleep(0.1)
        real = daemon.store.query

        async def query(**kwargs: Any) -> list[ev.Event]:
            await theirs.wait()  # the other run ends between loading the head and the events
            return await real(**kwargs)

        daemon.store.query = query  # type: ignore[method-assign]
        mine = await daemon.get(theirs.id)
        daemon.store.query = real  # type: ignore[method-assign]
        with pytest.raises(ConcurrencyError):  # what it loaded is not all there is
            await mine.prompt("next")
        mine = await daemon.get(theirs.id)  # loaded again
        await mine.prompt("next")
        await mine.wait()
        assert await ends_of(daemon, mine) == ["run_completed", "run_completed"]
    finally:
        await cli.close()
        await daemon.close()


async def test_a_prompt_whose_caller_goes_away_still_runs_the_run_it_recorded(
    tmp_path: Path,
) -> None:
    async with SessionManager.open(str(tmp_path / "b.db"), settings=make_settings(tmp_path)) as m:
        session = await m.create(model="scripted")
        committing = slow_commits(m, ending("run_started"))
        caller = asyncio.create_task(session.prompt("hello"))
        await committing.wait()
        caller.cancel()  # the client went away while its prompt was being written
        with pytest.raises(asyncio.CancelledError):
            await caller
        await session.settle()
        assert session.run_active
        await session.wait()
        assert await ends_of(m, session) == ["run_completed"]
        assert session.state.status is SessionStatus.IDLE


async def test_ending_a_session_accounts_for_a_run_cut_short_first_and_then_writes_nothing(
    tmp_path: Path,
) -> None:
    daemon, command = await two_managers(tmp_path)
    try:
        session = await command.create(model="scripted")
        cut = await session.prompt("/stream 1000 5")
        await asyncio.sleep(0.2)
        live = await daemon.get(session.id)
        with pytest.raises(InvalidStateError, match="another process"):
            await daemon.end(session.id)  # the run is live over there: refused
        await command.close()  # the command's process dies; its run never ended
        await daemon.end(session.id, "done with it")
        events = await daemon.store.query(session_id=session.id)
        tail = [(e.type, e.run_id == cut) for e in events[-2:]]
        assert tail == [("run_interrupted", True), ("session_ended", False)]
        assert await daemon.recover_session(session.id) is None
        with pytest.raises(InvalidStateError, match="has ended"):
            await (await daemon.get(session.id)).prompt("more")
        if live is not await daemon.get(session.id):  # loaded before the other process's end
            with pytest.raises(ConcurrencyError):
                await live.prompt("more")
        assert len(await daemon.store.query(session_id=session.id)) == len(events)
    finally:
        await command.close()
        await daemon.close()


async def test_a_run_resumed_after_a_restart_counts_its_whole_length(tmp_path: Path) -> None:
    db, settings = str(tmp_path / "b.db"), make_settings(tmp_path)
    before = await SessionManager.connect(db, settings=settings)
    session = await before.create(model="scripted", tools=["bash"])
    await session.prompt("/bash echo hi")  # the model's first call asks to run bash ...
    for _ in range(200):
        if session.state.pending_approvals:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    await before.close()  # ... and the process stops while the approval waits
    async with SessionManager.open(db, settings=settings) as after:  # resumes the run
        resumed = await after.get(session.id)
        [call] = resumed.state.pending_approvals
        await resumed.approve(call)
        await resumed.wait()
        events = await after.store.query(session_id=session.id)
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    calls = [e for e in events if isinstance(e, ev.MessageCompleted)]
    [end] = [e for e in events if isinstance(e, ev.RunCompleted)]
    assert len(calls) == 2 and end.turns == 2
    assert end.usage.output_tokens == sum(c.usage.output_tokens for c in calls)
    whole = (end.recorded_at - started.recorded_at).total_seconds() * 1000
    assert whole >= 300 and end.duration_ms >= whole - 50


async def test_text_that_cannot_be_stored_is_refused_before_it_reaches_the_run(
    tmp_path: Path,
) -> None:
    bad = "half a pair: \ud800"
    async with SessionManager.open(str(tmp_path / "b.db"), settings=make_settings(tmp_path)) as m:
        with pytest.raises(InvalidInput, match="the title is not valid Unicode text"):
            await m.create(model="scripted", title=bad)
        session = await m.create(model="scripted", tools=["bash"])
        with pytest.raises(InvalidInput, match="the prompt"):
            await session.prompt(bad)
        await session.prompt("/bash echo hi")
        for _ in range(200):
            if session.state.pending_approvals:
                break
            await asyncio.sleep(0.01)
        [call] = session.state.pending_approvals
        with pytest.raises(InvalidInput, match="the reason"):
            await session.deny(call, reason=bad)
        with pytest.raises(InvalidInput, match="the reason"):
            await session.cancel(reason=bad)
        await session.deny(call, reason="no")  # the run was left waiting, and goes on
        await session.wait()
        with pytest.raises(InvalidInput, match="the reason"):
            await m.end(session.id, reason=bad)
        events = await m.store.query()
    assert [e.type for e in events if e.type in ev.TERMINAL_RUN_TYPES] == ["run_completed"]
    assert [e.session_id for e in events if e.type == "session_started"] == [session.id]
    assert not [e for e in events if e.type == "session_ended"]
    assert m.store.stats().healthy


async def test_a_run_another_process_is_running_cannot_be_switched_or_cancelled_from_here(
    tmp_path: Path,
) -> None:
    first, second = await two_managers(tmp_path)
    try:
        session = await first.create(model="scripted")
        await session.prompt("/stream 60 50")  # three seconds in the first process
        theirs = await second.get(session.id)
        assert theirs.state.current_run_id is not None and not theirs.run_active
        for refused in (theirs.switch_model("scripted:other"), theirs.cancel()):
            with pytest.raises(InvalidStateError, match="run in progress in another process"):
                await refused
        await session.wait()
        assert await ends_of(first, session) == ["run_completed"]  # the run was left alone
        again = await second.get(session.id)  # what the API does for every request
        await again.switch_model("scripted:other")  # once the run has ended, the switch goes in
        assert again.state.model == "scripted:other"
    finally:
        await second.close()
        await first.close()


async def test_cancel_accounts_for_a_run_whose_process_died(tmp_path: Path) -> None:
    first, second = await two_managers(tmp_path)
    try:
        session = await first.create(model="scripted")
        await session.prompt("/stream 200 50")
        await asyncio.sleep(0.3)
    finally:
        await first.close()  # the process stops mid-run: the run stays on record, unfinished
    try:
        left = await second.get(session.id)
        assert left.state.status is SessionStatus.RUNNING
        await left.cancel(reason="stuck")  # no process runs it: it is accounted for, not refused
        assert left.state.status is SessionStatus.IDLE
        assert await ends_of(second, left) == ["run_interrupted"]
        await left.prompt("hello again")
        await left.wait()
        assert await ends_of(second, left) == ["run_interrupted", "run_completed"]
    finally:
        await second.close()


async def test_a_cancel_right_after_the_prompt_records_the_cancel(tmp_path: Path) -> None:
    async with SessionManager.open(str(tmp_path / "b.db"), settings=make_settings(tmp_path)) as m:
        session = await m.create(model="scripted")
        await session.prompt("/stream 50 10")
        await session.cancel(reason="changed my mind")  # before the run took its first step
        assert session.state.status is SessionStatus.IDLE
        [end] = await m.store.query(session_id=session.id, types=list(ev.TERMINAL_RUN_TYPES))
    assert isinstance(end, ev.RunCancelled) and end.reason == "changed my mind"


async def test_a_call_cut_off_by_a_cancel_records_how_long_it_ran(tmp_path: Path) -> None:
    """The audit's duration of a call a cancel stopped is the time it ran, not 0."""
    async with SessionManager.open(str(tmp_path / "b.db"), settings=make_settings(tmp_path)) as m:
        session = await m.create(model="scripted", tools=["bash"], permission_mode="bypass")
        await session.prompt("/bash sleep 30")
        for _ in range(500):  # until the call is on record as started
            calls = session.state.open_tool_calls.values()
            if calls and all(c.started for c in calls):
                break
            await asyncio.sleep(0.02)
        clock = asyncio.get_running_loop().time
        started = clock()
        await asyncio.sleep(0.4)
        await session.cancel(reason="enough")
        ran_ms = (clock() - started) * 1000
        [failed] = await m.store.query(session_id=session.id, types=["tool_call_failed"])
    assert isinstance(failed, ev.ToolCallFailed) and failed.interrupted
    assert 400 <= failed.duration_ms <= ran_ms + 1000
