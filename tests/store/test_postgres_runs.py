"""Runs on PostgreSQL where it differs from SQLite: values it cannot store."""

from __future__ import annotations

from pathlib import Path

from bassi import events as ev
from bassi.manager import SessionManager
from tests.agent.conftest import make_settings


async def test_binary_tool_output_is_recorded_on_postgresql_with_its_nuls_marked(
    pg_url: str, tmp_path: Path
) -> None:
    # jsonb holds no NUL, and binary output (`cat` of an image, `find -print0`) has them: the
    # output is kept, each NUL as U+FFFD (as on SQLite), instead of the call failing.
    async with SessionManager.open(pg_url, settings=make_settings(tmp_path)) as manager:
        session = await manager.create(model="scripted", tools=["bash"], permission_mode="bypass")
        events = [e async for e in session.send("/bash printf 'x\\000y'")]
        assert manager.store.stats().healthy
        stored = await manager.store.query(session_id=session.id)
    [done] = [e for e in events if isinstance(e, ev.ToolCallCompleted)]
    assert done.output.startswith("x\ufffdy")
    assert events[-1].type == "run_completed"
    assert [e.event_id for e in stored][-len(events) :] == [e.event_id for e in events]
