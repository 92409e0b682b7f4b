"""The Anthropic Messages API (streaming) behind the `Model` protocol.

The `anthropic` SDK is imported when a model is made, never when this module is imported. The
raw event stream is assembled here rather than by the SDK's `messages.stream()` helper, which
accepts a stream cut short as a finished message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from bassi.errors import ModelError
from bassi.messages import ContentBlock, TextBlock, ThinkingBlock, ToolUseBlock, Usage
from bassi.models.base import (
    BlockStart,
    BlockStop,
    BlockType,
    Delta,
    MessageEnd,
    MessageStart,
    ModelEvent,
    ModelRequest,
)
from bassi.models.convert import REDACTED_THINKING, anthropic_messages, anthropic_tools
from bassi.models.failures import (
    NEVER_RETRYABLE_CODES,
    PatientRetries,
    describe,
    model_error,
    retryable_status,
)

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic


class AnthropicModel:
    """A Claude model, streamed through `anthropic.AsyncAnthropic`."""

    provider = "anthropic"

    def __init__(
        self,
        name: str,
        *,
        client: AsyncAnthropic | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        timeout: float | None = None,
    ) -> None:
        if client is None:
            import anthropic

            class Client(PatientRetries, anthropic.AsyncAnthropic):
                """The SDK's client, without retry sleeps past `MAX_RETRY_WAIT`."""

            client = Client(
                api_key=api_key,
                base_url=base_url,
                max_retries=max_retries,
                timeout=timeout if timeout is not None else anthropic.not_given,
            )
        self.name = name
        self.client = client
        self._secrets = (api_key, client.api_key, client.auth_token)

    def __repr__(self) -> str:
        return f"AnthropicModel(name={self.name!r}, base_url={str(self.client.base_url)!r})"

    async def aclose(self) -> None:
        """Close the SDK client and its connection pool."""
        await self.client.close()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Stream one assistant message (see `bassi.models.base`)."""
        import anthropic

        try:
            response = await self.client.messages.create(
                model=self.name,
                max_tokens=request.max_tokens,
                messages=cast(Any, anthropic_messages(request.messages)),
                system=request.system or anthropic.omit,
                tools=cast(Any, anthropic_tools(request.tools))
                if request.tools
                else anthropic.omit,
                thinking=(
                    {"type": "enabled", "budget_tokens": request.thinking_budget}
                    if request.thinking_budget
                    else anthropic.omit
                ),
                stream=True,
            )
        except Exception as exc:  # whatever the SDK lets through, the caller gets a ModelError
            raise self._error(exc, None) from exc
        request_id = response.response.headers.get("request-id")
        assembly = _Assembly(provider=self.provider, request_id=request_id)
        try:
            async for event in response:
                for out in assembly.feed(event):
                    yield out
        except ModelError:
            raise
        except Exception as exc:
            raise self._error(exc, request_id) from exc
        finally:
            await response.close()
        for out in assembly.finish():
            yield out

    def _error(self, exc: Exception, request_id: str | None) -> ModelError:
        import anthropic
        import httpx2

        where = f"anthropic:{self.name}"
        if isinstance(exc, anthropic.APIStatusError):
            body: dict[str, Any] = exc.body if isinstance(exc.body, dict) else {}
            error = body.get("error")
            error = error if isinstance(error, dict) else {}
            error_type = exc.type or error.get("type") or f"http_{exc.status_code}"
            message = error.get("message") or exc.message
            details = error.get("details")
            code = details.get("error_code") if isinstance(details, dict) else None
            if exc.status_code == 200:  # an `event: error` inside the stream
                return model_error(
                    f"{where}: stream failed: {error_type}: {message}",
                    provider=self.provider,
                    error_type=error_type,
                    request_id=body.get("request_id") or exc.request_id or request_id,
                    secrets=self._secrets,
                )
            return model_error(
                f"{where}: HTTP {exc.status_code} {error_type}: {message}",
                provider=self.provider,
                status=exc.status_code,
                error_type=error_type,
                request_id=exc.request_id,
                retryable=retryable_status(exc.status_code, exc.response.headers)
                and code not in NEVER_RETRYABLE_CODES,
                secrets=self._secrets,
            )
        if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
            error_type, text = "timeout", "timed out"
        elif isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
            error_type, text = "connection_error", "connection failed"
        elif isinstance(exc, ValueError):
            error_type, text = "protocol_error", "malformed stream"
        else:
            error_type, text = "model_error", "request failed"
        return model_error(
            f"{where}: {text}: {describe(exc)}",
            provider=self.provider,
            error_type=error_type,
            request_id=request_id,
            retryable=error_type != "model_error",
            secrets=self._secrets,
        )


@dataclass
class _Block:
    index: int
    type: BlockType
    parts: list[str] = field(default_factory=list)
    signature: str | None = None
    tool_id: str = ""
    tool_name: str = ""
    stopped: bool = False


@dataclass
class _Assembly:
    """Turns the SDK's raw stream events into model events and the final message."""

    provider: str
    request_id: str | None
    message_id: str | None = None
    model: str = ""
    blocks: dict[int, _Block] = field(default_factory=dict)
    """By Anthropic's block index; ours count only the blocks bassi keeps."""
    usage: Usage = field(default_factory=Usage)
    stop_reason: str | None = None
    stopped: bool = False

    def feed(self, event: Any) -> list[ModelEvent]:
        # Dispatch on `type`, not on class: the SDK builds an event it does not know (a newer
        # API's) as the first class of its union, with the wrong fields.
        kind = getattr(event, "type", None)
        if kind == "message_start":
            message = event.message
            self.message_id, self.model = message.id, message.model
            start = message.usage
            self.usage = Usage(
                input_tokens=start.input_tokens,
                output_tokens=start.output_tokens,
                cache_read_tokens=start.cache_read_input_tokens or 0,
                cache_write_tokens=start.cache_creation_input_tokens or 0,
            )
            return [MessageStart(message.id, message.model, self.provider)]
        if self.message_id is None:
            if kind in _MESSAGE_EVENTS:
                raise self._incomplete(f"{kind!r} event before message_start")
            return []  # a ping, or an event type newer than this code: nothing to keep
        if kind == "content_block_start":
            return self._start(event.index, event.content_block)
        if kind == "content_block_delta":
            return self._delta(event.index, event.delta)
        if kind == "content_block_stop":
            block = self.blocks.get(event.index)
            if block is None or block.stopped:
                return []
            block.stopped = True
            return [BlockStop(block.index)]
        if kind == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            # Counts in message_delta are cumulative: they replace, never add.
            u, before = event.usage, self.usage
            self.usage = Usage(
                input_tokens=_pick(u.input_tokens, before.input_tokens),
                output_tokens=u.output_tokens,
                cache_read_tokens=_pick(u.cache_read_input_tokens, before.cache_read_tokens),
                cache_write_tokens=_pick(u.cache_creation_input_tokens, before.cache_write_tokens),
            )
            return []
        if kind == "message_stop":
            self.stopped = True
        return []

    def _start(self, provider_index: int, block: Any) -> list[ModelEvent]:
        index = len(self.blocks)
        match block.type:
            case "text":
                new = _Block(index, "text", [block.text] if block.text else [])
            case "thinking":
                new = _Block(index, "thinking", [block.thinking], signature=block.signature or None)
            case "redacted_thinking":
                new = _Block(index, "thinking", signature=REDACTED_THINKING + block.data)
            case "tool_use":
                start = json.dumps(block.input) if block.input else ""
                new = _Block(index, "tool_use", [start], tool_id=block.id, tool_name=block.name)
                self.blocks[provider_index] = new
                return [BlockStart(index, "tool_use", block.id, block.name)]
            case _:
                return []  # server-side tool blocks: not part of bassi's conversation
        self.blocks[provider_index] = new
        return [BlockStart(index, new.type)]

    def _delta(self, provider_index: int, delta: Any) -> list[ModelEvent]:
        block = self.blocks.get(provider_index)
        if block is None:
            return []
        match delta.type:
            case "text_delta":
                block.parts.append(delta.text)
                return [Delta(block.index, "text", delta.text)]
            case "thinking_delta":
                block.parts.append(delta.thinking)
                return [Delta(block.index, "thinking", delta.thinking)]
            case "signature_delta":
                block.signature = delta.signature
            case "input_json_delta" if delta.partial_json:
                block.parts.append(delta.partial_json)
                return [Delta(block.index, "tool_input", delta.partial_json)]
        return []

    def finish(self) -> list[ModelEvent]:
        """The closing events; raises `ModelError` when the stream did not really finish."""
        if self.message_id is None:
            raise self._incomplete("no message_start")
        if not self.stopped or self.stop_reason is None:
            raise self._incomplete("no message_stop" if not self.stopped else "no stop_reason")
        out: list[ModelEvent] = []
        content: list[ContentBlock] = []
        for block in self.blocks.values():
            if not block.stopped:
                out.append(BlockStop(block.index))
            made = self._content(block)
            if made is not None:
                content.append(made)
        out.append(
            MessageEnd(
                message_id=self.message_id,
                content=tuple(content),
                stop_reason=self.stop_reason,
                usage=self.usage,
                model=self.model,
                provider=self.provider,
                request_id=self.request_id,
            )
        )
        return out

    def _content(self, block: _Block) -> ContentBlock | None:
        """The block of the final message; None for a tool call the stop cut off."""
        text = "".join(block.parts)
        if block.type == "text":
            return TextBlock(text=text)
        if block.type == "thinking":
            return ThinkingBlock(thinking=text, signature=block.signature)
        try:
            value = json.loads(text) if text.strip() else {}
        except ValueError:
            value = None
        if not isinstance(value, dict) and self.stop_reason not in _FINISHED:
            # The message stopped inside the call's input (max_tokens, a refusal, a full
            # context window): the message ends there, with that stop reason and without a
            # call that cannot run. Asking again the same way would stop in the same place.
            return None
        if not isinstance(value, dict):
            raise model_error(
                f"anthropic: input of tool call {block.tool_name} ({block.tool_id}) is not a "
                f"JSON object: {text[:200]!r}",
                provider=self.provider,
                error_type="invalid_tool_input",
                request_id=self.request_id,
                retryable=True,
            )
        return ToolUseBlock(id=block.tool_id, name=block.tool_name, input=value)

    def _incomplete(self, what: str) -> ModelError:
        return model_error(
            f"anthropic: the stream ended incomplete ({what})",
            provider=self.provider,
            error_type="incomplete_stream",
            request_id=self.request_id,
        )


_FINISHED = ("tool_use", "end_turn")
"""Stop reasons of a message that said all it meant to; any other can stop inside a block."""

_MESSAGE_EVENTS = frozenset(
    {
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    }
)
"""Events that belong to a message: one before `message_start` means a broken stream."""


def _pick(value: int | None, default: int) -> int:
    return default if value is None else value
