"""Must show 4: a command hook (a real script) denies `rm -rf` and rewrites another input; the
events name the hook and its reason. Also: Python hooks, post-tool hooks, and hooks that fail."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bassi.settings import HookConfig, Settings
from bassi.tools.base import ToolContext
from bassi.tools.executor import ToolExecutor
from bassi.tools.hooks import (
    CommandHook,
    HookAnswer,
    HookCall,
    post_tool_hook,
    pre_tool_hook,
)
from bassi.tools.permissions import PermissionPolicy, decision_event, request_event
from bassi.tools.registry import ToolRegistry
from bassi.tools.shell import bash
from tests.tools.processes import wait_until_gone

GUARD = """#!{python}
# A PreToolUse hook as one would write it for Claude Code.
import json, sys

call = json.load(sys.stdin)
with open({log!r}, "a") as log:
    log.write(json.dumps(call) + "\\n")
command = call["tool_input"].get("command", "")
if "rm -rf" in command:
    print(json.dumps({{"hookSpecificOutput": {{
        "hookEventName": "PreToolUse",
        "permissionDecision": "deny",
        "permissionDecisionReason": "rm -rf is never run here",
    }}}}))
elif command.startswith("echo hi"):
    print(json.dumps({{"hookSpecificOutput": {{
        "hookEventName": "PreToolUse",
        "permissionDecision": "allow",
        "permissionDecisionReason": "echo is harmless; made it say where it came from",
        "updatedInput": {{"command": "echo 'hi from the hook'"}},
    }}}}))
elif command.startswith("deploy"):
    print(json.dumps({{"hookSpecificOutput": {{
        "permissionDecision": "ask", "permissionDecisionReason": "deploys need a human"}}}}))
"""


def script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def hook_log(tmp_path: Path) -> Path:
    return tmp_path / "hook.log"


@pytest.fixture
def guard(tmp_path: Path, hook_log: Path) -> Path:
    return script(tmp_path / "guard.py", GUARD.format(python=sys.executable, log=str(hook_log)))


def logged(log: Path) -> list[dict[str, Any]]:
    """What the guard hook was called with, one object per call."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def policy_with(*hooks: HookConfig, rules: tuple[str, ...] = ()) -> PermissionPolicy:
    return PermissionPolicy.from_settings(Settings(hooks=hooks, rules=rules))


IDS = {"session_id": "s1", "run_id": "r1", "tool_call_id": "c1", "tool_name": "bash"}


async def test_command_hook_denies_rm_rf_and_the_event_names_it(
    guard: Path, ctx: ToolContext
) -> None:
    policy = policy_with(
        HookConfig(event="PreToolUse", command=str(guard), matcher="bash", name="guard")
    )
    decision = await policy.decide(bash, {"command": "rm -rf /"}, ctx)
    event = decision_event(decision, **IDS)
    assert event.decision == "deny"
    assert event.decided_by == "hook:guard"
    assert event.reason == "rm -rf is never run here"
    assert event.updated_input is None


async def test_command_hook_rewrites_input_and_the_call_runs_with_it(
    guard: Path, ctx: ToolContext, hook_log: Path, workspace: Path
) -> None:
    policy = policy_with(
        HookConfig(event="PreToolUse", command=str(guard), matcher="bash", name="guard")
    )
    decision = await policy.decide(bash, {"command": "echo hi"}, ctx)
    event = decision_event(decision, **IDS)
    assert event.decision == "allow"
    assert event.decided_by == "hook:guard"
    assert event.reason == "echo is harmless; made it say where it came from"
    assert event.updated_input == {"command": "echo 'hi from the hook'"}

    assert decision.updated_input is not None
    outcome = await ToolExecutor(ToolRegistry.with_builtins()).run(
        "c1", "bash", decision.updated_input, ctx
    )
    assert outcome.output == "hi from the hook\n[exit code 0]"

    (seen,) = logged(hook_log)
    assert seen["hook_event_name"] == "PreToolUse"
    assert seen["tool_name"] == "bash"
    assert seen["tool_input"] == {"command": "echo hi"}
    assert seen["tool_use_id"] == "c1"
    assert seen["session_id"] == "s1"
    assert seen["cwd"] == str(workspace)
    assert seen["permission_mode"] == "default"


async def test_a_hook_may_ask(guard: Path, ctx: ToolContext) -> None:
    policy = policy_with(HookConfig(event="PreToolUse", command=str(guard), name="guard"))
    decision = await policy.decide(bash, {"command": "deploy prod"}, ctx)
    assert (decision.outcome, decision.decided_by) == ("ask", "hook:guard")
    request = request_event(decision, **IDS, input={"command": "deploy prod"})
    assert request.reason == "deploys need a human (hook:guard)"


async def test_no_answer_leaves_the_decision_to_rules_and_mode(
    guard: Path, ctx: ToolContext
) -> None:
    policy = policy_with(
        HookConfig(event="PreToolUse", command=str(guard), name="guard"),
        rules=("allow:bash(ls*)",),
    )
    assert (await policy.decide(bash, {"command": "ls"}, ctx)).decided_by == "rule:bash(ls*)"
    assert (await policy.decide(bash, {"command": "make"}, ctx)).decided_by == "mode:default"


async def test_a_deny_rule_beats_a_hook_that_allows(guard: Path, ctx: ToolContext) -> None:
    policy = policy_with(
        HookConfig(event="PreToolUse", command=str(guard), name="guard"),
        rules=("deny:bash(echo*)",),
    )
    decision = await policy.decide(bash, {"command": "echo hi"}, ctx)
    assert (decision.outcome, decision.decided_by) == ("deny", "rule:bash(echo*)")


async def test_the_matcher_picks_the_tools(guard: Path, ctx: ToolContext, hook_log: Path) -> None:
    policy = policy_with(
        HookConfig(event="PreToolUse", command=str(guard), matcher="write_file|edit_file")
    )
    decision = await policy.decide(bash, {"command": "rm -rf /"}, ctx)
    assert decision.decided_by == "mode:default"
    assert logged(hook_log) == []


async def test_exit_code_2_denies_with_stderr_as_the_reason(
    tmp_path: Path, ctx: ToolContext
) -> None:
    hook = script(
        tmp_path / "no_network.sh",
        "#!/bin/bash\nif grep -q curl; then echo 'no network from tools' >&2; exit 2; fi\n",
    )
    policy = policy_with(HookConfig(event="PreToolUse", command=str(hook), name="offline"))
    decision = await policy.decide(bash, {"command": "curl example.com"}, ctx)
    assert (decision.outcome, decision.decided_by) == ("deny", "hook:offline")
    assert decision.reason == "no network from tools"
    allowed = await policy.decide(bash, {"command": "ls"}, ctx)
    assert allowed.decided_by == "mode:default"


@pytest.mark.parametrize(
    ("body", "hook_timeout", "reason"),
    [
        (
            "echo boom >&2; exit 1",
            5.0,
            "hook flaky failed with exit code 1: boom; failing closed",
        ),
        ("sleep 73.1234", 0.3, "hook flaky timed out after 0.3s; failing closed"),
        (
            'echo \'{"hookSpecificOutput": {"permissionDecision": "maybe"}}\'',
            5.0,
            "hook flaky gave an unreadable answer: unknown permissionDecision 'maybe';"
            " failing closed",
        ),
        ("echo '{not json'", 5.0, "hook flaky gave an unreadable answer"),
        ("exec /nonexistent/program", 5.0, "hook flaky failed with exit code 127"),
    ],
    ids=["crash", "timeout", "bad-answer", "bad-json", "missing-program"],
)
async def test_a_hook_that_fails_denies_and_says_so(
    tmp_path: Path, ctx: ToolContext, body: str, hook_timeout: float, reason: str
) -> None:
    hook = script(tmp_path / "flaky.sh", f"#!/bin/bash\ncat > /dev/null\n{body}\n")
    policy = policy_with(
        HookConfig(event="PreToolUse", command=str(hook), name="flaky", timeout=hook_timeout)
    )
    decision = await policy.decide(bash, {"command": "ls"}, ctx)
    assert (decision.outcome, decision.decided_by) == ("deny", "hook:flaky")
    assert decision.reason.startswith(reason)
    assert decision.reason.endswith("failing closed")
    assert await wait_until_gone("73.1234", within=1.0) == []


async def test_legacy_decision_fields_are_understood() -> None:
    assert HookAnswer.from_json({"decision": "approve"}, event="PreToolUse").decision == "allow"
    blocked = HookAnswer.from_json({"decision": "block", "reason": "no"}, event="PreToolUse")
    assert (blocked.decision, blocked.reason) == ("deny", "no")
    stopped = HookAnswer.from_json({"continue": False, "stopReason": "stop"}, event="PreToolUse")
    assert (stopped.decision, stopped.reason) == ("deny", "stop")


async def test_python_hooks_chain_rewrites_and_a_crash_denies(ctx: ToolContext) -> None:
    @pre_tool_hook(name="quiet", matcher="bash")
    async def quiet(call: HookCall) -> HookAnswer:
        return HookAnswer(updated_input={"command": f"{call.tool_input['command']} --quiet"})

    @pre_tool_hook(name="timeout_cap")
    def timeout_cap(call: HookCall) -> HookAnswer | None:  # sync: runs in a thread
        return HookAnswer(
            decision="allow",
            reason="capped the timeout",
            updated_input={**call.tool_input, "timeout": 5},
        )

    policy = PermissionPolicy.create(hooks=[quiet, timeout_cap])
    decision = await policy.decide(bash, {"command": "make"}, ctx)
    assert (decision.outcome, decision.decided_by) == ("allow", "hook:timeout_cap")
    assert decision.updated_input == {"command": "make --quiet", "timeout": 5.0}

    @pre_tool_hook(name="broken")
    def broken(call: HookCall) -> None:
        raise RuntimeError("bug in the hook")

    decision = await PermissionPolicy.create(mode="bypass", hooks=[broken]).decide(
        bash, {"command": "make"}, ctx
    )
    assert (decision.outcome, decision.decided_by) == ("deny", "hook:broken")
    assert decision.reason == ("hook broken crashed: RuntimeError: bug in the hook; failing closed")


async def test_a_hook_that_rewrites_into_invalid_input_denies(ctx: ToolContext) -> None:
    @pre_tool_hook(name="sloppy")
    def sloppy(call: HookCall) -> HookAnswer:
        return HookAnswer(updated_input={"cmd": "ls"})

    decision = await PermissionPolicy.create(hooks=[sloppy]).decide(bash, {"command": "ls"}, ctx)
    assert (decision.outcome, decision.decided_by) == ("deny", "hook:sloppy")
    assert "field 'command'" in decision.reason


REDACT = """#!/bin/bash
# A PostToolUse hook: replaces the output, the way Claude Code lets hooks replace MCP output.
python_out=$({python} -c '
import json, sys
call = json.load(sys.stdin)
text = call["tool_response"]["output"].replace("hunter2", "[redacted]")
print(json.dumps({{"hookSpecificOutput": {{"hookEventName": "PostToolUse",
    "updatedMCPToolOutput": text, "additionalContext": "(output checked by redact)"}}}}))
')
echo "$python_out"
"""


async def test_post_tool_hooks_transform_output(tmp_path: Path, ctx: ToolContext) -> None:
    redact = script(tmp_path / "redact.sh", REDACT.format(python=sys.executable))

    @post_tool_hook(name="shout", matcher="bash")
    def shout(call: HookCall) -> HookAnswer:
        assert call.tool_response is not None
        return HookAnswer(updated_output=str(call.tool_response["output"]).upper())

    hooks = [
        CommandHook.from_config(
            HookConfig(event="PostToolUse", command=str(redact), name="redact")
        ),
        shout,
    ]
    executor = ToolExecutor(ToolRegistry.with_builtins(), hooks=hooks)
    outcome = await executor.run("c1", "bash", {"command": "echo password=hunter2"}, ctx)
    assert outcome.output == "PASSWORD=[REDACTED]\n[EXIT CODE 0]\n(OUTPUT CHECKED BY REDACT)"
    assert not outcome.is_error


async def test_a_failing_post_hook_withholds_the_output(ctx: ToolContext) -> None:
    @post_tool_hook(name="redactor")
    def redactor(call: HookCall) -> HookAnswer:
        raise ValueError("regex bug")

    executor = ToolExecutor(ToolRegistry.with_builtins(), hooks=[redactor])
    outcome = await executor.run("c1", "bash", {"command": "echo password=hunter2"}, ctx)
    assert outcome.is_error
    assert "hunter2" not in outcome.output
    assert outcome.output == (
        "[output withheld: hook redactor crashed: ValueError: regex bug; failing closed]"
    )


async def test_a_post_hook_may_block(ctx: ToolContext) -> None:
    @post_tool_hook(name="lint")
    def lint(call: HookCall) -> HookAnswer:
        return HookAnswer(decision="deny", reason="the file no longer parses")

    executor = ToolExecutor(ToolRegistry.with_builtins(), hooks=[lint])
    outcome = await executor.run("c1", "bash", {"command": "echo ok"}, ctx)
    assert outcome.is_error
    assert outcome.output == "ok\n[exit code 0]\n[hook lint: the file no longer parses]"


def test_hook_payload_has_claude_code_field_names() -> None:
    call = HookCall(
        event="PostToolUse",
        tool_name="bash",
        tool_input={"command": "ls"},
        tool_use_id="toolu_1",
        session_id="s1",
        cwd="/w",
        tool_response={"output": "x", "is_error": False},
    )
    payload: dict[str, Any] = call.to_json()
    assert set(payload) >= {
        "hook_event_name",
        "session_id",
        "cwd",
        "permission_mode",
        "tool_name",
        "tool_input",
        "tool_use_id",
        "tool_response",
    }


@pytest.mark.parametrize(
    ("matcher", "tool_name", "expected"),
    [
        ("*", "bash", True),
        ("", "bash", True),
        ("bash", "bash", True),
        ("bash", "bash2", False),
        ("write_file|edit_file", "edit_file", True),
        ("write_file|edit_file", "read_file", False),
        ("mcp__.*", "mcp__github__search", True),
        ("*_file", "read_file", True),
    ],
)
def test_matchers(matcher: str, tool_name: str, expected: bool) -> None:
    hook = CommandHook(name="h", event="PreToolUse", matcher=matcher, command="true")
    assert hook.matches(tool_name) is expected
