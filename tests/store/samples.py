"""One realistic instance of every event type, for round-trip and replay tests."""

from __future__ import annotations

from bassi import events as ev
from bassi.messages import TextBlock, ThinkingBlock, ToolUseBlock, Usage


def one_of_each(session_id: str, run_id: str = "run-1") -> list[ev.Event]:
    """Every event type once, in an order a real session could produce."""
    usage = Usage(input_tokens=12, output_tokens=7, cache_read_tokens=3, cache_write_tokens=1)
    common = {"session_id": session_id, "run_id": run_id}
    items: list[ev.Event] = [
        ev.SessionStarted(
            session_id=session_id,
            title='Ünïcode ✓ "quotes"',
            model="scripted",
            system_prompt="be brief",
            tools=["bash", "read_file"],
            workspace="/tmp/ws",
            permission_mode="default",
            rules=["allow:bash(git status*)"],
        ),
        ev.PromptReceived(**common, content="list files\nplease", user="ana"),
        ev.RunStarted(**common, model="scripted"),
        ev.MessageStarted(**common, message_id="m1", model="scripted", provider="scripted"),
        ev.ContentBlockStarted(**common, message_id="m1", index=0, block_type="thinking"),
        ev.TokenDelta(**common, message_id="m1", index=0, channel="thinking", text="hmm"),
        ev.ContentBlockStopped(**common, message_id="m1", index=0),
        ev.ContentBlockStarted(
            **common,
            message_id="m1",
            index=1,
            block_type="tool_use",
            tool_call_id="c1",
            tool_name="bash",
        ),
        ev.TokenDelta(
            **common, message_id="m1", index=1, channel="tool_input", text='{"command": "ls"}'
        ),
        ev.ContentBlockStopped(**common, message_id="m1", index=1),
        ev.MessageCompleted(
            **common,
            message_id="m1",
            content=[
                ThinkingBlock(thinking="hmm", signature="sig=="),
                ToolUseBlock(id="c1", name="bash", input={"command": "ls"}),
            ],
            stop_reason="tool_use",
            usage=usage,
            model="scripted",
            provider="scripted",
            request_id="req_1",
        ),
        ev.PermissionRequested(
            **common,
            tool_call_id="c1",
            tool_name="bash",
            input={"command": "ls"},
            reason="bash asks",
        ),
        ev.PermissionDecided(
            **common,
            tool_call_id="c1",
            tool_name="bash",
            decision="allow",
            decided_by="user:ana",
            reason="fine",
            updated_input={"command": "ls -a"},
        ),
        ev.ToolCallStarted(
            **common, tool_call_id="c1", tool_name="bash", input={"command": "ls -a"}
        ),
        ev.ToolCallCompleted(
            **common,
            tool_call_id="c1",
            tool_name="bash",
            output="a\nb\n",
            duration_ms=5,
            original_size=4,
        ),
        ev.ToolCallFailed(
            **common,
            tool_call_id="c2",
            tool_name="bash",
            error="boom",
            error_type="RuntimeError",
            interrupted=True,
        ),
        ev.PlanGenerated(**common, plan="1. look\n2. leap"),
        ev.Error(
            **common,
            where="model",
            error_type="overloaded_error",
            message="busy",
            retryable=True,
            request_id="req_2",
        ),
        ev.MessageCompleted(
            **common,
            message_id="m2",
            content=[TextBlock(text="done")],
            stop_reason="end_turn",
            usage=usage,
        ),
        ev.RunCompleted(
            **common, stop_reason="end_turn", turns=2, usage=usage + usage, duration_ms=1234
        ),
        ev.ModelSwitched(session_id=session_id, previous="scripted", model="anthropic:claude-x"),
        ev.PermissionModeChanged(session_id=session_id, previous="default", mode="accept_edits"),
        ev.PermissionRuleAdded(session_id=session_id, rule="allow:bash(ls*)"),
        ev.PromptReceived(session_id=session_id, run_id="run-2", content="again"),
        ev.RunStarted(session_id=session_id, run_id="run-2", model="anthropic:claude-x"),
        ev.RunCancelled(session_id=session_id, run_id="run-2", mode="after_turn", reason="user"),
        ev.PromptReceived(session_id=session_id, run_id="run-3", content="third"),
        ev.RunFailed(
            session_id=session_id, run_id="run-3", error_type="ModelError", message="down"
        ),
        ev.PromptReceived(session_id=session_id, run_id="run-4", content="fourth"),
        ev.SessionRecovered(session_id=session_id, interrupted_run_id="run-4", action="mark"),
        ev.RunInterrupted(session_id=session_id, run_id="run-4"),
        ev.SessionEnded(session_id=session_id, reason="done"),
    ]
    return items
