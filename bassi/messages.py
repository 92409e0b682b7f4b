"""Provider-neutral conversation content: text, thinking, tool use, tool result, usage."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TextBlock(_Frozen):
    """Plain text written by the user or the model."""

    type: Literal["text"] = "text"
    text: str
    """The text."""


class ThinkingBlock(_Frozen):
    """The model's reasoning; the signature must be sent back to Anthropic unchanged."""

    type: Literal["thinking"] = "thinking"
    thinking: str
    """The reasoning text."""
    signature: str | None = None
    """Provider signature proving the block is unaltered (Anthropic)."""


class ToolUseBlock(_Frozen):
    """The model asks to call a tool."""

    type: Literal["tool_use"] = "tool_use"
    id: str
    """The tool call id the result must refer to."""
    name: str
    """Tool name."""
    input: dict[str, Any]
    """Arguments, already parsed from JSON."""


class ToolResultBlock(_Frozen):
    """What a tool call returned (or why it did not)."""

    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    """Id of the ToolUseBlock this answers."""
    content: str
    """Output text shown to the model."""
    is_error: bool = False
    """True when the call failed, was denied or was interrupted."""


ContentBlock = Annotated[
    TextBlock | ThinkingBlock | ToolUseBlock | ToolResultBlock, Field(discriminator="type")
]


class Message(_Frozen):
    """One turn of the conversation."""

    role: Literal["user", "assistant"]
    """Who speaks: the user side (prompts, tool results) or the model."""
    content: tuple[ContentBlock, ...]
    """The blocks, in order."""

    @property
    def text(self) -> str:
        """The concatenated text blocks."""
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    @property
    def tool_uses(self) -> tuple[ToolUseBlock, ...]:
        """The tool calls asked for in this message."""
        return tuple(b for b in self.content if isinstance(b, ToolUseBlock))


class Usage(_Frozen):
    """Token counts of one or more model calls."""

    input_tokens: int = 0
    """Uncached prompt tokens."""
    output_tokens: int = 0
    """Generated tokens."""
    cache_read_tokens: int = 0
    """Prompt tokens served from the provider's cache."""
    cache_write_tokens: int = 0
    """Prompt tokens written to the provider's cache."""

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )

    @property
    def total_tokens(self) -> int:
        """All tokens counted, cached or not."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )


class ToolSpec(_Frozen):
    """What a model is told about a tool: name, description and JSON schema of its input."""

    name: str
    """Tool name the model calls."""
    description: str
    """What the tool does, for the model."""
    input_schema: dict[str, Any]
    """JSON schema of the arguments (an object schema)."""
