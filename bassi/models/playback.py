"""Play a finished assistant message back as a stream of model events (offline models)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import assert_never

from bassi.messages import (
    ContentBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from bassi.models.base import (
    BlockStart,
    BlockStop,
    Channel,
    Delta,
    MessageEnd,
    MessageStart,
    ModelEvent,
)

_PIECE = re.compile(r"\S+\s*|\s+")


def pieces(text: str) -> list[str]:
    """Split text into word-sized deltas that join back to exactly `text`."""
    return _PIECE.findall(text)


async def play(
    content: Sequence[ContentBlock],
    *,
    message_id: str,
    model: str,
    provider: str,
    stop_reason: str,
    usage: Usage,
    deltas: Sequence[Sequence[str]] | None = None,
    delay: float = 0.0,
) -> AsyncIterator[ModelEvent]:
    """Events of a stream that produces `content`; `deltas[i]` overrides block i's pieces.

    `delay` seconds pass between consecutive deltas.
    """
    yield MessageStart(message_id=message_id, model=model, provider=provider)
    first = True
    channel: Channel
    for index, block in enumerate(content):
        if isinstance(block, TextBlock):
            yield BlockStart(index, "text")
            channel, default = "text", pieces(block.text)
        elif isinstance(block, ThinkingBlock):
            yield BlockStart(index, "thinking")
            channel, default = "thinking", pieces(block.thinking)
        elif isinstance(block, ToolUseBlock):
            yield BlockStart(index, "tool_use", tool_call_id=block.id, tool_name=block.name)
            channel, default = "tool_input", [json.dumps(block.input)]
        elif isinstance(block, ToolResultBlock):
            raise ValueError("an assistant message cannot hold a tool_result block")
        else:
            assert_never(block)
        for text in deltas[index] if deltas is not None else default:
            if delay and not first:
                await asyncio.sleep(delay)
            first = False
            yield Delta(index, channel, text)
        yield BlockStop(index)
    yield MessageEnd(
        message_id=message_id,
        content=tuple(content),
        stop_reason=stop_reason,
        usage=usage,
        model=model,
        provider=provider,
    )
