"""The tools a session may call, by name."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from bassi.errors import ToolNotFound
from bassi.messages import ToolSpec
from bassi.tools.base import Tool
from bassi.tools.files import edit_file, read_file, write_file
from bassi.tools.search import grep, list_dir
from bassi.tools.shell import bash


def builtin_tools() -> tuple[Tool, ...]:
    """bassi's own tools: bash, read_file, write_file, edit_file, list_dir, grep."""
    return (bash, read_file, write_file, edit_file, list_dir, grep)


class ToolRegistry:
    """Tools by name; validates arguments before anything runs."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            self.register(item)

    @classmethod
    def with_builtins(cls, *extra: Tool) -> ToolRegistry:
        """A registry of the built-in tools plus `extra`."""
        return cls((*builtin_tools(), *extra))

    def register(self, tool: Tool, *, replace: bool = False) -> Tool:
        """Add a tool; a second tool with the same name is refused unless `replace`."""
        if tool.name in self._tools and not replace:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool:
        """The tool called `name`; `ToolNotFound` when there is none."""
        try:
            return self._tools[name]
        except KeyError:
            known = ", ".join(sorted(self._tools)) or "none"
            raise ToolNotFound(f"no tool named {name!r} (available: {known})") from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._tools)

    def specs(self, names: Iterable[str] | None = None) -> list[ToolSpec]:
        """What the model is told, for all tools or the named ones."""
        chosen = self._tools.values() if names is None else [self.get(n) for n in names]
        return [t.spec() for t in chosen]

    def validate(self, name: str, input: Mapping[str, Any]) -> dict[str, Any]:
        """Validated arguments for the named tool; `ToolInputError` names the field."""
        return self.get(name).validate(input)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)
