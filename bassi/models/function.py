"""`FunctionModel`: a model backed by a Python function, for tests.

The function gets the `ModelRequest` and returns (or awaits to) an answer:

- a `str` (one text block), a content block, a sequence of content blocks, or a `Message`:
  played back as a complete, well-formed stream (`stop_reason` is `tool_use` when the answer
  calls a tool, else `end_turn`);
- an iterable or async iterable (a generator, say) of `ModelEvent`s: passed through verbatim,
  so a test can produce any stream, a broken one included, or raise `ModelError` mid-way.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TypeAlias, cast

from bassi.messages import (
    ContentBlock,
    Message,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from bassi.models.base import (
    BlockStart,
    BlockStop,
    Delta,
    MessageEnd,
    MessageStart,
    ModelEvent,
    ModelRequest,
)
from bassi.models.playback import play

_BLOCK_TYPES = (TextBlock, ThinkingBlock, ToolUseBlock, ToolResultBlock)
_EVENT_TYPES = (MessageStart, BlockStart, Delta, BlockStop, MessageEnd)

Answer: TypeAlias = (
    str
    | ContentBlock
    | Sequence[ContentBlock]
    | Message
    | Iterable[ModelEvent]
    | AsyncIterable[ModelEvent]
)
"""What the function may give back."""

ModelFunction: TypeAlias = Callable[[ModelRequest], Answer | Awaitable[Answer]]


class FunctionModel:
    """A model whose answers come from `function(request)`."""

    def __init__(
        self, function: ModelFunction, *, name: str = "function", provider: str = "function"
    ) -> None:
        self.function = function
        self.name = name
        self.provider = provider
        self.requests: list[ModelRequest] = []
        """Every request received, in order."""

    def __repr__(self) -> str:
        return f"FunctionModel(name={self.name!r}, provider={self.provider!r})"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Stream the function's answer to `request`."""
        self.requests.append(request)
        answer = self.function(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if isinstance(answer, AsyncIterable):
            async for event in answer:
                yield event
            return
        if isinstance(answer, (str, Message, *_BLOCK_TYPES)):
            content = _as_content(answer)
        else:
            # Blocks or events: the first item tells; events stream lazily, as they come.
            items = iter(cast(Iterable[ContentBlock | ModelEvent], answer))
            first = next(items, None)
            if first is None or isinstance(first, _EVENT_TYPES):
                if first is not None:
                    yield first
                for item in items:
                    yield cast(ModelEvent, item)
                return
            content = (first, *cast(Iterable[ContentBlock], items))
        serial = len(self.requests)
        stop = "tool_use" if any(isinstance(b, ToolUseBlock) for b in content) else "end_turn"
        async for event in play(
            content,
            message_id=f"msg_{self.provider}_{serial}",
            model=self.name,
            provider=self.provider,
            stop_reason=stop,
            usage=Usage(),
        ):
            yield event


def _as_content(answer: str | Message | ContentBlock) -> tuple[ContentBlock, ...]:
    if isinstance(answer, str):
        return (TextBlock(text=answer),)
    if isinstance(answer, Message):
        return answer.content
    return (answer,)
