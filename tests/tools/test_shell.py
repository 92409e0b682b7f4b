"""Must show 2: bash kills its whole process tree on timeout and cancel, caps output, reports
the exit code. Real processes, checked in the process table."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from pathlib import Path

import pytest

from bassi.tools.base import ToolContext
from bassi.tools.executor import ToolExecutor
from bassi.tools.registry import ToolRegistry
from tests.tools.processes import running_with, wait_until_gone, wait_until_running


def unique_seconds() -> str:
    """A sleep duration no other process on this machine is likely to use: our marker."""
    return f"{random.randint(300, 900)}.{random.randint(10_000, 99_999)}"


async def test_exit_code_stdout_and_stderr_are_reported(
    executor: ToolExecutor, ctx: ToolContext
) -> None:
    outcome = await executor.run("c1", "bash", {"command": "echo out; echo err >&2; exit 3"}, ctx)
    assert not outcome.failed
    assert outcome.is_error
    assert outcome.output == "out\n[stderr]\nerr\n[exit code 3]"


async def test_success_runs_in_the_workspace(
    executor: ToolExecutor, ctx: ToolContext, workspace: Path
) -> None:
    outcome = await executor.run("c1", "bash", {"command": "pwd; cat hello.txt"}, ctx)
    assert not outcome.is_error
    assert outcome.output == f"{workspace}\nhello\nworld\n[exit code 0]"


async def test_timeout_kills_the_whole_tree(executor: ToolExecutor, ctx: ToolContext) -> None:
    marker = unique_seconds()
    command = (
        f"sleep {marker} & (sleep {marker}; echo never) & "
        f"bash -c 'sleep {marker}' & echo started; sleep {marker}"
    )
    started = time.monotonic()
    outcome = await executor.run("c1", "bash", {"command": command, "timeout": 0.5}, ctx)
    assert time.monotonic() - started < 2.5
    assert outcome.failed
    assert outcome.error_type == "ToolTimeout"
    assert outcome.error is not None
    assert "timed out after 0.5s" in outcome.error
    assert "started" in outcome.error  # the output so far is kept
    assert await wait_until_gone(marker, within=1.0) == []


async def test_background_children_do_not_outlive_a_finished_command(
    executor: ToolExecutor, ctx: ToolContext
) -> None:
    marker = unique_seconds()
    started = time.monotonic()
    outcome = await executor.run(
        "c1", "bash", {"command": f"sleep {marker} & sleep {marker} & echo done"}, ctx
    )
    assert time.monotonic() - started < 2.0
    assert outcome.output == "done\n[exit code 0]"
    assert await wait_until_gone(marker, within=1.0) == []


async def test_cancel_ends_the_tree_within_a_second(
    executor: ToolExecutor, ctx: ToolContext
) -> None:
    marker = unique_seconds()
    command = f"sleep {marker} & (sleep {marker}) & sleep {marker}"
    task = asyncio.create_task(executor.run("c1", "bash", {"command": command}, ctx))
    assert len(await wait_until_running(marker, 4)) >= 4
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - cancelled_at < 1.0
    assert await wait_until_gone(marker, within=1.0 - (time.monotonic() - cancelled_at)) == []


async def test_output_cap_truncates_with_a_marker_and_the_original_size(
    ctx: ToolContext,
) -> None:
    executor = ToolExecutor(ToolRegistry.with_builtins(), output_cap=1000)
    outcome = await executor.run(
        "c1", "bash", {"command": "head -c 5000 /dev/zero | tr '\\0' a"}, ctx
    )
    assert outcome.truncated
    assert outcome.original_size == 5000
    assert outcome.output.startswith("a" * 1000 + "\n[output truncated: showing the first 1000")
    assert "of 5000 bytes]" in outcome.output
    assert outcome.output.endswith("[exit code 0]")
    assert "a" * 1001 not in outcome.output


async def test_huge_stderr_keeps_its_share_of_the_cap(ctx: ToolContext) -> None:
    executor = ToolExecutor(ToolRegistry.with_builtins(), output_cap=1000)
    command = "head -c 100000 /dev/zero | tr '\\0' o; head -c 100000 /dev/zero | tr '\\0' e >&2"
    outcome = await executor.run("c1", "bash", {"command": command}, ctx)
    assert outcome.truncated
    assert outcome.original_size == 200_000
    assert "o" * 750 in outcome.output and "o" * 751 not in outcome.output
    assert "e" * 250 in outcome.output and "e" * 251 not in outcome.output
    assert outcome.output.endswith("[exit code 0]")


async def test_small_output_is_not_marked_truncated(
    executor: ToolExecutor, ctx: ToolContext
) -> None:
    outcome = await executor.run("c1", "bash", {"command": "printf abc"}, ctx)
    assert outcome.output == "abc\n[exit code 0]"
    assert not outcome.truncated
    assert outcome.original_size == len(outcome.output)


def test_no_marker_collision() -> None:
    # The markers are chosen at random; make sure nothing already uses one.
    assert running_with(unique_seconds()) == []


_HOST = """
import asyncio, sys
from pathlib import Path
from bassi.tools.base import ToolContext
from bassi.tools.executor import ToolExecutor
from bassi.tools.registry import ToolRegistry

async def main() -> None:
    ctx = ToolContext(workspace=Path(sys.argv[1]), tool_call_id="c1")
    await ToolExecutor(ToolRegistry.with_builtins()).run("c1", "bash", {"command": sys.argv[2]}, ctx)

asyncio.run(main())
"""


async def test_a_command_does_not_outlive_a_process_killed_with_sigkill(workspace: Path) -> None:
    # A daemon killed with SIGKILL cannot stop its tools: their process group must notice.
    marker = unique_seconds()
    command = f"sleep {marker} & (sleep {marker}) & sleep {marker} > /dev/null"
    host = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOST, str(workspace), command
    )
    try:
        assert len(await wait_until_running(marker, 3)) >= 3
    finally:
        host.kill()
        await host.wait()
    assert await wait_until_gone(marker, within=3.0) == []


async def test_a_command_has_no_children_it_did_not_start(
    executor: ToolExecutor, ctx: ToolContext
) -> None:
    # A program that waits for all its children returns at once: bash's watcher is not one.
    program = "import os\ntry:\n    os.wait()\nexcept ChildProcessError:\n    print('none')"
    started = time.monotonic()
    outcome = await executor.run(
        "c1", "bash", {"command": f'python3 -c "{program}"', "timeout": 10}, ctx
    )
    assert time.monotonic() - started < 5
    assert outcome.output == "none\n[exit code 0]"
