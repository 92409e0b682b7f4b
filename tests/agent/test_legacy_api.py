"""The seed's API keeps working, producing the same events as a daemon session."""

from __future__ import annotations

from pathlib import Path

from bassi.legacy import AgentConfig, AgentSession, create_bash_tool


async def test_the_seed_api_runs_exactly_as_documented(tmp_path: Path) -> None:
    config = AgentConfig(
        model_provider="scripted",
        model_name="",
        api_key=None,
        system_prompt="You are terse.",
        max_tokens=512,
        workspace=str(tmp_path),
    )
    session = AgentSession(config, tools=[create_bash_tool()])
    await session.start()
    watcher = session.subscribe("watcher")
    seen = []
    async for event in session.send_prompt("/bash echo legacy"):
        seen.append(event)
    assert seen[-1].type == "run_completed"
    completed = [e for e in seen if e.type == "tool_call_completed"]
    assert completed and "legacy" in completed[0].output  # type: ignore[attr-defined]
    events = await session.get_events()
    assert events[0].type == "session_started"
    assert events[0].system_prompt == "You are terse." and events[0].tools == ["bash"]  # type: ignore[union-attr]
    watched = []
    async for event in watcher:
        watched.append(event)
        if len(watched) == len(events):
            break
    assert [e.event_id for e in watched] == [e.event_id for e in events]
    await session.complete()


async def test_a_file_store_keeps_the_session(tmp_path: Path) -> None:
    db = str(tmp_path / "legacy.db")
    session = AgentSession(AgentConfig(), database=db)
    await session.start()
    async for _ in session.send_prompt("hi"):
        pass
    sid = session.session_id
    await session.complete()
    from bassi.manager import SessionManager

    async with SessionManager.open(db) as manager:
        reopened = await manager.get(sid)
        assert reopened.state.messages[-1].text == "Echo #1: hi"
        assert reopened.state.status == "ended"
