"""Must show 6: several calls run in parallel; a slow one does not hold back the others."""

from __future__ import annotations

import asyncio
import time

import pytest

from bassi.tools.base import ToolContext
from bassi.tools.executor import ToolCall, ToolExecutor, ToolOutcome
from tests.tools.processes import wait_until_gone


async def test_a_slow_call_does_not_hold_back_the_others(
    executor: ToolExecutor, ctx: ToolContext
) -> None:
    calls = [
        ToolCall(
            tool_call_id="slow", name="bash", input={"command": "sleep 1; echo slow"}, ctx=ctx
        ),
        *(
            ToolCall(tool_call_id=f"fast{i}", name="list_dir", input={"path": "."}, ctx=ctx)
            for i in range(4)
        ),
        ToolCall(tool_call_id="echo", name="bash", input={"command": "echo quick"}, ctx=ctx),
        ToolCall(tool_call_id="bad", name="read_file", input={"path": "missing"}, ctx=ctx),
    ]
    started = time.monotonic()
    finished: dict[str, float] = {}

    async def on_done(call: ToolCall, outcome: ToolOutcome) -> None:
        finished[call.tool_call_id] = time.monotonic() - started

    outcomes = await executor.run_parallel(calls, on_done=on_done)
    total = time.monotonic() - started

    assert [o.tool_call_id for o in outcomes] == [c.tool_call_id for c in calls]
    assert outcomes[0].output == "slow\n[exit code 0]"
    assert outcomes[5].output == "quick\n[exit code 0]"
    assert outcomes[6].error == "missing does not exist"
    assert 1.0 <= total < 1.8  # together, not one after another
    assert list(finished)[-1] == "slow"
    assert max(t for k, t in finished.items() if k != "slow") < 0.5


async def test_cancelling_a_batch_stops_every_call(
    executor: ToolExecutor, ctx: ToolContext
) -> None:
    calls = [
        ToolCall(tool_call_id=f"c{i}", name="bash", input={"command": "sleep 61.4242"}, ctx=ctx)
        for i in range(3)
    ]
    batch = asyncio.create_task(executor.run_parallel(calls))
    await asyncio.sleep(0.3)
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    assert await wait_until_gone("61.4242", within=1.0) == []
