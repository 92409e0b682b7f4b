"""Must show 3: every permission mode x tool kind x rule, including deny precedence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bassi.errors import ConfigError
from bassi.events import PermissionMode
from bassi.settings import Settings
from bassi.tools.base import Tool, ToolContext, ToolKind, tool
from bassi.tools.files import read_file, write_file
from bassi.tools.permissions import (
    Decision,
    PermissionPolicy,
    decision_event,
    request_event,
    rule_for_always,
    user_decision,
)
from bassi.tools.shell import bash


@tool(name="deploy")
def deploy(target: str) -> str:
    """A custom tool of kind `other`."""
    return target


TOOLS: dict[ToolKind, tuple[Tool, dict[str, Any]]] = {
    "read": (read_file, {"path": "hello.txt"}),
    "edit": (write_file, {"path": "src/app.py", "content": "x"}),
    "exec": (bash, {"command": "make test"}),
    "other": (deploy, {"target": "prod"}),
}
KINDS: list[ToolKind] = ["read", "edit", "exec", "other"]
MODES: list[PermissionMode] = ["default", "accept_edits", "plan", "bypass"]

# Cells: outcome (A allow, ? ask, D deny) and who decided (m mode, r rule), for the kinds
# read, edit, exec, other. `{t}` in a rule is the tool under test.
GRID: dict[tuple[str, ...], dict[PermissionMode, str]] = {
    (): {
        "default":      "Am ?m ?m ?m",
        "accept_edits": "Am Am ?m ?m",
        "plan":         "Am Dm Dm Dm",
        "bypass":       "Am Am Am Am",
    },
    ("allow:{t}",): {
        "default":      "Ar Ar Ar Ar",
        "accept_edits": "Ar Ar Ar Ar",
        "plan":         "Ar Dm Dm Dm",
        "bypass":       "Ar Ar Ar Ar",
    },
    ("ask:{t}",): {
        "default":      "?r ?r ?r ?r",
        "accept_edits": "?r ?r ?r ?r",
        "plan":         "?r Dm Dm Dm",
        "bypass":       "?r ?r ?r ?r",
    },
    ("deny:{t}",): {
        "default":      "Dr Dr Dr Dr",
        "accept_edits": "Dr Dr Dr Dr",
        "plan":         "Dr Dr Dr Dr",
        "bypass":       "Dr Dr Dr Dr",
    },
    ("allow:{t}", "deny:{t}"): {
        "default":      "Dr Dr Dr Dr",
        "accept_edits": "Dr Dr Dr Dr",
        "plan":         "Dr Dr Dr Dr",
        "bypass":       "Dr Dr Dr Dr",
    },
    ("allow:{t}", "ask:{t}"): {
        "default":      "?r ?r ?r ?r",
        "accept_edits": "?r ?r ?r ?r",
        "plan":         "?r Dm Dm Dm",
        "bypass":       "?r ?r ?r ?r",
    },
    ("ask:{t}", "deny:{t}"): {
        "default":      "Dr Dr Dr Dr",
        "accept_edits": "Dr Dr Dr Dr",
        "plan":         "Dr Dr Dr Dr",
        "bypass":       "Dr Dr Dr Dr",
    },
    ("deny:some_other_tool", "allow:*"): {
        "default":      "Ar Ar Ar Ar",
        "accept_edits": "Ar Ar Ar Ar",
        "plan":         "Ar Dm Dm Dm",
        "bypass":       "Ar Ar Ar Ar",
    },
}  # fmt: skip

OUTCOMES = {"A": "allow", "?": "ask", "D": "deny"}


def grid_cases() -> list[Any]:
    cases = []
    for rules, by_mode in GRID.items():
        for mode, row in by_mode.items():
            for kind, cell in zip(KINDS, row.split(), strict=True):
                cases.append(pytest.param(mode, kind, rules, cell, id=f"{mode}-{kind}-{rules}"))
    return cases


@pytest.mark.parametrize(("mode", "kind", "rules", "cell"), grid_cases())
async def test_mode_kind_rule_grid(
    ctx: ToolContext, mode: PermissionMode, kind: ToolKind, rules: tuple[str, ...], cell: str
) -> None:
    tool_, input = TOOLS[kind]
    policy = PermissionPolicy.create(mode=mode, rules=[r.format(t=tool_.name) for r in rules])
    decision = await policy.decide(tool_, input, ctx)
    assert decision.outcome == OUTCOMES[cell[0]]
    if cell[1] == "m":
        assert decision.decided_by == f"mode:{mode}"
    else:
        assert decision.decided_by.startswith("rule:")
    assert decision.reason
    assert decision.updated_input is None


def test_the_grid_covers_every_mode_and_kind() -> None:
    for by_mode in GRID.values():
        assert set(by_mode) == set(MODES)
        assert all(len(row.split()) == len(KINDS) for row in by_mode.values())


# Argument patterns: (mode, rules, tool, input, outcome, decided_by)
PATTERN_CASES: list[tuple[PermissionMode, list[str], Tool, dict[str, Any], str, str]] = [
    ("default", ["allow:bash(git status*)"], bash, {"command": "git status --short"},
     "allow", "rule:bash(git status*)"),
    ("default", ["allow:bash(git status*)"], bash, {"command": "git status; rm -rf /"},
     "ask", "mode:default"),
    ("default", ["allow:bash(git status*)"], bash, {"command": "git status && curl x | sh"},
     "ask", "mode:default"),
    ("default", ["allow:bash(git status*)"], bash, {"command": "git status $(rm -rf ~)"},
     "ask", "mode:default"),
    ("default", ["allow:bash(git status*)"], bash, {"command": "git status > ~/.bashrc"},
     "ask", "mode:default"),
    ("default", ["allow:bash(git status*)"], bash, {"command": "git statusx"},
     "allow", "rule:bash(git status*)"),
    ("default", ["allow:bash(npm run test:*)"], bash, {"command": "npm run test -- -k x"},
     "allow", "rule:bash(npm run test:*)"),
    ("default", ["allow:bash(npm run test:*)"], bash, {"command": "npm run test"},
     "allow", "rule:bash(npm run test:*)"),
    ("default", ["allow:bash(npm run test:*)"], bash, {"command": "npm run testx"},
     "ask", "mode:default"),
    ("default", ["allow:bash(npm run test:*)"], bash, {"command": "npm run test; rm x"},
     "ask", "mode:default"),
    ("default", ["allow:bash(npm run test:*)"], bash, {"command": "npm run test\nrm x"},
     "ask", "mode:default"),
    ("bypass", ["deny:bash(rm -rf*)"], bash, {"command": "rm -rf /"},
     "deny", "rule:bash(rm -rf*)"),
    ("bypass", ["deny:bash(rm -rf*)"], bash, {"command": "cd /tmp && rm -rf build"},
     "deny", "rule:bash(rm -rf*)"),
    ("bypass", ["deny:bash(rm -rf*)"], bash, {"command": "echo $(rm -rf x)"},
     "deny", "rule:bash(rm -rf*)"),
    ("bypass", ["deny:bash(rm -rf*)"], bash, {"command": "rm -r build"},
     "allow", "mode:bypass"),
    ("bypass", ["allow:bash(*)", "deny:bash(rm -rf*)"], bash, {"command": "ls; rm -rf /"},
     "deny", "rule:bash(rm -rf*)"),
    ("accept_edits", ["ask:write_file(src/**)"], write_file, {"path": "src/a/b.py", "content": ""},
     "ask", "rule:write_file(src/**)"),
    ("accept_edits", ["ask:write_file(src/**)"], write_file, {"path": "./src/../src/x.py", "content": ""},
     "ask", "rule:write_file(src/**)"),
    ("accept_edits", ["ask:write_file(src/**)"], write_file, {"path": "docs/x.md", "content": ""},
     "allow", "mode:accept_edits"),
    ("default", ["allow:write_file(docs/*.md)"], write_file, {"path": "docs/x.md", "content": ""},
     "allow", "rule:write_file(docs/*.md)"),
    ("default", ["allow:write_file(docs/*.md)"], write_file, {"path": "docs/a/x.md", "content": ""},
     "ask", "mode:default"),
    ("default", ["deny:read_file(**/*.pem)"], read_file, {"path": "keys/deep/server.pem"},
     "deny", "rule:read_file(**/*.pem)"),
    ("default", ["deny:read_file(secrets)"], read_file, {"path": "secrets/token.txt"},
     "deny", "rule:read_file(secrets)"),
    ("default", ["allow:deploy(prod)"], deploy, {"target": "prod"},
     "ask", "mode:default"),  # deploy names no rule field: only tool-wide rules match it
]  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "rules", "tool_", "input", "outcome", "decided_by"),
    PATTERN_CASES,
    ids=[f"{c[0]}-{c[1]}-{next(iter(c[3].values()))}" for c in PATTERN_CASES],
)
async def test_argument_patterns(
    ctx: ToolContext,
    mode: PermissionMode,
    rules: list[str],
    tool_: Tool,
    input: dict[str, Any],
    outcome: str,
    decided_by: str,
) -> None:
    decision = await PermissionPolicy.create(mode=mode, rules=rules).decide(tool_, input, ctx)
    assert (decision.outcome, decision.decided_by) == (outcome, decided_by)


async def test_path_rules_see_through_symlinks(ctx: ToolContext, workspace: Path) -> None:
    (workspace / "secrets").mkdir()
    (workspace / "innocent").symlink_to(workspace / "secrets", target_is_directory=True)
    call = {"path": "innocent/token.txt", "content": "x"}
    deny = PermissionPolicy.create(rules=["deny:write_file(secrets/**)"])
    assert (await deny.decide(write_file, call, ctx)).outcome == "deny"
    allow = PermissionPolicy.create(rules=["allow:write_file(innocent/**)"])
    assert (await allow.decide(write_file, call, ctx)).outcome == "ask"


@pytest.mark.parametrize(
    "text",
    ["bash(ls)", "permit:bash", "allow:", "allow:bash()", "allow:bash(ls", "allow bash"],
)
def test_bad_rules_are_refused_with_a_message(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid permission rule"):
        PermissionPolicy.create(rules=[text])


@pytest.mark.parametrize(
    ("tool_", "input", "rule"),
    [
        (bash, {"command": "git status"}, "allow:bash(git status)"),
        (bash, {"command": "ls *.py"}, "allow:bash(ls \\*.py)"),
        (write_file, {"path": "src/a.py", "content": "x"}, "allow:write_file(src/a.py)"),
        (write_file, {"path": "./src/a.py", "content": "x"}, "allow:write_file(./src/a.py)"),
        (deploy, {"target": "prod"}, "allow:deploy"),
    ],
)
async def test_allow_always_records_a_rule_for_exactly_this_call(
    ctx: ToolContext, tool_: Tool, input: dict[str, Any], rule: str
) -> None:
    assert rule_for_always(tool_, input) == rule
    policy = PermissionPolicy.create().with_rule(rule)
    assert (await policy.decide(tool_, input, ctx)).outcome == "allow"


async def test_allow_always_for_a_command_allows_nothing_else(ctx: ToolContext) -> None:
    policy = PermissionPolicy.create().with_rule(rule_for_always(bash, {"command": "ls *.py"}))
    assert (await policy.decide(bash, {"command": "ls *.py"}, ctx)).outcome == "allow"
    assert (await policy.decide(bash, {"command": "ls secret.py"}, ctx)).outcome == "ask"
    assert (await policy.decide(bash, {"command": "ls *.py; rm x"}, ctx)).outcome == "ask"


async def test_policy_from_settings_joins_settings_and_session_rules(ctx: ToolContext) -> None:
    settings = Settings(permission_mode="accept_edits", rules=("deny:bash(rm -rf*)",))
    policy = PermissionPolicy.from_settings(settings, session_rules=["allow:bash(make*)"])
    assert policy.mode == "accept_edits"
    assert [str(r) for r in policy.rules] == ["deny:bash(rm -rf*)", "allow:bash(make*)"]
    assert (await policy.decide(bash, {"command": "make test"}, ctx)).outcome == "allow"
    assert (await policy.decide(bash, {"command": "rm -rf /"}, ctx)).outcome == "deny"


def test_every_decision_becomes_an_event() -> None:
    ids = {"session_id": "s1", "run_id": "r1", "tool_call_id": "c1", "tool_name": "bash"}
    allowed = Decision(outcome="allow", decided_by="mode:bypass", reason="bypass mode allows")
    event = decision_event(allowed, **ids)
    assert (event.decision, event.decided_by, event.reason) == (
        "allow",
        "mode:bypass",
        "bypass mode allows",
    )
    asked = Decision(outcome="ask", decided_by="rule:bash(make*)", reason="rule asks")
    with pytest.raises(ValueError):
        decision_event(asked, **ids)
    request = request_event(asked, **ids, input={"command": "make"})
    assert request.input == {"command": "make"}
    assert "rule:bash(make*)" in request.reason
    answer = decision_event(user_decision("deny", user="ana", reason="not today"), **ids)
    assert (answer.decision, answer.decided_by, answer.reason) == ("deny", "user:ana", "not today")


async def test_rules_and_hooks_load_from_the_workspace_settings_file(
    tmp_path: Path, workspace: Path, ctx: ToolContext
) -> None:
    (workspace / ".bassi").mkdir()
    (workspace / ".bassi" / "settings.toml").write_text(
        'permission_mode = "accept_edits"\n'
        'rules = ["deny:bash(rm -rf*)", "allow:bash(make*)"]\n'
        "[[hooks]]\n"
        'event = "PreToolUse"\n'
        'command = "exit 0"\n'
        'name = "noop"\n'
    )
    settings = Settings.load(
        environ={"BASSI_TRUST_WORKSPACE": "1"},
        workspace=workspace,
        overrides={"home": tmp_path / "home"},
    )
    policy = PermissionPolicy.from_settings(settings)
    assert [h.name for h in policy.hooks] == ["noop"]
    assert (await policy.decide(bash, {"command": "make all"}, ctx)).outcome == "allow"
    assert (await policy.decide(bash, {"command": "rm -rf ."}, ctx)).outcome == "deny"
    assert (await policy.decide(write_file, {"path": "a", "content": ""}, ctx)).outcome == "allow"
