"""OpenAI-compatible specifics: tool-call assembly, reasoning, usage placements, finishes, framing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest

from bassi.errors import ModelError
from bassi.messages import Message, TextBlock, ThinkingBlock, ToolResultBlock, ToolUseBlock, Usage
from bassi.models.base import BlockStart, Delta, ModelRequest
from bassi.models.openai_compat import OpenAICompatModel
from tests.fakes import openai_server as O
from tests.models.harness import API_KEY, collect, final, prompt


@pytest.fixture
async def model(openai_fake: O.OpenAIFake) -> AsyncIterator[OpenAICompatModel]:
    made = OpenAICompatModel("gpt-fake-1", api_key=API_KEY, base_url=openai_fake.url)
    yield made
    await made.aclose()


async def test_interleaved_tool_call_fragments_are_assembled_by_index(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel
) -> None:
    openai_fake.add(
        O.stream(
            O.tool_call_chunks(
                [O.call_start(0, "call_A", "read_file"), O.call_start(1, "call_B", "grep")],
                [O.call_args(1, '{"pattern": '), O.call_args(0, '{"path"')],
                [O.call_args(0, ': "a.py"}')],
                [O.call_args(1, '"TODO"}')],
            )
        )
    )

    end = final(await collect(model, prompt()))

    assert end.content == (
        ToolUseBlock(id="call_A", name="read_file", input={"path": "a.py"}),
        ToolUseBlock(id="call_B", name="grep", input={"pattern": "TODO"}),
    )


async def test_out_of_order_indexes_do_not_break_assembly(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel
) -> None:
    """The SDK's own helper raises IndexError here; the adapter's accumulator must not."""
    openai_fake.add(
        O.stream(
            O.tool_call_chunks(
                [O.call_start(1, "call_B", "grep")],
                [O.call_start(0, "call_A", "list_dir"), O.call_args(1, "{}")],
                [O.call_args(0, '{"path": "."}')],
            )
        )
    )

    end = final(await collect(model, prompt()))

    assert end.content == (
        ToolUseBlock(id="call_B", name="grep", input={}),
        ToolUseBlock(id="call_A", name="list_dir", input={"path": "."}),
    )
    assert end.stop_reason == "tool_use"


async def test_several_whole_calls_in_one_chunk(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel
) -> None:
    whole = [
        {
            **O.call_start(i, f"call_{i}", "list_dir"),
            "function": {"name": "list_dir", "arguments": '{"path": "."}'},
        }
        for i in range(3)
    ]
    openai_fake.add(O.stream(O.tool_call_chunks(whole)))

    end = final(await collect(model, prompt()))

    assert [b.id for b in end.content if isinstance(b, ToolUseBlock)] == [
        "call_0",
        "call_1",
        "call_2",
    ]


async def test_calls_without_ids_get_one_id_from_start_to_end(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel
) -> None:
    """Some servers send tool calls with an index but no id. The made-up id must be the same
    in the block's start (which the UI keys its tool card by) and in the final message, and
    differ between calls."""
    nameless = [
        {"index": 0, "type": "function", "function": {"name": "list_dir", "arguments": "{}"}},
        {"index": 1, "type": "function", "function": {"name": "grep", "arguments": "{}"}},
    ]
    openai_fake.add(O.stream(O.tool_call_chunks(nameless)))

    events = await collect(model, prompt())

    starts = [e.tool_call_id for e in events if isinstance(e, BlockStart)]
    calls = [b for b in final(events).content if isinstance(b, ToolUseBlock)]
    assert starts == [c.id for c in calls]
    assert all(starts) and len(set(starts)) == 2
    assert all(len(i) <= 40 and i.replace("_", "").isalnum() for i in starts)


async def test_calls_that_all_come_as_index_0_are_kept_apart_by_their_ids(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel
) -> None:
    """Some OpenAI-compatible servers number every whole call 0; their ids tell them apart."""
    openai_fake.add(
        O.stream(
            O.tool_call_chunks(
                [O.call_start(0, "call_a", "list_dir")],
                [O.call_args(0, '{"path": "."}')],
                [O.call_start(0, "call_b", "grep")],
                [O.call_args(0, '{"pattern": "x"}')],
            )
        )
    )

    end = final(await collect(model, prompt()))

    assert end.content == (
        ToolUseBlock(id="call_a", name="list_dir", input={"path": "."}),
        ToolUseBlock(id="call_b", name="grep", input={"pattern": "x"}),
    )


async def test_a_refusal_is_text_and_its_stop_reason_says_so(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel
) -> None:
    frames = [
        O.chunk({"role": "assistant", "content": None, "refusal": ""}),
        O.chunk({"refusal": "I can't help "}),
        O.chunk({"refusal": "with that."}),
        O.chunk({}, finish_reason="stop"),
        O.chunk(usage=O.usage(), choices=False),
        O.DONE,
    ]
    openai_fake.add(O.stream(frames))

    end = final(await collect(model, prompt()))

    assert end.content == (TextBlock(text="I can't help with that."),)
    assert end.stop_reason == "refusal"


async def test_arguments_that_are_not_json_are_a_clear_error(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel
) -> None:
    openai_fake.add(
        O.stream(
            O.tool_call_chunks([O.call_start(0, "call_X", "bash")], [O.call_args(0, "ls -la")])
        )
    )

    with pytest.raises(
        ModelError, match=r"bash \(call_X\) are not a JSON object: 'ls -la'"
    ) as caught:
        await collect(model, prompt())
    assert caught.value.error_type == "invalid_tool_input"


async def test_text_before_tool_calls_and_stop_finish_still_means_tool_use(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel
) -> None:
    frames = [
        O.chunk({"role": "assistant", "content": "Let me look."}),
        O.chunk({"tool_calls": [O.call_start(0, "call_1", "list_dir")]}),
        O.chunk({"tool_calls": [O.call_args(0, "{}")]}),
        O.chunk({}, finish_reason="stop"),
        O.DONE,
    ]
    openai_fake.add(O.stream(frames))

    events = await collect(model, prompt())

    end = final(events)
    assert end.content == (
        TextBlock(text="Let me look."),
        ToolUseBlock(id="call_1", name="list_dir", input={}),
    )
    assert end.stop_reason == "tool_use"
    assert end.usage == Usage()  # no usage chunk was sent
    assert [e for e in events if isinstance(e, BlockStart)] == [
        BlockStart(0, "text"),
        BlockStart(1, "tool_use", "call_1", "list_dir"),
    ]


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("eos_custom", "eos_custom"),
    ],
)
async def test_finish_reasons_map_to_stop_reasons(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel, finish: str, stop: str
) -> None:
    openai_fake.add(O.stream(O.text_chunks("cut", finish_reason=finish)))

    end = final(await collect(model, prompt()))

    assert end.stop_reason == stop
    assert end.content == (TextBlock(text="cut"),)


async def test_deepseek_reasoning_is_thinking_and_goes_back_as_reasoning_content() -> None:
    async with O.OpenAIFake(api_key=API_KEY, deepseek=True) as fake:
        ds = OpenAICompatModel(
            "deepseek-reasoner", provider="deepseek", api_key=API_KEY, base_url=fake.url
        )
        ds_usage = {
            "prompt_tokens": 50,
            "completion_tokens": 30,
            "total_tokens": 80,
            "prompt_cache_hit_tokens": 32,
            "prompt_cache_miss_tokens": 18,
        }
        fake.add(
            O.stream(
                [
                    O.chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
                    O.chunk({"content": None, "reasoning_content": "Need the file first."}),
                    O.chunk(
                        {
                            "reasoning_content": None,
                            "tool_calls": [O.call_start(0, "call_ds_0", "read_file")],
                        }
                    ),
                    O.chunk({"tool_calls": [O.call_args(0, '{"path":"a.py"}')]}),
                    O.chunk({"content": ""}, finish_reason="tool_calls", usage=ds_usage),
                    O.DONE,
                ]
            ),
            O.stream(O.text_chunks("Done.")),
        )

        events = await collect(ds, prompt())
        end = final(events)
        assert end.content == (
            ThinkingBlock(thinking="Need the file first."),
            ToolUseBlock(id="call_ds_0", name="read_file", input={"path": "a.py"}),
        )
        assert [e.text for e in events if isinstance(e, Delta) and e.channel == "thinking"] == [
            "Need the file first."
        ]
        assert end.usage == Usage(input_tokens=18, output_tokens=30, cache_read_tokens=32)

        history = [
            *prompt().messages,
            Message(role="assistant", content=end.content),
            Message(role="user", content=(ToolResultBlock(tool_use_id="call_ds_0", content="x"),)),
        ]
        follow_up = ModelRequest(system="", messages=history, tools=[], max_tokens=50)
        final(await collect(ds, follow_up))
        assistant = fake.bodies[1]["messages"][1]
        assert assistant["reasoning_content"] == "Need the file first."
        assert fake.bodies[1]["max_tokens"] == 50

        # The same history without the reasoning (as plain OpenAI sends it) is refused.
        plain = OpenAICompatModel(
            "deepseek-reasoner", provider="openai", api_key=API_KEY, base_url=fake.url
        )
        with pytest.raises(ModelError, match="reasoning_content") as caught:
            await collect(plain, follow_up)
        assert caught.value.status == 400
        await ds.aclose()
        await plain.aclose()


async def test_moonshot_usage_inside_the_choice(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel
) -> None:
    inner = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, "cached_tokens": 4}
    frames = [
        O.chunk({"role": "assistant", "content": "Hi"}),
        O.chunk({}, finish_reason="stop", choice_extra={"usage": inner}),
        O.DONE,
    ]
    openai_fake.add(O.stream(frames))

    end = final(await collect(model, prompt()))

    assert end.usage == Usage(input_tokens=8, output_tokens=3, cache_read_tokens=4)


async def test_usage_on_the_finish_chunk_and_cached_prompt_tokens(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel
) -> None:
    frames = [
        O.chunk({"role": "assistant", "content": "Hi"}),
        O.chunk({}, finish_reason="stop", usage=O.usage(100, 9, cached=60)),
        O.DONE,
    ]
    openai_fake.add(O.stream(frames))

    assert final(await collect(model, prompt())).usage == Usage(
        input_tokens=40, output_tokens=9, cache_read_tokens=60
    )


async def test_keep_alive_comments_crlf_and_data_after_done(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel
) -> None:
    frames = [f.replace(b"\n", b"\r\n") for f in O.text_chunks("a", "b")]
    junk = O.chunk({"content": "IGNORED"})
    openai_fake.add(O.stream([b": keep-alive\n\n", *frames, junk], chunk_size=3))

    end = final(await collect(model, prompt()))

    assert end.content == (TextBlock(text="ab"),)


async def test_mid_stream_error_followed_by_done(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel
) -> None:
    frames = [*O.text_chunks("Partial", finish_reason=None), O.error_chunk("server_error"), O.DONE]
    openai_fake.add(O.stream(frames))

    with pytest.raises(ModelError) as caught:
        await collect(model, prompt())

    assert caught.value.error_type == "server_error"
    assert caught.value.retryable is True
    assert len(openai_fake.requests) == 1


async def test_insufficient_quota_is_not_retryable(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel
) -> None:
    openai_fake.add(
        O.error(
            429,
            "insufficient_quota",
            "You exceeded your quota",
            code="insufficient_quota",
            headers={"x-should-retry": "false"},
        )
    )

    with pytest.raises(ModelError) as caught:
        await collect(model, prompt())

    assert caught.value.status == 429
    assert caught.value.error_type == "insufficient_quota"
    assert caught.value.retryable is False
    assert len(openai_fake.requests) == 1


async def test_rate_limit_with_retry_after_seconds(
    openai_fake: O.OpenAIFake, model: OpenAICompatModel
) -> None:
    openai_fake.add(
        O.error(429, "requests", code="rate_limit_exceeded", headers={"retry-after": "0.2"}),
        O.stream(O.text_chunks("ok")),
    )

    final(await collect(model, prompt()))

    first, second = openai_fake.requests
    assert second.received_at - first.received_at >= 0.18
    assert second.retry_count == 1


async def test_ollama_needs_no_key() -> None:
    async with O.OpenAIFake() as open_fake:
        local = OpenAICompatModel("llama3", provider="ollama", base_url=open_fake.url)
        open_fake.add(O.stream(O.text_chunks("local")))
        assert final(await collect(local, prompt())).content == (TextBlock(text="local"),)
        assert open_fake.bodies[0]["max_tokens"] == 256
        await local.aclose()


@pytest.mark.parametrize(
    "messages",
    [
        [  # tool_calls without tool messages
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "x", "arguments": "{}"}}
                ],
            },
            {"role": "user", "content": "and?"},
        ],
        [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "c9", "content": "?"}],
    ],
)
async def test_fake_answers_400_to_a_broken_tool_structure(
    openai_fake: O.OpenAIFake, messages: list[dict[str, object]]
) -> None:
    async with openai.AsyncOpenAI(base_url=openai_fake.url, api_key=API_KEY) as client:
        with pytest.raises(openai.BadRequestError, match="tool"):
            await client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    assert len(openai_fake.requests) == 1
