"""The adapter contract, through the real SDKs, against each fake provider (issue 4, must show 1-3)."""

from __future__ import annotations

import asyncio
import time

import httpx
import httpx2
import pytest

from bassi import events as ev
from bassi.errors import ModelError
from bassi.messages import TextBlock, ToolSpec, ToolUseBlock, Usage
from bassi.models.base import (
    BlockStart,
    BlockStop,
    Delta,
    MessageEnd,
    MessageStart,
    ModelRequest,
    open_stream,
)
from bassi.session import replay
from tests.models.harness import FAST, Harness, collect, final, prompt


async def test_plain_text_gives_deltas_and_one_completed_message(harness: Harness) -> None:
    harness.fake.add(harness.text("Hel", "lo", ", world!"))

    events = await collect(harness.model(), prompt())

    assert isinstance(events[0], MessageStart)
    assert events[1] == BlockStart(0, "text")
    assert [e.text for e in events if isinstance(e, Delta)] == ["Hel", "lo", ", world!"]
    assert all(e.channel == "text" for e in events if isinstance(e, Delta))
    assert BlockStop(0) in events
    end = final(events)
    assert end.content == (TextBlock(text="Hello, world!"),)
    assert end.stop_reason == "end_turn"
    assert end.provider == harness.provider
    assert end.message_id == events[0].message_id
    assert end.request_id is not None and end.request_id.startswith("req_fake")
    if harness.provider == "anthropic":
        assert end.usage == Usage(input_tokens=25, output_tokens=10)
    else:
        assert end.usage == Usage(input_tokens=20, output_tokens=6)
    assert len(harness.fake.requests) == 1


async def test_request_carries_system_prompt_limits_and_tools(harness: Harness) -> None:
    harness.fake.add(harness.text("ok"))
    schema = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    request = ModelRequest(
        system="Be brief.",
        messages=prompt().messages,
        tools=[ToolSpec(name="read_file", description="Read a file", input_schema=schema)],
        max_tokens=123,
    )

    await collect(harness.model(), request)

    body = harness.fake.requests[0].json
    assert body["stream"] is True
    if harness.provider == "anthropic":
        assert body["system"] == "Be brief."
        assert body["max_tokens"] == 123
        assert body["tools"] == [
            {"name": "read_file", "description": "Read a file", "input_schema": schema}
        ]
        assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    else:
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["messages"][1] == {"role": "user", "content": "Hi"}
        assert body["max_completion_tokens"] == 123
        assert body["stream_options"] == {"include_usage": True}
        assert body["tools"][0]["function"] == {
            "name": "read_file",
            "description": "Read a file",
            "parameters": schema,
        }


TWO_CALLS = [
    ("call_A", "read_file", ["", '{"pa', 'th": "src/ma', 'in.py"}']),
    ("call_B", "grep", ['{"pattern": "TO', 'DO", "max": 5}']),
]


async def test_two_tool_calls_with_split_json_give_exact_inputs(harness: Harness) -> None:
    harness.fake.add(harness.tool_calls(TWO_CALLS))

    events = await collect(harness.model(), prompt())

    end = final(events)
    assert end.content == (
        ToolUseBlock(id="call_A", name="read_file", input={"path": "src/main.py"}),
        ToolUseBlock(id="call_B", name="grep", input={"pattern": "TODO", "max": 5}),
    )
    assert end.stop_reason == "tool_use"
    starts = [e for e in events if isinstance(e, BlockStart)]
    assert starts == [
        BlockStart(0, "tool_use", "call_A", "read_file"),
        BlockStart(1, "tool_use", "call_B", "grep"),
    ]
    for index, (_, _, pieces) in enumerate(TWO_CALLS):
        streamed = [e.text for e in events if isinstance(e, Delta) and e.index == index]
        assert "".join(streamed) == "".join(pieces)
        assert all(e.channel == "tool_input" for e in events if isinstance(e, Delta))


async def test_follow_up_after_tool_calls_is_what_the_api_requires(harness: Harness) -> None:
    """The history the session fold rebuilds from events goes back in the required shape."""
    harness.fake.add(harness.tool_calls(TWO_CALLS), harness.text("Both done."))
    model = harness.model()

    first = final(await collect(model, prompt("Look around")))
    log: list[ev.Event] = [
        ev.SessionStarted(session_id="s", model="x:y"),
        ev.PromptReceived(session_id="s", run_id="r", content="Look around"),
        ev.MessageCompleted(
            session_id="s",
            message_id=first.message_id,
            content=list(first.content),
            stop_reason="tool_use",
        ),
        ev.ToolCallCompleted(
            session_id="s", tool_call_id="call_B", tool_name="grep", output="3 hits"
        ),
        ev.ToolCallCompleted(
            session_id="s", tool_call_id="call_A", tool_name="read_file", output="", is_error=True
        ),
    ]
    history = replay(log).messages
    second = final(
        await collect(model, ModelRequest(system="", messages=history, tools=[], max_tokens=99))
    )

    assert second.content == (TextBlock(text="Both done."),)
    body = harness.fake.requests[1].json  # the fake answered it, so it passed its 400 checks
    if harness.provider == "anthropic":
        assistant, results = body["messages"][1], body["messages"][2]
        assert [b["id"] for b in assistant["content"] if b["type"] == "tool_use"] == [
            "call_A",
            "call_B",
        ]
        assert assistant["content"][0]["input"] == {"path": "src/main.py"}
        assert results["role"] == "user"
        assert [(b["type"], b["tool_use_id"]) for b in results["content"]] == [
            ("tool_result", "call_A"),
            ("tool_result", "call_B"),
        ]
        assert results["content"][0]["is_error"] is True
        assert results["content"][1]["content"] == "3 hits"
    else:
        assistant, *tools = body["messages"][1:]
        assert assistant["role"] == "assistant"
        assert [c["id"] for c in assistant["tool_calls"]] == ["call_A", "call_B"]
        assert assistant["tool_calls"][1]["function"] == {
            "name": "grep",
            "arguments": '{"pattern": "TODO", "max": 5}',
        }
        assert [(m["role"], m["tool_call_id"]) for m in tools] == [
            ("tool", "call_A"),
            ("tool", "call_B"),
        ]
        assert all(isinstance(m["content"], str) for m in tools)


async def test_rate_limit_with_retry_after_ms_then_success_gives_one_message(
    harness: Harness,
) -> None:
    harness.fake.add(harness.http_error(429, FAST), harness.text("fine"))
    model = harness.model()  # made before the clock starts: the first one imports the SDK

    started = time.monotonic()
    events = await collect(model, prompt())

    assert final(events).content == (TextBlock(text="fine"),)
    assert [r.retry_count for r in harness.fake.requests] == [0, 1]
    assert time.monotonic() - started < 0.4  # 10 ms asked for, not the 0.5 s backoff
    assert sum(isinstance(e, MessageStart) for e in events) == 1


@pytest.mark.parametrize("status", [500, 529])
async def test_server_errors_exhaust_retries_into_model_error(
    harness: Harness, status: int
) -> None:
    harness.fake.add(*[harness.http_error(status, FAST)] * 3)

    with pytest.raises(ModelError) as caught:
        await collect(harness.model(), prompt())

    error = caught.value
    assert error.status == status
    assert error.retryable is True
    assert error.provider == harness.provider
    assert error.request_id is not None and error.request_id.startswith("req_fake")
    assert [r.retry_count for r in harness.fake.requests] == [0, 1, 2]


@pytest.mark.parametrize("status", [400, 401])
async def test_client_errors_are_not_retried(harness: Harness, status: int) -> None:
    harness.fake.add(harness.http_error(status, FAST))

    with pytest.raises(ModelError) as caught:
        await collect(harness.model(), prompt())

    assert caught.value.status == status
    assert caught.value.retryable is False
    assert caught.value.error_type in (
        "invalid_request_error",
        "authentication_error",
        "invalid_api_key",
    )
    assert len(harness.fake.requests) == 1


async def test_wrong_key_gets_401_from_the_fake(harness: Harness) -> None:
    with pytest.raises(ModelError) as caught:
        await collect(harness.model(api_key="sk-wrong-key-000000"), prompt())

    assert caught.value.status == 401
    assert caught.value.retryable is False


async def test_a_long_retry_after_is_not_slept_on(harness: Harness) -> None:
    """A 429 asking to come back in ten minutes fails the call at once (retryable), instead of
    the SDK sleeping those ten minutes while the run shows nothing."""
    harness.fake.add(harness.http_error(429, {"retry-after": "600"}), harness.text("late"))

    with pytest.raises(ModelError) as caught:
        await asyncio.wait_for(collect(harness.model(), prompt()), timeout=60)

    assert caught.value.status == 429
    assert caught.value.retryable is True
    assert len(harness.fake.requests) == 1


async def test_a_short_retry_after_is_still_honoured(harness: Harness) -> None:
    harness.fake.add(harness.http_error(429, {"retry-after": "0.1"}), harness.text("in time"))

    events = await collect(harness.model(), prompt())

    assert final(events).content == (TextBlock(text="in time"),)
    assert len(harness.fake.requests) == 2


@pytest.mark.parametrize("status", [500, 529])
async def test_x_should_retry_false_makes_an_error_not_retryable(
    harness: Harness, status: int
) -> None:
    harness.fake.add(harness.http_error(status, {"x-should-retry": "false"}))

    with pytest.raises(ModelError) as caught:
        await collect(harness.model(), prompt())

    assert len(harness.fake.requests) == 1  # the SDK obeyed the header
    assert caught.value.retryable is False  # and so does the error the run records


async def test_a_reply_cut_off_inside_a_tool_call_ends_at_the_token_limit(
    harness: Harness,
) -> None:
    """The model ran out of tokens while writing a call's arguments: the message keeps its
    text and its stop reason and drops the call, which could not run. It is not an error to
    retry: the same request would stop in the same place."""
    harness.fake.add(
        harness.cut_in_tool_call(
            "Writing the file.", "call_w", "write_file", '{"path": "a.py", "content": "def f'
        )
    )

    events = await collect(harness.model(), prompt())

    end = final(events)
    assert end.stop_reason == "max_tokens"
    assert end.content == (TextBlock(text="Writing the file."),)


@pytest.mark.parametrize("retryable", [True, False])
async def test_mid_stream_error_is_classified_by_type(harness: Harness, retryable: bool) -> None:
    kind = harness.retryable_mid_stream if retryable else harness.fatal_mid_stream
    harness.fake.add(harness.mid_stream_error(kind))
    seen: list[str] = []

    with pytest.raises(ModelError) as caught:
        async for event in harness.model().stream(prompt()):
            if isinstance(event, Delta):
                seen.append(event.text)

    assert seen == ["Partial"]
    assert caught.value.error_type == kind
    assert caught.value.retryable is retryable
    assert caught.value.status is None
    assert len(harness.fake.requests) == 1  # mid-stream errors are never retried by the SDK


async def test_truncated_stream_is_an_error_not_a_message(harness: Harness) -> None:
    harness.fake.add(harness.truncated())

    events = []
    with pytest.raises(ModelError) as caught:
        async for event in harness.model().stream(prompt()):
            events.append(event)

    assert caught.value.error_type == "incomplete_stream"
    assert caught.value.retryable is True
    assert not any(isinstance(e, MessageEnd) for e in events)


async def test_dropped_connection_is_a_model_error(harness: Harness) -> None:
    stream = harness.text("never", "finished")
    harness.fake.add(type(stream)(stream.frames[:3], headers=stream.headers, ending="drop"))

    with pytest.raises(ModelError) as caught:
        await collect(harness.model(), prompt())

    assert caught.value.error_type == "connection_error"
    assert caught.value.retryable is True
    assert isinstance(caught.value.__cause__, Exception)
    assert not isinstance(caught.value, httpx.HTTPError | httpx2.HTTPError)
    assert len(harness.fake.requests) == 1


async def test_hangup_before_any_response_is_retried_then_reported(harness: Harness) -> None:
    from tests.fakes.http_server import Hangup

    harness.fake.add(Hangup(), Hangup())

    with pytest.raises(ModelError) as caught:
        await collect(harness.model(max_retries=1), prompt())

    assert caught.value.error_type == "connection_error"
    assert len(harness.fake.requests) == 2


async def test_read_stall_mid_body_is_a_timeout(harness: Harness) -> None:
    from tests.fakes.http_server import Pause

    stream = harness.text("slow")
    harness.fake.add(type(stream)([*stream.frames[:2], Pause(2.0)], headers=stream.headers))

    with pytest.raises(ModelError) as caught:
        await collect(harness.model(timeout=0.3), prompt())

    assert caught.value.error_type == "timeout"
    assert caught.value.retryable is True


async def test_closing_the_stream_early_closes_the_connection(harness: Harness) -> None:
    harness.fake.add(harness.slow_text(200, 0.02))
    events = harness.model().stream(prompt())

    async for event in events:
        if isinstance(event, Delta):
            break
    closed_at = time.monotonic()
    await events.aclose()  # type: ignore[attr-defined]

    request = harness.fake.requests[0]
    assert await harness.fake.wait_for(lambda: request.disconnected_at is not None, within=1.0)
    assert request.disconnected_at is not None and request.disconnected_at - closed_at < 0.5
    assert not request.finished


async def test_cancelling_the_consuming_task_closes_the_connection(harness: Harness) -> None:
    harness.fake.add(harness.slow_text(200, 0.02))
    model = harness.model()
    got_delta = asyncio.Event()

    async def consume() -> None:
        async with open_stream(model, prompt()) as events:
            async for event in events:
                if isinstance(event, Delta):
                    got_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_delta.wait(), 2)
    task.cancel()
    cancelled_at = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task

    request = harness.fake.requests[0]
    assert await harness.fake.wait_for(lambda: request.disconnected_at is not None, within=1.0)
    assert request.disconnected_at is not None and request.disconnected_at - cancelled_at < 0.5
    assert not request.finished


async def test_model_is_reusable_after_an_error(harness: Harness) -> None:
    harness.fake.add(harness.truncated(), harness.text("again"))
    model = harness.model()

    with pytest.raises(ModelError):
        await collect(model, prompt())
    assert final(await collect(model, prompt())).content == (TextBlock(text="again"),)
