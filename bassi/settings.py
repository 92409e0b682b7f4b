"""bassi's settings, and the only place that reads `BASSI_*` variables.

Sources, lowest precedence first: `$BASSI_HOME/config.toml` (default `~/.bassi`), the
workspace's `.bassi/settings.toml`, `BASSI_*` environment variables, then explicit overrides
(command-line flags). Later sources replace earlier values, except `rules` and `hooks`, which
the two files combine (home first).

A workspace file comes with the code it sits in, so it is not trusted by default: it may add
deny and ask rules and tighten settings, but its `allow:` rules, `permission_mode = "bypass"`
or `"accept_edits"`, and command `hooks` are ignored (with a warning) unless the home config says `trust_workspace_settings = true` or
`BASSI_TRUST_WORKSPACE=1` is set. The workspace file cannot trust itself.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bassi.errors import ConfigError

log = logging.getLogger(__name__)

_COMBINED = ("rules", "hooks")
"""Settings the home and workspace files add up instead of replacing."""
_NEEDS_TRUST = ("hooks",)
"""Workspace-file settings that only apply when the workspace is trusted."""


class HookConfig(BaseModel):
    """A command hook: an executable that gets the tool call as JSON on stdin."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: Literal["PreToolUse", "PostToolUse"]
    """When it runs: before the tool (may allow, deny, ask, rewrite) or after (may rewrite output)."""
    command: str
    """Shell command to run."""
    matcher: str = "*"
    """Tool name pattern (`*`, `bash`, `write_file|edit_file`)."""
    timeout: float = 30.0
    """Seconds before the hook counts as failed (and so denies)."""
    name: str | None = None
    """Name used in `decided_by` (`hook:NAME`); defaults to the command."""


class Settings(BaseModel):
    """Everything configurable, frozen once loaded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path = Field(default_factory=lambda: Path.home() / ".bassi")
    """bassi's own directory: config, default database, history."""
    database: str | None = Field(default=None, min_length=1)
    """Database path or URL; None means `HOME/bassi.db`."""
    default_model: str | None = None
    """`provider:name` for new sessions; None picks a configured provider or `scripted`."""
    host: str = "127.0.0.1"
    """Address `bassi serve` binds."""
    port: int = Field(default=8765, ge=0, le=65535)
    """Port `bassi serve` binds (0: any free one)."""
    token: str | None = None
    """When set, every API call and stream needs it."""
    workspace: Path | None = None
    """Directory tools work in; None means the current directory."""
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    """SQLite durability: FULL survives power loss; NORMAL may lose the last commits on power loss."""
    resume_interrupted_runs: Literal["continue", "mark"] = "continue"
    """After a crash: carry interrupted runs on, or mark them `run_interrupted`."""
    permission_mode: Literal["default", "accept_edits", "plan", "bypass"] = "default"
    """Approval mode of new sessions."""
    rules: tuple[str, ...] = ()
    """Permission rules such as `allow:bash(git status*)`, `deny:bash(rm -rf*)`."""
    hooks: tuple[HookConfig, ...] = ()
    """Command hooks."""
    max_history: int = Field(default=10_000, ge=0)
    """Events the store keeps in memory; older ones are read from the log."""
    max_prompt_bytes: int = Field(default=1_000_000, gt=0)
    """Largest prompt accepted."""
    tool_output_cap: int = Field(default=100_000, gt=0)
    """Tool output above this many bytes is truncated with a marker."""
    max_turns: int = Field(default=50, gt=0)
    """Model calls one run may make."""
    trust_workspace_settings: bool = False
    """Let a workspace's `.bassi/settings.toml` set `bypass` and command hooks (home config only)."""

    @property
    def database_url(self) -> str:
        """SQLAlchemy async URL of the database."""
        return database_url(self.database or str(self.home / "bassi.db"))

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        workspace: Path | None = None,
    ) -> Settings:
        """Merge config files, environment and overrides (None values are ignored)."""
        env = os.environ if environ is None else environ
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        home = Path(given.get("home") or env.get("BASSI_HOME") or Path.home() / ".bassi")
        data: dict[str, Any] = dict(_read_toml(home / "config.toml"))
        ws = given.get("workspace") or env.get("BASSI_WORKSPACE") or workspace
        if ws is not None:
            path = Path(ws) / ".bassi" / "settings.toml"
            trusted = (
                data.get("trust_workspace_settings") is True
                or given.get("trust_workspace_settings") is True
                or _truthy(env.get("BASSI_TRUST_WORKSPACE", ""))
            )
            _merge_workspace(data, _read_toml(path), path=path, trusted=trusted)
        data.update(_from_env(env))
        data.update(given)
        data["home"] = home
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "settings"
            raise ConfigError(f"invalid setting {where}: {first['msg']}") from exc


RULE_SYNTAX = re.compile(r"^\s*(allow|ask|deny)\s*:\s*([^()\s]+)\s*(?:\((.*)\))?\s*$", re.DOTALL)
"""A permission rule, `EFFECT:TOOL` or `EFFECT:TOOL(PATTERN)`: (effect, tool, pattern). Here,
below the tools, because the settings must tell an allow rule however it is spelled."""


_ENV_FIELDS = {
    "BASSI_DB": "database",
    "BASSI_DATABASE": "database",
    "BASSI_MODEL": "default_model",
    "BASSI_HOST": "host",
    "BASSI_PORT": "port",
    "BASSI_TOKEN": "token",
    "BASSI_WORKSPACE": "workspace",
    "BASSI_SQLITE_SYNCHRONOUS": "sqlite_synchronous",
    "BASSI_RESUME_INTERRUPTED_RUNS": "resume_interrupted_runs",
    "BASSI_PERMISSION_MODE": "permission_mode",
    "BASSI_MAX_HISTORY": "max_history",
    "BASSI_MAX_TURNS": "max_turns",
}


def _allows(rule: object) -> bool:
    """Whether a rule is an allow rule, as the permission policy reads it (`allow : bash(*)`
    included); one that does not parse is left for that policy to refuse."""
    found = RULE_SYNTAX.match(rule) if isinstance(rule, str) else None
    return found is not None and found.group(1) == "allow"


def _merge_workspace(
    data: dict[str, Any], workspace: dict[str, Any], *, path: Path, trusted: bool
) -> None:
    """Lay a workspace file over the home config; an untrusted one cannot loosen security."""
    workspace = dict(workspace)
    if "trust_workspace_settings" in workspace:
        del workspace["trust_workspace_settings"]
        log.warning("%s: ignored trust_workspace_settings (only the home config can set it)", path)
    if not trusted:
        ignored = [key for key in _NEEDS_TRUST if workspace.get(key)]
        if workspace.get("permission_mode") in ("bypass", "accept_edits"):
            ignored.insert(0, f"permission_mode = {workspace.pop('permission_mode')}")
        rules = workspace.get("rules")
        if isinstance(rules, list):
            allows = [r for r in rules if _allows(r)]
            if allows:
                ignored.append(f"allow rules {allows}")
                workspace["rules"] = [r for r in rules if r not in allows]
        for key in _NEEDS_TRUST:
            workspace.pop(key, None)
        if ignored:
            log.warning(
                "%s: ignored %s (untrusted workspace; set trust_workspace_settings = true in "
                "the home config or BASSI_TRUST_WORKSPACE=1 to allow)",
                path,
                " and ".join(ignored),
            )
    for key in _COMBINED:
        if isinstance(workspace.get(key), list) and isinstance(data.get(key, []), list):
            workspace[key] = [*data.get(key, []), *workspace[key]]
    data.update(workspace)


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    return {name: env[var] for var, name in _ENV_FIELDS.items() if env.get(var)}


def _read_toml(path: Path) -> dict[str, Any]:
    """The settings in a TOML file, {} when there is none; a file that is there but cannot be
    read (a directory, unreadable, not UTF-8, not TOML) is a ConfigError, never ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"cannot read {path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} "
            f"at offset {exc.start})"
        ) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    known = set(Settings.model_fields) - {"home"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{path}: unknown setting {sorted(unknown)[0]!r}")
    return data


def database_url(path_or_url: str) -> str:
    """An async SQLAlchemy URL from a bare path (SQLite file) or a URL."""
    value = path_or_url.strip()
    if not value:
        raise ConfigError("database path or URL is empty")
    if "://" not in value:
        if value == ":memory:":
            return "sqlite+aiosqlite:///:memory:"
        return "sqlite+aiosqlite:///" + str(Path(value).expanduser().resolve())
    scheme, _, rest = value.partition("://")
    match scheme:
        case "sqlite" | "sqlite+aiosqlite":
            return "sqlite+aiosqlite://" + rest
        case "postgres" | "postgresql" | "postgresql+asyncpg":
            return "postgresql+asyncpg://" + rest
    raise ConfigError(
        f"unsupported database URL scheme {scheme!r} (use a path, sqlite:// or postgresql://)"
    )
