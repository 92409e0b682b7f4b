"""The agent loop through the session manager, on the scripted model and real tools."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bassi import events as ev
from bassi.errors import ApprovalNotFound, ConfigError, InvalidStateError, PayloadTooLarge
from bassi.manager import SessionManager
from bassi.session import SessionStatus
from bassi.settings import database_url
from bassi.store.eventstore import EventStore
from tests.agent.conftest import make_settings
from tests.store.test_subscribers import FlakyLog, flaky_store


async def run_text(session: object, prompt: str) -> str:
    reply = ""
    async for event in session.send(prompt):  # type: ignore[attr-defined]
        if isinstance(event, ev.MessageCompleted):
            reply = "".join(b.text for b in event.content if b.type == "text")
    return reply


async def test_history_is_rebuilt_from_events_only(tmp_path: Path, db_path: str) -> None:
    settings = make_settings(tmp_path)
    async with SessionManager.open(db_path, settings=settings) as manager:
        session = await manager.create(model="scripted")
        assert await run_text(session, "one") == "Echo #1: one"
        assert await run_text(session, "two") == "Echo #2: two"
        assert await run_text(session, "three") == "Echo #3: three"
        session_id = session.id
    async with SessionManager.open(db_path, settings=settings) as manager:
        session = await manager.get(session_id)
        assert session.state.prompts == 3
        assert await run_text(session, "four") == "Echo #4: four"
        [row] = await manager.list()
        assert (row.session_id, row.status, row.runs) == (session_id, "idle", 4)


async def test_a_run_emits_the_whole_story_in_order(
    manager: SessionManager, workspace: Path
) -> None:
    session = await manager.create(
        model="scripted", workspace=str(workspace), permission_mode="bypass"
    )
    types = [e.type async for e in session.send("/bash echo hi")]
    assert types[:2] == ["prompt_received", "run_started"]
    assert types[-1] == "run_completed"
    first_tool = types.index("tool_call_started")
    assert types.index("permission_decided") < first_tool < types.index("tool_call_completed")
    assert types.count("message_completed") == 2
    completed = (await manager.store.query(session_id=session.id, types=["run_completed"]))[0]
    assert completed.turns == 2 and completed.stop_reason == "end_turn"  # type: ignore[union-attr]
    decided = (await manager.store.query(session_id=session.id, types=["permission_decided"]))[0]
    assert decided.decided_by == "mode:bypass"  # type: ignore[union-attr]


async def test_tool_call_started_is_durable_before_the_tool_runs(
    manager: SessionManager, workspace: Path
) -> None:
    seen_in_log: list[bool] = []
    from bassi.tools.base import tool

    @tool(read_only=True)
    async def probe(note: str) -> str:
        """Look whether our own start is already in the log."""
        started = await manager.store.query(types=["tool_call_started"])
        seen_in_log.append(any(e.input == {"note": note} for e in started))  # type: ignore[union-attr]
        return "ok"

    manager.registry.register(probe)
    from bassi.messages import ToolUseBlock

    turns = iter([[ToolUseBlock(id="c1", name="probe", input={"note": "x"})], "done"])
    from bassi.models.function import FunctionModel

    model = FunctionModel(lambda request: next(turns))
    manager._model_factory = lambda spec: model  # type: ignore[assignment]
    session = await manager.create(model="function", tools=["probe"], workspace=str(workspace))
    assert await run_text(session, "go") == "done"
    assert seen_in_log == [True]


async def test_a_second_answer_while_the_first_is_being_recorded_is_refused(
    manager: SessionManager, workspace: Path
) -> None:
    """Two clients answer one approval: the one that loses must hear 'already answered', not
    succeed with an answer that is thrown away (the audit would then contradict it)."""
    session = await manager.create(model="scripted", workspace=str(workspace))
    refused: list[str] = []
    async for event in session.send("/bash echo hi"):
        if isinstance(event, ev.PermissionRequested):
            await session.approve(event.tool_call_id, user="ana")
            for _ in range(5):  # the agent takes the answer and starts recording it
                await asyncio.sleep(0)
            assert event.tool_call_id in session.state.pending_approvals  # not yet on record
            with pytest.raises(ApprovalNotFound) as caught:
                await session.deny(event.tool_call_id, reason="NO", user="bob")
            refused.append(str(caught.value))
    assert refused and "already answered" in refused[0]
    decided = await manager.store.query(session_id=session.id, types=["permission_decided"])
    assert [(d.decision, d.decided_by) for d in decided] == [("allow", "user:ana")]  # type: ignore[union-attr]


async def test_a_tool_result_that_cannot_be_stored_fails_the_call_not_the_run(
    manager: SessionManager, workspace: Path
) -> None:
    """A custom tool returning text UTF-8 cannot encode (a lone surrogate): the call is
    recorded as failed, saying why, and the model carries on."""
    from bassi.messages import ToolUseBlock
    from bassi.models.function import FunctionModel
    from bassi.tools.base import tool

    @tool(read_only=True)
    def garbled() -> str:
        """Return text that cannot be stored."""
        return "half a character: \ud800"

    manager.registry.register(garbled)
    turns = iter([[ToolUseBlock(id="c1", name="garbled", input={})], "carried on"])
    model = FunctionModel(lambda request: next(turns))
    manager._model_factory = lambda spec: model  # type: ignore[assignment]
    session = await manager.create(model="function", tools=["garbled"], workspace=str(workspace))

    assert await run_text(session, "go") == "carried on"
    [failed] = await manager.store.query(session_id=session.id, types=["tool_call_failed"])
    assert failed.error_type == "InvalidEventError"  # type: ignore[union-attr]
    assert "could not be recorded" in failed.error  # type: ignore[union-attr]


async def test_parallel_tool_calls_and_approvals(manager: SessionManager, workspace: Path) -> None:
    (workspace / "a.txt").write_text("alpha")
    session = await manager.create(model="scripted", workspace=str(workspace))
    # list_dir is read-only: allowed by the default mode without asking
    events = [e async for e in session.send("/tools 3")]
    assert sum(e.type == "tool_call_completed" for e in events) == 3
    assert not any(e.type == "permission_requested" for e in events)
    # bash asks; allow always records a rule, so the next identical call does not ask
    asked = 0
    async for event in session.send("/bash echo hi"):
        if isinstance(event, ev.PermissionRequested):
            asked += 1
            await session.approve(event.tool_call_id, always=True, user="ana")
    assert asked == 1
    assert session.state.rules == ("allow:bash(echo hi)",)
    kinds = [e.type async for e in session.send("/bash echo hi")]
    assert "permission_requested" not in kinds and "tool_call_completed" in kinds
    # a denial reaches the model as an error result with the reason
    async for event in session.send("/bash rm -rf /tmp/nothing-here"):
        if isinstance(event, ev.PermissionRequested):
            await session.deny(event.tool_call_id, reason="not today")
    failed = (await manager.store.query(session_id=session.id, types=["tool_call_failed"]))[-1]
    assert "not today" in failed.error  # type: ignore[union-attr]
    assert session.state.status is SessionStatus.IDLE
    with pytest.raises(ApprovalNotFound):
        await session.approve("nope")


async def test_one_run_at_a_time_and_clear_errors(manager: SessionManager) -> None:
    session = await manager.create(model="scripted")
    await session.prompt("/stream 50 10")
    with pytest.raises(InvalidStateError, match="already has an active run"):
        await session.prompt("again")
    await session.cancel()
    with pytest.raises(InvalidStateError, match="no active run"):
        await session.cancel()
    with pytest.raises(PayloadTooLarge):
        await session.prompt("x" * (manager.settings.max_prompt_bytes + 1))
    with pytest.raises(ConfigError):
        await manager.create(model="nonsense:model")
    with pytest.raises(ConfigError, match="permission mode"):
        await manager.create(permission_mode="yolo")


async def test_a_model_error_fails_the_run_and_the_session_stays_usable(
    manager: SessionManager,
) -> None:
    session = await manager.create(model="scripted")
    events = [e async for e in session.send("/fail")]
    assert [e.type for e in events[-2:]] == ["error", "run_failed"]
    assert events[-2].where == "model"  # type: ignore[union-attr]
    assert await run_text(session, "still there?") == "Echo #2: still there?"


async def test_many_sessions_run_at_once_on_one_loop(manager: SessionManager) -> None:
    sessions = [await manager.create(model="scripted") for _ in range(10)]
    replies = await asyncio.gather(*(run_text(s, "/stream 20 10") for s in sessions))
    assert all(r == " ".join(f"t{n}" for n in range(1, 21)) for r in replies)
    # the runs overlapped: every run started before any of them completed (log order, not time)
    log = await manager.store.query(types=["run_started", "run_completed"])
    last_start = max(e.position or 0 for e in log if e.type == "run_started")
    first_end = min(e.position or 0 for e in log if e.type == "run_completed")
    assert last_start < first_end


async def test_after_turn_cancel_lets_the_step_finish(manager: SessionManager) -> None:
    session = await manager.create(model="scripted")
    await session.prompt("/stream 30 10")
    await asyncio.sleep(0.05)
    await session.cancel("after_turn", reason="enough")
    await session.wait()
    [cancelled] = await manager.store.query(session_id=session.id, types=["run_cancelled"])
    assert cancelled.mode == "after_turn"  # type: ignore[union-attr]
    [message] = await manager.store.query(session_id=session.id, types=["message_completed"])
    assert len(message.content[0].text.split()) == 30  # type: ignore[union-attr]


async def test_plan_mode_generates_a_plan_without_side_effects(
    manager: SessionManager, workspace: Path
) -> None:
    session = await manager.create(
        model="scripted", workspace=str(workspace), permission_mode="plan"
    )
    types = [e.type async for e in session.send("/write x.txt hello")]
    assert "plan_generated" in types
    assert not (workspace / "x.txt").exists()


async def test_switching_models_between_runs(manager: SessionManager) -> None:
    session = await manager.create(model="scripted")
    await session.switch_model("scripted:other")
    assert session.state.model == "scripted:other"
    [switched] = await manager.store.query(session_id=session.id, types=["model_switched"])
    assert (switched.previous, switched.model) == ("scripted", "scripted:other")  # type: ignore[union-attr]
    with pytest.raises(ConfigError):
        await session.switch_model("nonsense:x")


async def test_ending_a_session(manager: SessionManager) -> None:
    session = await manager.create(model="scripted")
    await manager.end(session.id, reason="bye")
    assert session.state.status is SessionStatus.ENDED
    with pytest.raises(InvalidStateError, match="ended"):
        await session.prompt("hello?")


async def test_a_second_manager_beside_a_live_one_leaves_its_runs_alone(
    tmp_path: Path, db_path: str
) -> None:
    settings = make_settings(tmp_path)
    async with SessionManager.open(db_path, settings=settings) as daemon:
        session = await daemon.create(model="scripted")
        await session.prompt("/stream 40 20")
        async with SessionManager.open(db_path, settings=settings) as cli:
            assert cli.recovery == []  # the live run is not "recovered" from under the daemon
        await session.wait()
        ends = await daemon.store.query(session_id=session.id, types=list(ev.TERMINAL_RUN_TYPES))
        assert [e.type for e in ends] == ["run_completed"]
        assert not await daemon.store.query(session_id=session.id, types=["session_recovered"])


async def test_a_full_disk_fails_the_run_cleanly_and_the_session_recovers(
    tmp_path: Path, db_path: str
) -> None:
    store = await EventStore.open(database_url(db_path), retry_for=0.3)
    manager = SessionManager(store, make_settings(tmp_path))
    try:
        session = await manager.create(model="scripted")
        assert await run_text(session, "before") == "Echo #1: before"
        pages = await _scalar(store, "PRAGMA page_count")
        await store.log.execute_raw(f"PRAGMA max_page_count = {pages}")  # the disk is full now
        events = [e async for e in session.send("/stream 3000 0")]
        assert [e.type for e in events[-2:]] == ["error", "run_failed"]
        assert "full" in events[-2].message  # type: ignore[union-attr]
        await store.log.execute_raw("PRAGMA max_page_count = 1073741823")  # space freed
        assert await run_text(session, "after") == "Echo #3: after"
    finally:
        await manager.close()


async def flaky_manager(
    tmp_path: Path, db_path: str, retry_for: float
) -> tuple[FlakyLog, EventStore, SessionManager]:
    """A manager on a real SQLite file whose commits fail while `log.failing` is set."""
    log, store = await flaky_store(database_url(db_path), retry_for=retry_for)
    return log, store, SessionManager(store, make_settings(tmp_path))


async def test_a_run_that_could_not_record_its_end_is_closed_before_the_next(
    tmp_path: Path, db_path: str
) -> None:
    log, store, manager = await flaky_manager(tmp_path, db_path, retry_for=0.2)
    try:
        session = await manager.create(model="scripted")
        await session.prompt("/stream 40 10")
        await asyncio.sleep(0.1)
        log.failing = True  # the database is gone: not even the run's failure can be written
        await asyncio.wait_for(session.wait(), 30)
        assert not session.run_active and session.state.current_run_id is not None
        log.failing = False
        assert await run_text(session, "again") == "Echo #2: again"
        ends = await store.query(session_id=session.id, types=list(ev.TERMINAL_RUN_TYPES))
        assert [e.type for e in ends] == ["run_failed", "run_completed"]
        assert ends[0].error_type == "PersistenceError"  # type: ignore[union-attr]
    finally:
        await manager.close()


async def test_a_run_that_could_not_record_its_end_is_closed_once_the_store_returns(
    tmp_path: Path, db_path: str
) -> None:
    log, store, manager = await flaky_manager(tmp_path, db_path, retry_for=0.2)
    try:
        session = await manager.create(model="scripted")
        await session.prompt("/stream 40 10")
        await asyncio.sleep(0.1)
        log.failing = True
        await asyncio.wait_for(session.wait(), 30)
        await asyncio.sleep(1.0)  # the closer retries while the store still fails
        assert session.state.current_run_id is not None
        log.failing = False  # space freed: nobody prompts, the run is closed anyway
        for _ in range(200):
            if session.state.current_run_id is None:
                break
            await asyncio.sleep(0.05)
        ends = await store.query(session_id=session.id, types=list(ev.TERMINAL_RUN_TYPES))
        assert [e.type for e in ends] == ["run_failed"]
        assert session.state.status is SessionStatus.IDLE
    finally:
        await manager.close()


async def _scalar(store: object, sql: str) -> int:
    from sqlalchemy import text

    async with store.log.writer.connect() as conn:  # type: ignore[attr-defined]
        return int((await conn.execute(text(sql))).scalar() or 0)


async def test_streamed_events_lost_to_a_failing_store_fail_the_run_visibly(
    tmp_path: Path, db_path: str
) -> None:
    log, store, manager = await flaky_manager(tmp_path, db_path, retry_for=0.1)
    try:
        session = await manager.create(model="scripted")
        await session.prompt("/stream 100 10")
        await asyncio.sleep(0.2)
        log.failing = True  # a short outage: some token deltas cannot be stored
        await asyncio.sleep(0.4)
        log.failing = False
        await asyncio.wait_for(session.wait(), 30)
        assert store.lost(session.id) > 0
        # The run failed: it recorded that itself, or (if the store was still down when it
        # tried) the next prompt recorded it. Either way a hole never passes as a completed run.
        assert await run_text(session, "after") == "Echo #2: after"
        ends = await store.query(session_id=session.id, types=["error", *ev.TERMINAL_RUN_TYPES])
        assert [e.type for e in ends] == ["error", "run_failed", "run_completed"]
        assert ends[0].where in ("agent", "store")  # type: ignore[union-attr]
    finally:
        await manager.close()


async def test_a_loss_counted_after_the_last_turn_still_stops_run_completed(
    tmp_path: Path, db_path: str
) -> None:
    # The crash campaign's disk-full case: the batch of token deltas fails only after the
    # model's message was already handed over, so the first append to notice the loss is
    # the run's end. A completed run with a hole in it must not be recorded; a failure may.
    from bassi.errors import PersistenceError

    log, store, manager = await flaky_manager(tmp_path, db_path, retry_for=0.1)
    try:
        session = await manager.create(model="scripted")
        ids = {"session_id": session.id, "run_id": "r1"}
        log.failing = True
        delta = ev.TokenDelta(**ids, message_id="m", index=0, channel="text", text="lost")
        await store.append(delta)  # non-durable, as the agent streams
        await store.flush()
        log.failing = False
        assert store.lost(session.id) == 1
        completed = ev.RunCompleted(**ids, stop_reason="end_turn", turns=1)
        with pytest.raises(PersistenceError, match="could not be stored"):
            await session.append(completed)
        await session.append(ev.RunFailed(**ids, error_type="PersistenceError", message="hole"))
        ends = await store.query(session_id=session.id, types=list(ev.TERMINAL_RUN_TYPES))
        assert [e.type for e in ends] == ["run_failed"]
    finally:
        await manager.close()


async def test_the_next_prompt_accounts_for_a_run_another_process_left_behind(
    tmp_path: Path, db_path: str
) -> None:
    # The daemon has started (nothing to recover); then a bassi command runs a session and
    # dies mid-run. Its run lock dies with it, so the daemon's next prompt to that session
    # marks the run interrupted and carries on, without waiting for a restart.
    daemon = await SessionManager.connect(db_path, settings=make_settings(tmp_path))
    command = await SessionManager.connect(db_path, settings=make_settings(tmp_path), recover=False)
    try:
        session = await command.create(model="scripted")
        cut = await session.prompt("/stream 1000 5")
        await asyncio.sleep(0.2)
    finally:
        await command.close()  # the command's process is gone; its run never ended
    try:
        mine = await daemon.get(session.id)
        assert mine.state.current_run_id == cut
        assert await run_text(mine, "after") == "Echo #2: after"
        ends = await daemon.store.query(session_id=session.id, types=list(ev.TERMINAL_RUN_TYPES))
        assert [(e.run_id == cut, e.type) for e in ends] == [
            (True, "run_interrupted"),
            (False, "run_completed"),
        ]
    finally:
        await daemon.close()


async def test_a_run_live_in_another_manager_is_neither_recovered_nor_taken_over(
    tmp_path: Path, db_path: str
) -> None:
    first = await SessionManager.connect(db_path, settings=make_settings(tmp_path))
    second = await SessionManager.connect(db_path, settings=make_settings(tmp_path), recover=False)
    try:
        session = await first.create(model="scripted")
        await session.prompt("/stream 400 5")
        await asyncio.sleep(0.1)
        with pytest.raises(InvalidStateError, match="in progress in another process"):
            await second.recover_session(session.id)
        other = await second.get(session.id)
        with pytest.raises(InvalidStateError, match="in progress in another process"):
            await other.prompt("me too")
        await asyncio.wait_for(session.wait(), 30)
        ends = await first.store.query(session_id=session.id, types=list(ev.TERMINAL_RUN_TYPES))
        assert [e.type for e in ends] == ["run_completed"]
    finally:
        await second.close()
        await first.close()
