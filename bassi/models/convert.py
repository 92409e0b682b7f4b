"""The neutral history as each provider's request messages.

`normalize` first makes any history valid for every provider: no empty text, one message per
turn, every tool use answered by a result in the very next user message (results first), no
result without its tool use. The fold already keeps histories this way; `normalize` makes the
adapters safe with histories cut or built by hand as well.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, assert_never

from bassi.messages import (
    ContentBlock,
    Message,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
)

REDACTED_THINKING = "redacted_thinking:"
"""Signature prefix of a `ThinkingBlock` that carries Anthropic `redacted_thinking` data."""

MISSING_RESULT = "no result was recorded for this tool call"


def normalize(messages: Sequence[Message]) -> list[Message]:
    """An equivalent history every provider accepts (see the module docstring)."""
    merged: list[Message] = []
    for message in messages:
        content = tuple(b for b in message.content if not _is_blank(b))
        if not content:
            continue
        if merged and merged[-1].role == message.role:
            content = (*merged.pop().content, *content)
        merged.append(Message(role=message.role, content=content))
    out: list[Message] = []
    asked: tuple[ToolUseBlock, ...] = ()
    for message in merged:
        if message.role == "user":
            message = _answer(message, asked)
        out.append(message)
        asked = message.tool_uses
    if asked:
        out.append(_answer(Message(role="user", content=()), asked))
    return out


def _is_blank(block: ContentBlock) -> bool:
    return isinstance(block, TextBlock) and not block.text.strip()


def _answer(user: Message, asked: tuple[ToolUseBlock, ...]) -> Message:
    """The user turn with a result for every call in `asked`, results first."""
    ids = {u.id for u in asked}
    results = {b.tool_use_id: b for b in user.content if isinstance(b, ToolResultBlock)}
    ordered: list[ContentBlock] = [
        results.get(u.id)
        or ToolResultBlock(tool_use_id=u.id, content=MISSING_RESULT, is_error=True)
        for u in asked
    ]
    for block in user.content:
        if isinstance(block, ToolResultBlock):
            if block.tool_use_id not in ids:
                ordered.append(TextBlock(text=f"[tool result {block.tool_use_id}] {block.content}"))
        else:
            ordered.append(block)
    return Message(role="user", content=tuple(ordered))


# --- Anthropic Messages ----------------------------------------------------------------------


def anthropic_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The `messages` field of an Anthropic Messages request."""
    out: list[dict[str, Any]] = []
    for message in normalize(messages):
        blocks = [b for b in (_anthropic_block(b) for b in message.content) if b is not None]
        if blocks and out and out[-1]["role"] == message.role:
            out[-1]["content"].extend(blocks)
        elif blocks:
            out.append({"role": message.role, "content": blocks})
    return out


def _anthropic_block(block: ContentBlock) -> dict[str, Any] | None:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ThinkingBlock):
        if block.signature is None:
            return None  # reasoning of another provider: Anthropic refuses unsigned thinking
        if block.signature.startswith(REDACTED_THINKING):
            return {"type": "redacted_thinking", "data": block.signature[len(REDACTED_THINKING) :]}
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if isinstance(block, ToolResultBlock):
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": block.tool_use_id}
        if block.content:
            result["content"] = block.content
        if block.is_error:
            result["is_error"] = True
        return result
    assert_never(block)


def anthropic_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The `tools` field of an Anthropic Messages request."""
    return [
        {"name": t.name, "description": t.description, "input_schema": t.input_schema}
        for t in tools
    ]


# --- OpenAI chat completions -----------------------------------------------------------------


def openai_messages(
    system: str, messages: Sequence[Message], *, replay_reasoning: bool = False
) -> list[dict[str, Any]]:
    """The `messages` field of a chat-completions request.

    With `replay_reasoning`, an assistant turn's thinking goes back as `reasoning_content`
    (DeepSeek and Kimi require it after tool calls).
    """
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in normalize(messages):
        if message.role == "user":
            out.extend(_openai_user(message))
        else:
            out.extend(_openai_assistant(message, replay_reasoning))
    return out


def _openai_user(message: Message) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    texts: list[str] = []
    for block in message.content:
        if isinstance(block, ToolResultBlock):
            content = f"Error: {block.content}" if block.is_error else block.content
            out.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": content})
        elif isinstance(block, TextBlock):
            texts.append(block.text)
    if texts:
        out.append({"role": "user", "content": "\n\n".join(texts)})
    return out


def _openai_assistant(message: Message, replay_reasoning: bool) -> list[dict[str, Any]]:
    text = message.text
    reply: dict[str, Any] = {"role": "assistant", "content": text or None}
    calls = [
        {
            "id": u.id,
            "type": "function",
            "function": {"name": u.name, "arguments": json.dumps(u.input)},
        }
        for u in message.tool_uses
    ]
    if calls:
        reply["tool_calls"] = calls
    reasoning = "".join(b.thinking for b in message.content if isinstance(b, ThinkingBlock))
    if replay_reasoning and reasoning:
        reply["reasoning_content"] = reasoning
    return [reply] if text or calls else []


def openai_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The `tools` field of a chat-completions request."""
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.input_schema,
            },
        }
        for t in tools
    ]
