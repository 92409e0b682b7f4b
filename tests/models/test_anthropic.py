"""Anthropic specifics: thinking round trip, stop reasons, usage semantics, framing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import pytest

from bassi.errors import ModelError
from bassi.messages import Message, TextBlock, ThinkingBlock, ToolResultBlock, ToolUseBlock, Usage
from bassi.models.anthropic import AnthropicModel
from bassi.models.base import BlockStart, Delta, ModelRequest
from bassi.models.convert import REDACTED_THINKING
from tests.fakes import anthropic_server as A
from tests.fakes.http_server import Reply, Stream
from tests.models.harness import API_KEY, FAST, collect, final, prompt


@pytest.fixture
async def model(anthropic_fake: A.AnthropicFake) -> AsyncIterator[AnthropicModel]:
    made = AnthropicModel("claude-fake-1", api_key=API_KEY, base_url=anthropic_fake.url)
    yield made
    await made.aclose()


async def test_thinking_is_captured_and_passed_back_unchanged(
    anthropic_fake: A.AnthropicFake, model: AnthropicModel
) -> None:
    anthropic_fake.add(
        A.stream(
            A.events(
                A.Thinking(["Need the ", "file first."], signature="sig_abc=="),
                A.RedactedThinking("opaque-bytes"),
                A.ToolUse("toolu_1", "read_file", ['{"path": "a.py"}']),
                stop_reason="tool_use",
            )
        ),
        A.stream(A.events(A.text("Read it."))),
    )
    request = ModelRequest(
        system="", messages=prompt().messages, tools=[], max_tokens=2048, thinking_budget=1024
    )

    events = await collect(model, request)

    end = final(events)
    assert end.content == (
        ThinkingBlock(thinking="Need the file first.", signature="sig_abc=="),
        ThinkingBlock(thinking="", signature=REDACTED_THINKING + "opaque-bytes"),
        ToolUseBlock(id="toolu_1", name="read_file", input={"path": "a.py"}),
    )
    assert [e.text for e in events if isinstance(e, Delta) and e.channel == "thinking"] == [
        "Need the ",
        "file first.",
    ]
    assert BlockStart(0, "thinking") in events
    assert anthropic_fake.bodies[0]["thinking"] == {"type": "enabled", "budget_tokens": 1024}

    history = [
        *request.messages,
        Message(role="assistant", content=end.content),
        Message(role="user", content=(ToolResultBlock(tool_use_id="toolu_1", content="x = 1"),)),
    ]
    await collect(model, ModelRequest(system="", messages=history, tools=[], max_tokens=2048))

    replayed = anthropic_fake.bodies[1]["messages"][1]["content"]
    assert replayed[:2] == [
        {"type": "thinking", "thinking": "Need the file first.", "signature": "sig_abc=="},
        {"type": "redacted_thinking", "data": "opaque-bytes"},
    ]


async def test_fake_refuses_a_follow_up_that_alters_thinking(
    anthropic_fake: A.AnthropicFake,
) -> None:
    anthropic_fake.add(
        A.stream(
            A.events(
                A.Thinking(["plan"], signature="sig_1"),
                A.ToolUse("toolu_9", "bash", ['{"command": "ls"}']),
                stop_reason="tool_use",
            )
        )
    )
    async with anthropic.AsyncAnthropic(base_url=anthropic_fake.url, api_key=API_KEY) as client:
        async with client.messages.stream(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            await s.get_final_message()
        with pytest.raises(anthropic.BadRequestError, match="thinking"):
            await client.messages.create(
                model="m",
                max_tokens=10,
                messages=[
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "thinking", "thinking": "edited", "signature": "sig_1"},
                            {"type": "tool_use", "id": "toolu_9", "name": "bash", "input": {}},
                        ],
                    },
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "toolu_9"}],
                    },
                ],
            )


@pytest.mark.parametrize(
    "messages",
    [
        [  # a tool_use without its result
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}],
            },
            {"role": "user", "content": "and?"},
        ],
        [  # a result without its tool_use
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t7", "content": "?"}],
            },
        ],
    ],
)
async def test_fake_answers_400_to_a_broken_tool_structure(
    anthropic_fake: A.AnthropicFake, messages: list[dict[str, object]]
) -> None:
    async with anthropic.AsyncAnthropic(base_url=anthropic_fake.url, api_key=API_KEY) as client:
        with pytest.raises(anthropic.BadRequestError, match="tool_"):
            await client.messages.create(model="m", max_tokens=10, messages=messages)  # type: ignore[arg-type]
    assert len(anthropic_fake.requests) == 1


@pytest.mark.parametrize(
    "reason",
    [
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
        "some_future_reason",
    ],
)
async def test_every_stop_reason_is_kept(
    anthropic_fake: A.AnthropicFake, model: AnthropicModel, reason: str
) -> None:
    anthropic_fake.add(A.stream(A.events(A.text("x"), stop_reason=reason)))

    assert final(await collect(model, prompt())).stop_reason == reason


async def test_usage_takes_cache_counts_from_start_and_cumulative_output(
    anthropic_fake: A.AnthropicFake, model: AnthropicModel
) -> None:
    frames = A.events(
        A.text("x"),
        usage={
            "input_tokens": 410,
            "cache_read_input_tokens": 300,
            "cache_creation_input_tokens": 7,
        },
        output_tokens=88,
    )
    anthropic_fake.add(A.stream(frames))

    assert final(await collect(model, prompt())).usage == Usage(
        input_tokens=410, output_tokens=88, cache_read_tokens=300, cache_write_tokens=7
    )


async def test_message_delta_counts_replace_rather_than_add(
    anthropic_fake: A.AnthropicFake, model: AnthropicModel
) -> None:
    frames = A.events(A.text("x"), stop_reason=None)
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 50, "input_tokens": 30, "cache_read_input_tokens": 5},
    }
    anthropic_fake.add(
        A.stream(
            [
                *frames,
                A.sse(delta, event="message_delta"),
                A.sse({"type": "message_stop"}, event="message_stop"),
            ]
        )
    )

    assert final(await collect(model, prompt())).usage == Usage(
        input_tokens=30, output_tokens=50, cache_read_tokens=5
    )


async def test_one_byte_chunks_are_reassembled(
    anthropic_fake: A.AnthropicFake, model: AnthropicModel
) -> None:
    frames = A.events(
        A.text("Hello", " there"),
        A.ToolUse("toolu_2", "grep", ['{"q": "é"}']),
        stop_reason="tool_use",
    )
    anthropic_fake.add(A.stream(frames, chunk_size=1))

    end = final(await collect(model, prompt()))

    assert end.content == (
        TextBlock(text="Hello there"),
        ToolUseBlock(id="toolu_2", name="grep", input={"q": "é"}),
    )


async def test_events_without_event_lines_give_no_message(
    anthropic_fake: A.AnthropicFake, model: AnthropicModel
) -> None:
    """The SDK silently drops unnamed events; the adapter must not call that a success."""
    frames = [f.split(b"\n", 1)[1] for f in A.events(A.text("lost"))]
    anthropic_fake.add(A.stream(frames))

    with pytest.raises(ModelError, match="message_start") as caught:
        await collect(model, prompt())
    assert caught.value.error_type == "incomplete_stream"


async def test_tool_input_that_is_not_json_is_a_clear_error(
    anthropic_fake: A.AnthropicFake, model: AnthropicModel
) -> None:
    anthropic_fake.add(
        A.stream(A.events(A.ToolUse("toolu_3", "bash", ['{"command": ']), stop_reason="tool_use"))
    )

    with pytest.raises(ModelError, match=r"bash \(toolu_3\).*not a JSON object") as caught:
        await collect(model, prompt())
    assert caught.value.error_type == "invalid_tool_input"


async def test_overloaded_529_honours_x_should_retry(
    anthropic_fake: A.AnthropicFake, model: AnthropicModel
) -> None:
    anthropic_fake.add(
        A.error(529, "overloaded_error", "Overloaded", headers={"x-should-retry": "true", **FAST}),
        A.error(400, "invalid_request_error", "nope", headers={"x-should-retry": "true", **FAST}),
        A.stream(A.events(A.text("at last"))),
    )

    end = final(await collect(model, prompt()))

    assert end.content == (TextBlock(text="at last"),)
    assert len(anthropic_fake.requests) == 3


async def test_unknown_events_and_server_tool_blocks_are_skipped(
    anthropic_fake: A.AnthropicFake, model: AnthropicModel
) -> None:
    frames = A.events(A.text("a"), A.text("b"))
    server_block = [
        A.sse(
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {
                    "type": "server_tool_use",
                    "id": "srvtoolu_1",
                    "name": "web_search",
                    "input": {},
                },
            },
            event="content_block_start",
        ),
        A.sse({"type": "content_block_stop", "index": 2}, event="content_block_stop"),
        A.sse({"type": "brand_new_event", "x": 1}, event="brand_new_event"),
    ]
    anthropic_fake.add(A.stream([*frames[:-2], *server_block, *frames[-2:]]))

    end = final(await collect(model, prompt()))

    assert end.content == (TextBlock(text="a"), TextBlock(text="b"))


async def test_an_unknown_event_before_message_start_is_skipped(
    anthropic_fake: A.AnthropicFake, model: AnthropicModel
) -> None:
    early = A.sse({"type": "brand_new_event"}, event="brand_new_event")
    anthropic_fake.add(A.stream([early, *A.events(A.text("hi"))]))

    end = final(await collect(model, prompt()))

    assert end.content == (TextBlock(text="hi"),)
    assert end.stop_reason == "end_turn"


async def test_a_block_event_before_message_start_is_still_a_broken_stream(
    anthropic_fake: A.AnthropicFake, model: AnthropicModel
) -> None:
    frames = A.events(A.text("hi"))
    early = [f for f in frames if b"content_block_start" in f][:1]
    anthropic_fake.add(A.stream([*early, *frames]))

    with pytest.raises(ModelError) as caught:
        await collect(model, prompt())

    assert caught.value.error_type == "incomplete_stream"


async def test_a_spend_limit_429_is_not_retryable(
    anthropic_fake: A.AnthropicFake, model: AnthropicModel
) -> None:
    """A 429 for a spend limit looks like a rate limit but lasts until someone raises the
    limit: the run's error must not invite a retry."""
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "You have reached your specified API usage limits.",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
        "request_id": "req_spend",
    }
    anthropic_fake.add(*[Reply(429, body, headers={"request-id": "req_spend", **FAST})] * 3)

    with pytest.raises(ModelError) as caught:
        await collect(model, prompt())

    assert caught.value.status == 429
    assert caught.value.retryable is False
    assert "usage limits" in str(caught.value)


def test_stream_helper_frames_are_what_the_sdk_expects() -> None:
    """Guard on the fake itself: every frame names its event and the JSON type matches."""
    for frame in A.events(A.text("x"), A.ToolUse("t", "n", ["{}"]), A.Thinking(["y"], "s")):
        lines = frame.decode().splitlines()
        assert lines[0].startswith("event: ")
        assert f'"type": "{lines[0][7:]}"' in lines[1]
    assert isinstance(A.stream([]), Stream)
