"""What a tool is: `Tool`, the `@tool` decorator, the context a call runs in, and its result.

A tool's input is a pydantic model: either the one its handler takes, or one built from the
handler's signature. The model gives the JSON schema the model provider sees and validates the
arguments before anything runs, naming the offending field.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from bassi.errors import ToolInputError
from bassi.events import PermissionMode
from bassi.messages import ToolSpec

ToolKind: TypeAlias = Literal["read", "edit", "exec", "other"]
"""What a tool does, for the permission modes: reads, edits files, executes commands, or else."""

RuleStyle: TypeAlias = Literal["text", "path"]
"""How a rule's argument pattern matches: a command line, or a workspace path (`src/**`)."""

DEFAULT_TIMEOUT = 120.0
"""Seconds a tool may run unless it says otherwise."""

DEFAULT_OUTPUT_CAP = 100_000
"""Bytes of output shown to the model unless the settings say otherwise."""


@dataclass(frozen=True, kw_only=True)
class ToolContext:
    """Where and for whom one tool call runs."""

    workspace: Path
    """Directory the call is confined to."""
    session_id: str = ""
    """The session making the call."""
    run_id: str | None = None
    """The run making the call."""
    tool_call_id: str = ""
    """Id of the call (the model's tool_use id)."""
    permission_mode: PermissionMode = "default"
    """Approval mode in force (told to hooks)."""
    output_cap: int = DEFAULT_OUTPUT_CAP
    """Bytes of output the model will see; tools that stream output stop keeping it here."""


@dataclass(frozen=True, kw_only=True)
class ToolResult:
    """What a handler returns when plain text is not enough."""

    output: str
    """Text shown to the model."""
    is_error: bool = False
    """True when the tool ran but reports a failure (a non-zero exit code, say)."""
    truncated: bool = False
    """True when the tool already cut its output (bash caps while it reads)."""
    original_size: int | None = None
    """Size in bytes before the tool cut it."""


Handler: TypeAlias = Callable[..., Any]
"""A tool function: sync or async, returning `str`, `ToolResult` or JSON-ready data."""


@dataclass(frozen=True, kw_only=True)
class Tool:
    """A name, a description, an input model and a handler, plus how to run and guard it."""

    name: str
    """Name the model calls."""
    description: str
    """What the tool does, for the model."""
    input_model: type[BaseModel]
    """Arguments: validates input and gives the JSON schema."""
    handler: Handler
    """The function; called as `handler(**args)`, `handler(model)`, with `ctx=` if it wants it."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds before the call is stopped and fails with `ToolTimeout`."""
    read_only: bool = False
    """True when the tool changes nothing (allowed in `default` and `plan` modes)."""
    idempotent: bool = False
    """True when running it twice does no harm (recovery may re-run it)."""
    kind: ToolKind = "other"
    """Category for the permission modes (`edit` tools are allowed in `accept_edits`)."""
    output_cap: int | None = None
    """Bytes of output kept; None uses the executor's cap."""
    rule_field: str | None = None
    """Input field that rules like `bash(git status*)` match; None: only tool-wide rules apply."""
    rule_style: RuleStyle = "text"
    """How rule patterns match `rule_field`."""
    takes_model: bool = False
    """True when the handler takes the input model itself rather than its fields."""
    context_param: str | None = None
    """Name of the handler's `ToolContext` parameter, if it has one."""
    is_async: bool = False
    """True when the handler is a coroutine function."""

    def __post_init__(self) -> None:
        if (self.kind == "read") != self.read_only:
            raise ValueError(f"tool {self.name}: kind 'read' goes with read_only=True, and only it")

    @functools.cached_property
    def input_schema(self) -> dict[str, Any]:
        """JSON schema of the arguments (built once: every model turn sends it)."""
        return self.input_model.model_json_schema()

    def spec(self) -> ToolSpec:
        """What a model is told about this tool."""
        return ToolSpec(
            name=self.name, description=self.description, input_schema=self.input_schema
        )

    def parse(self, data: Any) -> BaseModel:
        """Validate arguments; `ToolInputError` names the first offending field."""
        if not isinstance(data, Mapping):
            raise ToolInputError(
                f"{self.name}: input must be a JSON object, not {type(data).__name__}"
            )
        try:
            return self.input_model.model_validate(dict(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or None
            message = first["msg"]
            if where is None:
                raise ToolInputError(f"{self.name}: {message}") from exc
            raise ToolInputError(f"{self.name}: field {where!r}: {message}", field=where) from exc

    def validate(self, data: Any) -> dict[str, Any]:
        """Validated arguments as JSON-ready data (only the fields given, coerced)."""
        return self.parse(data).model_dump(mode="json", exclude_unset=True)

    def invoke(self, args: BaseModel, ctx: ToolContext) -> Any:
        """Call the handler with validated arguments (a coroutine when the handler is async)."""
        extra = {self.context_param: ctx} if self.context_param else {}
        if self.takes_model:
            return self.handler(args, **extra)
        values = {name: getattr(args, name) for name in type(args).model_fields}
        return self.handler(**values, **extra)


_AsyncOrSync: TypeAlias = Callable[..., Awaitable[Any]] | Callable[..., Any]


@overload
def tool(fn: _AsyncOrSync, /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    read_only: bool = False,
    idempotent: bool = False,
    kind: ToolKind | None = None,
    output_cap: int | None = None,
    rule_field: str | None = None,
    rule_style: RuleStyle = "text",
) -> Callable[[_AsyncOrSync], Tool]: ...


def tool(
    fn: _AsyncOrSync | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    read_only: bool = False,
    idempotent: bool = False,
    kind: ToolKind | None = None,
    output_cap: int | None = None,
    rule_field: str | None = None,
    rule_style: RuleStyle = "text",
) -> Tool | Callable[[_AsyncOrSync], Tool]:
    """Make a `Tool` of a function; its schema comes from a pydantic-model parameter or the
    signature, its description from the docstring. `kind` defaults to `read` for read-only tools.
    """

    def build(func: _AsyncOrSync) -> Tool:
        input_model, takes_model, context_param = _input_model(func)
        return Tool(
            name=name or func.__name__,
            description=description or inspect.getdoc(func) or "",
            input_model=input_model,
            handler=func,
            timeout=timeout,
            read_only=read_only,
            idempotent=idempotent,
            kind=kind or ("read" if read_only else "other"),
            output_cap=output_cap,
            rule_field=rule_field,
            rule_style=rule_style,
            takes_model=takes_model,
            context_param=context_param,
            is_async=inspect.iscoroutinefunction(func),
        )

    return build if fn is None else build(fn)


def _input_model(func: Callable[..., Any]) -> tuple[type[BaseModel], bool, str | None]:
    """The input model, whether the handler takes it whole, and its context parameter."""
    hints = typing.get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for param in inspect.signature(func).parameters.values():
        annotation = hints.get(param.name, Any)
        if annotation is ToolContext:
            context_param = param.name
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {func.__name__}: *args and **kwargs cannot become a schema")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, default)
    if len(fields) == 1:
        (only,) = fields.values()
        if isinstance(only[0], type) and issubclass(only[0], BaseModel):
            return only[0], True, context_param
    model = create_model(
        _model_name(func.__name__),
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )
    return model, False, context_param


def _model_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Input"
