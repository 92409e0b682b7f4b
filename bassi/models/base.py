"""The model port: a request, the provider-neutral stream events, and the `Model` protocol.

A model call is `model.stream(request)`: an async iterator of `ModelEvent`s that always ends with
one `MessageEnd` on success. Every failure (HTTP status, dropped connection, malformed or
truncated stream) is raised as `ModelError`, never as a raw SDK or transport exception. Closing
the iterator early (`aclose()`, or cancelling the task that iterates it) closes the provider
connection at once.

Stop reasons are Anthropic's vocabulary for every provider: `end_turn`, `tool_use`,
`max_tokens`, `stop_sequence`, `refusal`, `pause_turn`, `model_context_window_exceeded`; a
value bassi does not know is passed through verbatim.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

from bassi.messages import ContentBlock, Message, ToolSpec, Usage

BlockType = Literal["text", "thinking", "tool_use"]
Channel = Literal["text", "thinking", "tool_input"]


@dataclass(frozen=True)
class ModelRequest:
    """Everything one model call needs, provider-neutral."""

    system: str
    """System prompt; empty means none."""
    messages: Sequence[Message]
    """The conversation so far, oldest first; the last message is the user's turn."""
    tools: Sequence[ToolSpec] = ()
    """Tools the model may call."""
    max_tokens: int = 4096
    """Largest number of tokens to generate."""
    thinking_budget: int | None = None
    """Tokens the model may spend thinking (Anthropic extended thinking); None disables it."""


@dataclass(frozen=True, slots=True)
class MessageStart:
    """The provider began an assistant message."""

    message_id: str
    model: str
    provider: str


@dataclass(frozen=True, slots=True)
class BlockStart:
    """Content block `index` began; indexes count 0, 1, 2, ... in the order of `MessageEnd.content`."""

    index: int
    block_type: BlockType
    tool_call_id: str | None = None
    tool_name: str | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    """A streamed piece of block `index`; a text or thinking block's deltas join to its text."""

    index: int
    channel: Channel
    text: str


@dataclass(frozen=True, slots=True)
class BlockStop:
    """Content block `index` is complete."""

    index: int


@dataclass(frozen=True, slots=True)
class MessageEnd:
    """The whole assistant message; always the last event of a successful stream."""

    message_id: str
    content: tuple[ContentBlock, ...]
    stop_reason: str
    usage: Usage
    model: str
    provider: str
    request_id: str | None = None


ModelEvent: TypeAlias = MessageStart | BlockStart | Delta | BlockStop | MessageEnd


class Model(Protocol):
    """A language model behind one provider; `f"{provider}:{name}"` is its spec."""

    provider: str
    name: str

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Stream one assistant message; raises `ModelError` on any failure.

        A consumer that stops early must close the iterator (`aclose()`, or use `open_stream`)
        so the connection closes now rather than when the generator is garbage-collected.
        """
        ...


@asynccontextmanager
async def open_stream(
    model: Model, request: ModelRequest
) -> AsyncIterator[AsyncIterator[ModelEvent]]:
    """`model.stream(request)`, closed (connection included) when the block exits, however it exits."""
    events = model.stream(request)
    try:
        yield events
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
