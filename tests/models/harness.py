"""A provider-neutral harness: one fake server, models pointed at it, and scripted answers,
so one adapter test runs against both wire protocols."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bassi.messages import Message, TextBlock
from bassi.models.base import MessageEnd, Model, ModelEvent, ModelRequest
from tests.fakes import anthropic_server as A
from tests.fakes import openai_server as O
from tests.fakes.http_server import FakeServer, Reply, Stream

API_KEY = "sk-test-0123456789-SECRET-abcdef"
"""The key every adapter test uses; it must never show up anywhere but the auth header."""

FAST = {"retry-after-ms": "10"}
"""Retry quickly: the SDKs honour `retry-after-ms` before anything else."""


def prompt(text: str = "Hi") -> ModelRequest:
    """A one-prompt request."""
    return ModelRequest(
        system="You are terse.",
        messages=[Message(role="user", content=(TextBlock(text=text),))],
        tools=[],
        max_tokens=256,
    )


async def collect(model: Model, request: ModelRequest) -> list[ModelEvent]:
    """Every event of one stream."""
    return [event async for event in model.stream(request)]


def final(events: Sequence[ModelEvent]) -> MessageEnd:
    """The closing MessageEnd, checking it is the last event and the only one."""
    ends = [e for e in events if isinstance(e, MessageEnd)]
    assert len(ends) == 1
    assert events[-1] is ends[0]
    return ends[0]


class Harness:
    """One provider's fake server, models pointed at it, and its scripted answers."""

    provider: str
    fake: FakeServer

    def __init__(self) -> None:
        self.models: list[Any] = []

    def model(self, *, api_key: str = API_KEY, **options: Any) -> Model:
        raise NotImplementedError

    # Scripted answers, provider-neutral.
    def text(self, *pieces: str, **options: Any) -> Stream:
        raise NotImplementedError

    def tool_calls(self, calls: Sequence[tuple[str, str, Sequence[str]]]) -> Stream:
        raise NotImplementedError

    def http_error(self, status: int, headers: dict[str, str] | None = None) -> Reply:
        raise NotImplementedError

    def mid_stream_error(self, kind: str) -> Stream:
        raise NotImplementedError

    def cut_in_tool_call(self, text: str, call_id: str, name: str, partial: str) -> Stream:
        """Text, then a tool call whose arguments stop at `partial`: the token limit hit."""
        raise NotImplementedError

    def truncated(self) -> Stream:
        raise NotImplementedError

    def slow_text(self, count: int, interval: float) -> Stream:
        raise NotImplementedError

    retryable_mid_stream: str
    fatal_mid_stream: str

    async def aclose(self) -> None:
        for model in self.models:
            await model.aclose()


class AnthropicHarness(Harness):
    provider = "anthropic"
    retryable_mid_stream = "overloaded_error"
    fatal_mid_stream = "invalid_request_error"

    def __init__(self, fake: A.AnthropicFake) -> None:
        super().__init__()
        self.fake = fake

    def model(self, *, api_key: str = API_KEY, **options: Any) -> Model:
        from bassi.models.anthropic import AnthropicModel

        model = AnthropicModel("claude-fake-1", api_key=api_key, base_url=self.fake.url, **options)
        self.models.append(model)
        return model

    def text(self, *pieces: str, **options: Any) -> Stream:
        return A.stream(A.events(A.text(*pieces), **options))

    def tool_calls(self, calls: Sequence[tuple[str, str, Sequence[str]]]) -> Stream:
        blocks = [A.ToolUse(i, n, p) for i, n, p in calls]
        return A.stream(A.events(*blocks, stop_reason="tool_use"))

    def http_error(self, status: int, headers: dict[str, str] | None = None) -> Reply:
        kinds = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}
        kinds |= {500: "api_error", 529: "overloaded_error"}
        return A.error(status, kinds[status], "scripted failure", headers=headers)

    def mid_stream_error(self, kind: str) -> Stream:
        frames = A.events(A.text("Partial"), stop_reason=None)
        return A.stream([*frames, A.error_event(kind)])

    def cut_in_tool_call(self, text: str, call_id: str, name: str, partial: str) -> Stream:
        blocks = (A.text(text), A.ToolUse(call_id, name, [partial]))
        return A.stream(A.events(*blocks, stop_reason="max_tokens"))

    def truncated(self) -> Stream:
        return A.stream(A.events(A.text("Partial"), stop_reason=None))

    def slow_text(self, count: int, interval: float) -> Stream:
        return A.stream(A.events(A.text(*(f"t{i} " for i in range(count)))), interval=interval)


class OpenAIHarness(Harness):
    provider = "openai"
    retryable_mid_stream = "server_error"
    fatal_mid_stream = "invalid_request_error"

    def __init__(self, fake: O.OpenAIFake) -> None:
        super().__init__()
        self.fake = fake

    def model(self, *, api_key: str = API_KEY, provider: str = "openai", **options: Any) -> Model:
        from bassi.models.openai_compat import OpenAICompatModel

        model = OpenAICompatModel(
            "gpt-fake-1", provider=provider, api_key=api_key, base_url=self.fake.url, **options
        )
        self.models.append(model)
        return model

    def text(self, *pieces: str, **options: Any) -> Stream:
        return O.stream(O.text_chunks(*pieces, **options))

    def tool_calls(self, calls: Sequence[tuple[str, str, Sequence[str]]]) -> Stream:
        fragments: list[list[dict[str, Any]]] = []
        for index, (call_id, name, pieces) in enumerate(calls):
            fragments.append([O.call_start(index, call_id, name)])
            fragments += [[O.call_args(index, p)] for p in pieces]
        return O.stream(O.tool_call_chunks(*fragments))

    def http_error(self, status: int, headers: dict[str, str] | None = None) -> Reply:
        kinds = {400: "invalid_request_error", 401: "invalid_request_error"}
        kinds |= {429: "requests", 500: "server_error", 529: "server_error"}
        codes = {401: "invalid_api_key", 429: "rate_limit_exceeded"}
        return O.error(
            status, kinds[status], "scripted failure", code=codes.get(status), headers=headers
        )

    def mid_stream_error(self, kind: str) -> Stream:
        return O.stream([*O.text_chunks("Partial", finish_reason=None), O.error_chunk(kind)])

    def cut_in_tool_call(self, text: str, call_id: str, name: str, partial: str) -> Stream:
        frames = O.tool_call_chunks(
            [O.call_start(0, call_id, name)], [O.call_args(0, partial)], finish_reason="length"
        )
        return O.stream([O.chunk({"role": "assistant", "content": text}), *frames])

    def truncated(self) -> Stream:
        return O.stream(O.text_chunks("Partial", finish_reason=None))

    def slow_text(self, count: int, interval: float) -> Stream:
        return O.stream(O.text_chunks(*(f"t{i} " for i in range(count))), interval=interval)
