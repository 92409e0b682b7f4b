"""Permission rules: `EFFECT:TOOL` or `EFFECT:TOOL(PATTERN)`, e.g. `allow:bash(git status*)`,
`deny:bash(rm -rf*)`, `ask:write_file(src/**)`, `allow:read_file`.

EFFECT is `allow`, `ask` or `deny`. TOOL is a tool name (`*` matches any). PATTERN matches the
tool's `rule_field` (`command` for bash, `path` for the file tools); a tool without one is only
matched by rules without a pattern. In a pattern `\\` makes the next character literal.

Command patterns (bash): `*` matches any text; a trailing `:*` (Claude Code's spelling) means
"this, or this, a space and anything", so `npm run test:*` does not match `npm run testx`.
Restrictive rules (`deny`, `ask`) match when the whole command or any part of it (split at
`;`, `&&`, `||`, `|`, `&`, newlines, `$(`, backquotes, parentheses) matches, so
`deny:bash(rm -rf*)` also catches `cd x && rm -rf /`. In an `allow` rule `*` never crosses
those operators nor a redirection, so `allow:bash(git status*)` does not allow
`git status; rm -rf /`. Deny rules on shell commands are a safety net, not a sandbox: `bash -c`
or a script can hide anything; allow rules are the reliable way to grant.

Path patterns (file tools) are relative to the workspace (or absolute when they start with
`/`): `*` matches within one path segment, `**` across segments, and a pattern also covers
everything under the directory it names (`src` = `src/**`). Restrictive rules match when the
path as written or as resolved through symlinks matches; `allow` rules need both to.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast

from bassi.errors import ConfigError
from bassi.settings import RULE_SYNTAX
from bassi.tools.base import RuleStyle, Tool

Effect: TypeAlias = Literal["allow", "ask", "deny"]
"""What a matching rule decides."""

_OPERATORS = re.compile(r"&&|\|\||[;&|\n\r`]|\$\(|[()]")
_SAFE_CHAR = r"(?:[^;&|\n\r`<>$()]|\$(?!\())"


@dataclass(frozen=True)
class Rule:
    """One parsed permission rule."""

    effect: Effect
    """What it decides when it matches."""
    tool: str
    """Tool name, or a glob over tool names."""
    pattern: str | None = None
    """Argument pattern, or None for every call of the tool."""

    @classmethod
    def parse(cls, text: str) -> Rule:
        """Parse `EFFECT:TOOL` or `EFFECT:TOOL(PATTERN)`; `ConfigError` says what is wrong."""
        found = RULE_SYNTAX.match(text)
        if found is None:
            raise ConfigError(
                f"invalid permission rule {text!r}: expected EFFECT:TOOL or EFFECT:TOOL(PATTERN)"
                " with EFFECT allow, ask or deny, e.g. allow:bash(git status*)"
            )
        effect, tool, pattern = found.groups()
        if pattern is not None and pattern.strip() == "":
            raise ConfigError(f"invalid permission rule {text!r}: empty pattern")
        return cls(effect=cast(Effect, effect), tool=tool, pattern=pattern)

    @property
    def target(self) -> str:
        """The rule without its effect, as shown in `decided_by`: `bash(git status*)`."""
        return self.tool if self.pattern is None else f"{self.tool}({self.pattern})"

    def __str__(self) -> str:
        return f"{self.effect}:{self.target}"

    def matches(self, tool: Tool, input: Mapping[str, Any], *, workspace: Path) -> bool:
        """True when this rule applies to a call of `tool` with `input`."""
        if not fnmatch.fnmatchcase(tool.name, self.tool):
            return False
        if self.pattern is None:
            return True
        if tool.rule_field is None:
            return False
        value = _field_value(tool, input)
        if value is None:
            return False
        if tool.rule_style == "path":
            return self._matches_path(value, workspace)
        return self._matches_command(value)

    def _matches_command(self, command: str) -> bool:
        assert self.pattern is not None
        if self.effect == "allow":
            strict = _compile(self.pattern, "text", star=_SAFE_CHAR + "*")
            return strict.fullmatch(command) is not None
        regex = _compile(self.pattern, "text", star=".*")
        parts = [command.strip(), *(p.strip() for p in _OPERATORS.split(command))]
        return any(regex.fullmatch(part) for part in parts if part)

    def _matches_path(self, raw: str, workspace: Path) -> bool:
        assert self.pattern is not None
        regex = _compile(posixpath.normpath(self.pattern), "path", star="[^/]*")
        absolute = self.pattern.startswith("/")
        views = [_shown(view, workspace, absolute=absolute) for view in _path_views(raw, workspace)]
        hits = [view is not None and regex.fullmatch(view) is not None for view in views]
        return all(hits) if self.effect == "allow" else any(hits)


def parse_rules(texts: Iterable[str | Rule]) -> tuple[Rule, ...]:
    """Parse many rules (an iterable of strings or `Rule`s)."""
    return tuple(t if isinstance(t, Rule) else Rule.parse(t) for t in texts)


def escape(text: str) -> str:
    """`text` as a pattern that matches only itself."""
    return re.sub(r"([\\*])", r"\\\1", text)


def _field_value(tool: Tool, input: Mapping[str, Any]) -> str | None:
    assert tool.rule_field is not None
    value = input.get(tool.rule_field)
    if value is None:
        info = tool.input_model.model_fields.get(tool.rule_field)
        value = None if info is None or info.is_required() else info.default
    return None if value is None else str(value)


def _compile(pattern: str, style: RuleStyle, *, star: str) -> re.Pattern[str]:
    out: list[str] = []
    if style == "text" and pattern.endswith(":*") and not pattern.endswith("\\:*"):
        pattern, suffix = pattern[:-2], rf"(?:[ \t]{star})?"
    else:
        suffix = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif style == "path" and pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif style == "path" and pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append(star)
            i += 1
        else:
            out.append(re.escape(ch))
            i += 1
    body = "".join(out) + suffix
    if style == "path":
        body = body.rstrip("/") + "(?:/.*)?"
    return re.compile(body, re.DOTALL)


def _path_views(raw: str, workspace: Path) -> list[Path]:
    """The path as written (normalised) and as resolved through symlinks."""
    root = workspace.resolve()
    joined = root / raw
    views = [Path(os.path.normpath(joined))]
    with contextlib.suppress(OSError, ValueError):
        views.append(joined.resolve())
    return views


def _shown(path: Path, workspace: Path, *, absolute: bool) -> str | None:
    if absolute:
        return path.as_posix()
    try:
        return path.relative_to(workspace.resolve()).as_posix()
    except ValueError:
        return None
