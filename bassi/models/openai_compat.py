"""OpenAI-compatible chat completions (streaming) behind the `Model` protocol.

Serves OpenAI, DeepSeek, Moonshot, OpenRouter and Ollama (`bassi.models.catalog`). The
`openai` SDK is imported when a model is made, never when this module is imported. Raw chunks
are assembled here rather than by the SDK's `chat.completions.stream()` helper, which raises
on `length` and `content_filter` finishes and trusts tool-call indexes to arrive in order.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
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
from bassi.models.catalog import PROVIDERS, Provider
from bassi.models.convert import openai_messages, openai_tools
from bassi.models.failures import (
    NEVER_RETRYABLE_CODES,
    PatientRetries,
    describe,
    model_error,
    retryable_status,
)

if TYPE_CHECKING:
    from openai import AsyncOpenAI

NO_KEY = "no-key"
"""What the SDK is given as key for servers that need none (it insists on one)."""

STOP_REASONS: Mapping[str, str] = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}
"""OpenAI finish reasons in bassi's (Anthropic's) stop-reason vocabulary."""


class OpenAICompatModel:
    """A model behind an OpenAI-compatible endpoint, streamed through `openai.AsyncOpenAI`."""

    def __init__(
        self,
        name: str,
        *,
        provider: str | Provider = "openai",
        client: AsyncOpenAI | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        timeout: float | None = None,
    ) -> None:
        preset = PROVIDERS[provider] if isinstance(provider, str) else provider
        if client is None:
            import openai

            class Client(PatientRetries, openai.AsyncOpenAI):
                """The SDK's client, without retry sleeps past `MAX_RETRY_WAIT`."""

            client = Client(
                api_key=api_key or (None if preset.needs_key else NO_KEY),
                base_url=base_url or preset.base_url,
                max_retries=max_retries,
                timeout=timeout if timeout is not None else openai.not_given,
            )
        self.name = name
        self.provider = preset.name
        self.preset = preset
        self.client = client
        self._secrets = (api_key, client.api_key if client.api_key != NO_KEY else None)

    def __repr__(self) -> str:
        return f"OpenAICompatModel(provider={self.provider!r}, name={self.name!r}, base_url={str(self.client.base_url)!r})"

    async def aclose(self) -> None:
        """Close the SDK client and its connection pool."""
        await self.client.close()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Stream one assistant message (see `bassi.models.base`)."""
        import openai

        limit = {self.preset.max_tokens_field: request.max_tokens}
        try:
            response = await self.client.chat.completions.create(
                model=self.name,
                messages=cast(
                    Any,
                    openai_messages(
                        request.system,
                        request.messages,
                        replay_reasoning=self.preset.replays_reasoning,
                    ),
                ),
                tools=cast(Any, openai_tools(request.tools)) if request.tools else openai.omit,
                stream=True,
                stream_options={"include_usage": True},
                max_tokens=limit.get("max_tokens", openai.omit),
                max_completion_tokens=limit.get("max_completion_tokens", openai.omit),
            )
        except Exception as exc:  # whatever the SDK lets through, the caller gets a ModelError
            raise self._error(exc, None) from exc
        request_id = response.response.headers.get("x-request-id")
        assembly = _Assembly(provider=self.provider, request_id=request_id)
        try:
            async for chunk in response:
                for out in assembly.feed(chunk):
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
        import httpx2
        import openai

        where = f"{self.provider}:{self.name}"
        if isinstance(exc, openai.APIStatusError):
            error_type = exc.code or exc.type or f"http_{exc.status_code}"
            message = _api_message(exc)
            return model_error(
                f"{where}: HTTP {exc.status_code} {error_type}: {message}",
                provider=self.provider,
                status=exc.status_code,
                error_type=error_type,
                request_id=exc.request_id,
                retryable=retryable_status(exc.status_code, exc.response.headers)
                and error_type not in NEVER_RETRYABLE_CODES,
                secrets=self._secrets,
            )
        if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
            error_type, text = "timeout", "timed out"
        elif isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
            error_type, text = "connection_error", "connection failed"
        elif isinstance(exc, openai.APIError):  # a `data: {"error": ...}` inside the stream
            error_type = exc.code or exc.type or "stream_error"
            return model_error(
                f"{where}: stream failed: {error_type}: {_api_message(exc)}",
                provider=self.provider,
                error_type=error_type,
                request_id=request_id,
                secrets=self._secrets,
            )
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


def _api_message(exc: Any) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message")
    return message if isinstance(message, str) and message else str(exc.message)


@dataclass
class _Block:
    index: int
    type: BlockType
    parts: list[str] = field(default_factory=list)
    tool_id: str = ""
    given_id: bool = False
    """Whether the provider named the call (else `tool_id` was made up here)."""
    tool_name: str = ""


@dataclass
class _Assembly:
    """Turns chat-completion chunks into model events and the final message."""

    provider: str
    request_id: str | None
    message_id: str | None = None
    model: str = ""
    blocks: list[_Block] = field(default_factory=list)
    thinking: _Block | None = None
    text: _Block | None = None
    calls: dict[int, _Block] = field(default_factory=dict)
    """By the provider's tool-call index, which may arrive interleaved or out of order."""
    usage: Usage | None = None
    finish_reason: str | None = None
    refused: bool = False

    def feed(self, chunk: Any) -> list[ModelEvent]:
        out: list[ModelEvent] = []
        if self.message_id is None:
            self.message_id = chunk.id or f"chatcmpl-{uuid.uuid4().hex}"
            self.model = chunk.model or ""
            out.append(MessageStart(self.message_id, self.model, self.provider))
        if chunk.usage is not None:
            self.usage = _usage(chunk.usage)
        for choice in chunk.choices or ():
            if choice.index != 0:
                continue
            inner = (choice.model_extra or {}).get("usage")
            if inner:  # Moonshot puts usage inside the choice
                self.usage = _usage(inner)
            out.extend(self._delta(choice.delta))
            self.finish_reason = choice.finish_reason or self.finish_reason
        return out

    def _delta(self, delta: Any) -> list[ModelEvent]:
        out: list[ModelEvent] = []
        extra = delta.model_extra or {}
        reasoning = extra.get("reasoning_content") or extra.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            if self.thinking is None:
                self.thinking = self._open("thinking", out)
            self.thinking.parts.append(reasoning)
            out.append(Delta(self.thinking.index, "thinking", reasoning))
        if delta.content:
            if self.text is None:
                self.text = self._open("text", out)
            self.text.parts.append(delta.content)
            out.append(Delta(self.text.index, "text", delta.content))
        refusal = getattr(delta, "refusal", None)
        if isinstance(refusal, str) and refusal:  # the model declined, in words of its own
            self.refused = True
            if self.text is None:
                self.text = self._open("text", out)
            self.text.parts.append(refusal)
            out.append(Delta(self.text.index, "text", refusal))
        for call in delta.tool_calls or ():
            fn = call.function
            block = self.calls.get(call.index)
            if block is not None and call.id and block.given_id and call.id != block.tool_id:
                block = None  # a server that numbers every call 0: a new id is a new call
            if block is None:
                # Some servers send no id: one is made up now, so that the block's start, its
                # deltas and the final message all name the call alike.
                block = _Block(len(self.blocks), "tool_use", tool_id=call.id or _new_call_id())
                block.given_id = bool(call.id)
                block.tool_name = (fn.name if fn else None) or ""
                self.calls[call.index] = block
                self.blocks.append(block)
                out.append(
                    BlockStart(block.index, "tool_use", block.tool_id, block.tool_name or None)
                )
            else:
                block.tool_name = block.tool_name or (fn.name if fn else None) or ""
            if fn and fn.arguments:
                block.parts.append(fn.arguments)
                out.append(Delta(block.index, "tool_input", fn.arguments))
        return out

    def _open(self, block_type: BlockType, out: list[ModelEvent]) -> _Block:
        block = _Block(len(self.blocks), block_type)
        self.blocks.append(block)
        out.append(BlockStart(block.index, block_type))
        return block

    def finish(self) -> list[ModelEvent]:
        """The closing events; raises `ModelError` when the stream did not really finish."""
        if self.message_id is None or self.finish_reason is None:
            raise model_error(
                f"{self.provider}: the stream ended incomplete (no finish_reason)",
                provider=self.provider,
                error_type="incomplete_stream",
                request_id=self.request_id,
            )
        stop = STOP_REASONS.get(self.finish_reason, self.finish_reason)
        content = tuple(c for b in self.blocks if (c := self._content(b, stop)) is not None)
        if stop == "end_turn" and any(isinstance(b, ToolUseBlock) for b in content):
            stop = "tool_use"  # some servers finish tool calls with "stop"
        elif stop == "end_turn" and self.refused:
            stop = "refusal"  # OpenAI finishes a refusal with "stop"
        out: list[ModelEvent] = [BlockStop(b.index) for b in self.blocks]
        out.append(
            MessageEnd(
                message_id=self.message_id,
                content=content,
                stop_reason=stop,
                usage=self.usage or Usage(),
                model=self.model,
                provider=self.provider,
                request_id=self.request_id,
            )
        )
        return out

    def _content(self, block: _Block, stop: str) -> ContentBlock | None:
        """The block of the final message; None for a tool call the stop cut off."""
        text = "".join(block.parts)
        if block.type == "text":
            return TextBlock(text=text)
        if block.type == "thinking":
            return ThinkingBlock(thinking=text)
        try:
            value = json.loads(text) if text.strip() else {}
        except ValueError:
            value = None
        if not isinstance(value, dict) and stop not in ("tool_use", "end_turn"):
            # Cut off inside the arguments (`length`, `content_filter`): the message ends
            # there, with that stop reason and without a call that cannot run.
            return None
        if not isinstance(value, dict):
            raise model_error(
                f"{self.provider}: arguments of tool call {block.tool_name} ({block.tool_id}) are not "
                f"a JSON object: {text[:200]!r}",
                provider=self.provider,
                error_type="invalid_tool_input",
                request_id=self.request_id,
                retryable=True,
            )
        return ToolUseBlock(id=block.tool_id, name=block.tool_name, input=value)


def _new_call_id() -> str:
    """A tool-call id for a server that sent none: short enough for every provider's limit
    (OpenAI's is 40 characters), and of the characters Anthropic's ids allow."""
    return f"call_{uuid.uuid4().hex[:24]}"


def _usage(raw: Any) -> Usage:
    """Usage from an OpenAI, DeepSeek or Moonshot usage object; cached prompt tokens split out."""
    u: dict[str, Any] = raw if isinstance(raw, dict) else raw.model_dump()
    prompt = u.get("prompt_tokens") or 0
    details = u.get("prompt_tokens_details") or {}
    cached = (
        details.get("cached_tokens")
        or u.get("prompt_cache_hit_tokens")
        or u.get("cached_tokens")
        or 0
    )
    return Usage(
        input_tokens=max(prompt - cached, 0),
        output_tokens=u.get("completion_tokens") or 0,
        cache_read_tokens=cached,
    )
