"""The permission policy: may this tool call run now, must a user be asked, or is it refused?

`PermissionPolicy.decide` weighs, strongest first:

1. a PreToolUse hook that denies (or crashes, or times out)      -> deny,  `hook:NAME`
2. a `deny` rule                                                 -> deny,  `rule:TOOL(PATTERN)`
3. `plan` mode and a tool that is not read-only                  -> deny,  `mode:plan`
4. a hook or an `ask` rule that asks                             -> ask,   `hook:NAME` / `rule:...`
5. a hook or an `allow` rule that allows                         -> allow, `hook:NAME` / `rule:...`
6. the mode's table (below)                                      ->        `mode:NAME`

    mode           read   edit   exec   other
    default        allow  ask    ask    ask
    accept_edits   allow  allow  ask    ask
    plan           allow  deny   deny   deny
    bypass         allow  allow  allow  allow

So deny beats ask beats allow wherever they come from; `bypass` skips the mode's questions but
not the ones a rule or hook asks explicitly, and `plan` cannot be widened by an allow rule.
Hooks run in order, each seeing the input the previous one rewrote; rules see the final input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from bassi.errors import ToolInputError
from bassi.events import PermissionDecided, PermissionMode, PermissionRequested
from bassi.settings import Settings
from bassi.tools.base import Tool, ToolContext, ToolKind
from bassi.tools.hooks import Hook, HookAnswer, HookCall, command_hooks
from bassi.tools.rules import Rule, escape, parse_rules

Outcome: TypeAlias = Literal["allow", "deny", "ask"]
"""What the policy decides."""

MODE_TABLE: Mapping[PermissionMode, Mapping[ToolKind, Outcome]] = {
    "default": {"read": "allow", "edit": "ask", "exec": "ask", "other": "ask"},
    "accept_edits": {"read": "allow", "edit": "allow", "exec": "ask", "other": "ask"},
    "plan": {"read": "allow", "edit": "deny", "exec": "deny", "other": "deny"},
    "bypass": {"read": "allow", "edit": "allow", "exec": "allow", "other": "allow"},
}
"""What each mode decides for each kind of tool when no hook or rule does."""


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The policy's answer for one call."""

    outcome: Outcome
    """Allow, deny, or ask a user."""
    decided_by: str
    """`mode:NAME`, `rule:TOOL(PATTERN)`, `hook:NAME` or `user:NAME`."""
    reason: str = ""
    """Why; a deny reason is shown to the model."""
    updated_input: dict[str, Any] | None = None
    """The input hooks rewrote the call to, if they did; the call runs with this."""


@dataclass(frozen=True, kw_only=True)
class PermissionPolicy:
    """Mode, rules and PreToolUse hooks of one session."""

    mode: PermissionMode = "default"
    """Approval mode."""
    rules: tuple[Rule, ...] = ()
    """Rules, settings first, then the session's own."""
    hooks: tuple[Hook, ...] = field(default=(), repr=False)
    """Hooks; only the PreToolUse ones take part in decisions."""

    @classmethod
    def create(
        cls,
        *,
        mode: PermissionMode = "default",
        rules: Iterable[str | Rule] = (),
        hooks: Iterable[Hook] = (),
    ) -> PermissionPolicy:
        """A policy from rule strings (parsed here; `ConfigError` names a bad one)."""
        return cls(mode=mode, rules=parse_rules(rules), hooks=tuple(hooks))

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        mode: PermissionMode | None = None,
        session_rules: Iterable[str | Rule] = (),
        hooks: Iterable[Hook] = (),
    ) -> PermissionPolicy:
        """The settings' mode, rules and command hooks, plus a session's rules and Python hooks."""
        return cls.create(
            mode=mode or settings.permission_mode,
            rules=(*settings.rules, *session_rules),
            hooks=(*command_hooks(settings.hooks), *hooks),
        )

    def with_rule(self, rule: str | Rule) -> PermissionPolicy:
        """This policy plus one rule (after "allow always")."""
        return PermissionPolicy(
            mode=self.mode, rules=(*self.rules, *parse_rules([rule])), hooks=self.hooks
        )

    def with_mode(self, mode: PermissionMode) -> PermissionPolicy:
        """This policy under another mode."""
        return PermissionPolicy(mode=mode, rules=self.rules, hooks=self.hooks)

    async def decide(self, tool: Tool, input: Mapping[str, Any], ctx: ToolContext) -> Decision:
        """Allow, deny or ask for one call; never raises for a bad input (the executor will)."""
        current = dict(input)
        rewritten = False
        hook_asks: list[tuple[Hook, HookAnswer]] = []
        hook_allows: list[tuple[Hook, HookAnswer]] = []
        for hook in self._pre_hooks(tool.name):
            answer = await hook.run(self._hook_call(tool, current, ctx))
            by = f"hook:{hook.name}"
            if answer.decision == "deny":
                return Decision(
                    outcome="deny",
                    decided_by=by,
                    reason=answer.reason or f"denied by hook {hook.name}",
                )
            if answer.updated_input is not None:
                try:
                    current = tool.validate(answer.updated_input)
                except ToolInputError as exc:
                    return Decision(
                        outcome="deny",
                        decided_by=by,
                        reason=f"hook {hook.name} rewrote the input into an invalid one: {exc}",
                    )
                rewritten = True
            if answer.decision == "ask":
                hook_asks.append((hook, answer))
            elif answer.decision == "allow":
                hook_allows.append((hook, answer))
        updated = current if rewritten else None

        def decided(outcome: Outcome, by: str, reason: str) -> Decision:
            return Decision(outcome=outcome, decided_by=by, reason=reason, updated_input=updated)

        matching = [r for r in self.rules if r.matches(tool, current, workspace=ctx.workspace)]
        by_effect = {e: [r for r in matching if r.effect == e] for e in ("deny", "ask", "allow")}
        if by_effect["deny"]:
            rule = by_effect["deny"][0]
            return decided("deny", f"rule:{rule.target}", f"rule {rule} forbids this call")
        kind = _kind(tool)
        if self.mode == "plan" and kind != "read":
            return decided(
                "deny",
                "mode:plan",
                f"plan mode allows only read-only tools, and {tool.name} is not",
            )
        if hook_asks:
            hook, answer = hook_asks[0]
            return decided("ask", f"hook:{hook.name}", answer.reason or f"hook {hook.name} asks")
        if by_effect["ask"]:
            rule = by_effect["ask"][0]
            return decided("ask", f"rule:{rule.target}", f"rule {rule} asks before this call")
        if hook_allows:
            hook, answer = hook_allows[0]
            return decided(
                "allow", f"hook:{hook.name}", answer.reason or f"allowed by hook {hook.name}"
            )
        if by_effect["allow"]:
            rule = by_effect["allow"][0]
            return decided("allow", f"rule:{rule.target}", f"rule {rule} allows this call")
        outcome = MODE_TABLE[self.mode][kind]
        verb = {"allow": "allows", "ask": "asks before", "deny": "refuses"}[outcome]
        return decided(outcome, f"mode:{self.mode}", f"{self.mode} mode {verb} {kind} tools")

    def _pre_hooks(self, tool_name: str) -> Sequence[Hook]:
        return [h for h in self.hooks if h.event == "PreToolUse" and h.matches(tool_name)]

    def _hook_call(self, tool: Tool, input: Mapping[str, Any], ctx: ToolContext) -> HookCall:
        return HookCall(
            event="PreToolUse",
            tool_name=tool.name,
            tool_input=input,
            tool_use_id=ctx.tool_call_id,
            session_id=ctx.session_id,
            cwd=str(ctx.workspace),
            permission_mode=self.mode,
        )


def _kind(tool: Tool) -> ToolKind:
    return "read" if tool.read_only else tool.kind


def user_decision(
    outcome: Literal["allow", "deny"], *, user: str = "user", reason: str = ""
) -> Decision:
    """A user's answer to an `ask`, decided by `user:NAME`."""
    return Decision(outcome=outcome, decided_by=f"user:{user}", reason=reason)


def rule_for_always(tool: Tool, input: Mapping[str, Any]) -> str:
    """The rule "allow always" records: this exact argument (`allow:bash(git status)`), or the
    whole tool when rules cannot match its arguments (`allow:NAME`).
    """
    if tool.rule_field is None or input.get(tool.rule_field) is None:
        return f"allow:{tool.name}"
    return f"allow:{tool.name}({escape(str(input[tool.rule_field]))})"


def decision_event(
    decision: Decision,
    *,
    session_id: str,
    run_id: str | None,
    tool_call_id: str,
    tool_name: str,
) -> PermissionDecided:
    """The `permission_decided` event recording an allow or a deny (an ask has none yet)."""
    if decision.outcome == "ask":
        raise ValueError("an ask is recorded by request_event; the answer by decision_event")
    return PermissionDecided(
        session_id=session_id,
        run_id=run_id,
        tool_call_id=tool_call_id,
        tool_name=tool_name,
        decision=decision.outcome,
        decided_by=decision.decided_by,
        reason=decision.reason,
        updated_input=decision.updated_input,
    )


def request_event(
    decision: Decision,
    *,
    session_id: str,
    run_id: str | None,
    tool_call_id: str,
    tool_name: str,
    input: Mapping[str, Any],
) -> PermissionRequested:
    """The `permission_requested` event that parks an asked call until a user answers."""
    if decision.outcome != "ask":
        raise ValueError(f"only an ask is requested, not {decision.outcome!r}")
    return PermissionRequested(
        session_id=session_id,
        run_id=run_id,
        tool_call_id=tool_call_id,
        tool_name=tool_name,
        input=dict(decision.updated_input if decision.updated_input is not None else input),
        reason=f"{decision.reason} ({decision.decided_by})",
    )
