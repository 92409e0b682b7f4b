"""The scripted model, row by row of DESIGN.md §7's table, and `FunctionModel`."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from bassi import events as ev
from bassi.errors import ModelError
from bassi.messages import Message, TextBlock, ThinkingBlock, ToolResultBlock, ToolUseBlock, Usage
from bassi.models.base import (
    BlockStart,
    BlockStop,
    Delta,
    MessageEnd,
    MessageStart,
    ModelEvent,
    ModelRequest,
)
from bassi.models.function import FunctionModel
from bassi.models.registry import get_model
from bassi.session import replay
from tests.models.harness import collect, final


def user(*blocks: TextBlock | ToolResultBlock) -> Message:
    return Message(role="user", content=blocks)


def ask(*messages: Message) -> ModelRequest:
    return ModelRequest(system="", messages=messages, tools=[], max_tokens=100)


async def answer(*messages: Message) -> MessageEnd:
    return final(await collect(get_model("scripted"), ask(*messages)))


async def test_anything_else_is_echoed_with_the_prompt_count() -> None:
    end = await answer(user(TextBlock(text="hello there")))
    assert end.content == (TextBlock(text="Echo #1: hello there"),)
    assert end.stop_reason == "end_turn"
    assert (end.provider, end.model) == ("scripted", "default")


async def test_echo_counts_every_user_prompt_so_far() -> None:
    history = (
        user(TextBlock(text="one")),
        Message(role="assistant", content=(TextBlock(text="Echo #1: one"),)),
        user(TextBlock(text="/bash ls")),
        Message(
            role="assistant", content=(ToolUseBlock(id="t1", name="bash", input={"command": "ls"}),)
        ),
        # a prompt that arrives after tool results joins their user turn
        user(ToolResultBlock(tool_use_id="t1", content="a b"), TextBlock(text="three")),
    )
    end = await answer(*history)
    assert end.content == (TextBlock(text="Echo #3: three"),)


@pytest.mark.parametrize(
    ("prompt", "name", "args"),
    [
        ("/bash ls -la | wc -l", "bash", {"command": "ls -la | wc -l"}),
        ("/read src/main.py", "read_file", {"path": "src/main.py"}),
        (
            "/write notes.txt hello  world",
            "write_file",
            {"path": "notes.txt", "content": "hello  world"},
        ),
    ],
)
async def test_tool_commands_call_one_tool_then_quote_its_result(
    prompt: str, name: str, args: dict[str, str]
) -> None:
    first = await answer(user(TextBlock(text=prompt)))

    assert first.stop_reason == "tool_use"
    [call] = first.content
    assert isinstance(call, ToolUseBlock)
    assert (call.name, call.input) == (name, args)

    second = await answer(
        user(TextBlock(text=prompt)),
        Message(role="assistant", content=first.content),
        user(ToolResultBlock(tool_use_id=call.id, content="OUTPUT 42")),
    )
    assert second.content == (TextBlock(text=f"{name} returned: OUTPUT 42"),)
    assert second.stop_reason == "end_turn"


async def test_a_failed_tool_is_quoted_as_failed() -> None:
    first = await answer(user(TextBlock(text="/bash false")))
    second = await answer(
        user(TextBlock(text="/bash false")),
        Message(role="assistant", content=first.content),
        user(ToolResultBlock(tool_use_id=first.content[0].id, content="exit 1", is_error=True)),  # type: ignore[union-attr]
    )
    assert second.content == (TextBlock(text="bash failed: exit 1"),)


async def test_tools_n_makes_n_parallel_list_dir_calls_with_distinct_ids() -> None:
    first = await answer(user(TextBlock(text="/tools 3")))

    calls = [b for b in first.content if isinstance(b, ToolUseBlock)]
    assert [(c.name, c.input) for c in calls] == [("list_dir", {"path": "."})] * 3
    assert len({c.id for c in calls}) == 3

    results = tuple(
        ToolResultBlock(tool_use_id=c.id, content=f"dir{i}") for i, c in enumerate(calls)
    )
    second = await answer(
        user(TextBlock(text="/tools 3")),
        Message(role="assistant", content=first.content),
        user(*results),
    )
    assert second.content == (
        TextBlock(text="list_dir returned: dir0\nlist_dir returned: dir1\nlist_dir returned: dir2"),
    )


async def test_tools_n_is_bounded() -> None:
    end = await answer(user(TextBlock(text="/tools 99999")))
    assert end.content == (TextBlock(text="/tools takes from 1 to 100 calls, not 99999"),)
    assert not any(isinstance(b, ToolUseBlock) for b in end.content)


async def test_stream_n_emits_n_tokens() -> None:
    events = await collect(get_model("scripted"), ask(user(TextBlock(text="/stream 4"))))

    deltas = [e.text for e in events if isinstance(e, Delta)]
    assert deltas == ["t1 ", "t2 ", "t3 ", "t4"]
    assert final(events).content == (TextBlock(text="t1 t2 t3 t4"),)


async def test_stream_n_ms_spaces_the_tokens() -> None:
    stamps: list[float] = []
    async for event in get_model("scripted").stream(ask(user(TextBlock(text="/stream 5 30")))):
        if isinstance(event, Delta):
            stamps.append(time.monotonic())

    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(stamps) == 5
    assert all(g >= 0.025 for g in gaps), gaps


async def test_think_gives_a_thinking_block_then_the_text() -> None:
    events = await collect(
        get_model("scripted"), ask(user(TextBlock(text="/think the answer is 4")))
    )

    end = final(events)
    assert isinstance(end.content[0], ThinkingBlock) and end.content[0].thinking
    assert end.content[1] == TextBlock(text="the answer is 4")
    assert [e for e in events if isinstance(e, BlockStart)] == [
        BlockStart(0, "thinking"),
        BlockStart(1, "text"),
    ]
    assert {e.channel for e in events if isinstance(e, Delta) and e.index == 0} == {"thinking"}


async def test_fail_raises_a_non_retryable_model_error() -> None:
    with pytest.raises(ModelError) as caught:
        await answer(user(TextBlock(text="/fail")))
    assert caught.value.retryable is False
    assert caught.value.provider == "scripted"


async def test_help_lists_every_command_it_understands() -> None:
    [block] = (await answer(user(TextBlock(text="/help")))).content
    assert isinstance(block, TextBlock)
    for command in ("/bash", "/read", "/write", "/tools", "/stream", "/think", "/fail"):
        assert f"\n{command} " in block.text


@pytest.mark.parametrize(
    "prompt",
    ["/tools 0", "/tools x", "/stream", "/stream 2 3 4", "/bash", "/fail now", "/help me", "/x"],
)
async def test_malformed_commands_are_echoed(prompt: str) -> None:
    end = await answer(user(TextBlock(text=prompt)))
    assert end.content == (TextBlock(text=f"Echo #1: {prompt}"),)


async def test_events_are_well_formed_and_deltas_join_to_the_blocks() -> None:
    events = await collect(
        get_model("scripted"), ask(user(TextBlock(text="/write a.txt some text here")))
    )
    assert isinstance(events[0], MessageStart)
    end = final(events)
    for index, block in enumerate(end.content):
        assert BlockStart(index, "tool_use", block.id, block.name) in events  # type: ignore[union-attr]
        assert BlockStop(index) in events
        joined = "".join(e.text for e in events if isinstance(e, Delta) and e.index == index)
        assert joined == '{"path": "a.txt", "content": "some text here"}'


async def test_a_whole_session_is_deterministic_with_unique_ids() -> None:
    """Run prompts through the real fold twice: same answers, and no id repeats."""

    async def run() -> list[MessageEnd]:
        model = get_model("scripted")
        log: list[ev.Event] = [ev.SessionStarted(session_id="s", model="scripted")]
        ends = []
        for text in ["/bash echo hi", "/tools 2", "hello", "/bash echo again"]:
            log.append(ev.PromptReceived(session_id="s", run_id="r", content=text))
            while True:
                state = replay(log)
                end = final(await collect(model, ask(*state.messages)))
                ends.append(end)
                log.append(
                    ev.MessageCompleted(
                        session_id="s",
                        message_id=end.message_id,
                        content=list(end.content),
                        stop_reason=end.stop_reason,
                    )
                )
                calls = [b for b in end.content if isinstance(b, ToolUseBlock)]
                if not calls:
                    break
                for call in calls:
                    log.append(
                        ev.ToolCallCompleted(
                            session_id="s", tool_call_id=call.id, tool_name=call.name, output="ok"
                        )
                    )
        return ends

    first, second = await run(), await run()
    assert first == second
    message_ids = [e.message_id for e in first]
    tool_ids = [b.id for e in first for b in e.content if isinstance(b, ToolUseBlock)]
    assert len(set(message_ids)) == len(message_ids)
    assert len(set(tool_ids)) == len(tool_ids) == 4
    assert [e.content[0].text for e in first if isinstance(e.content[0], TextBlock)] == [
        "bash returned: ok",
        "list_dir returned: ok\nlist_dir returned: ok",
        "Echo #3: hello",
        "bash returned: ok",
    ]


# --- FunctionModel ---------------------------------------------------------------------------


async def test_function_model_plays_back_text_and_records_requests() -> None:
    model = FunctionModel(lambda request: f"you said {request.messages[-1].text}")
    request = ask(user(TextBlock(text="hi")))

    end = final(await collect(model, request))

    assert end.content == (TextBlock(text="you said hi"),)
    assert model.requests == [request]
    assert (end.provider, end.model) == ("function", "function")


async def test_function_model_accepts_blocks_and_async_functions() -> None:
    async def reply(request: ModelRequest) -> list[TextBlock | ToolUseBlock]:
        return [
            TextBlock(text="Let me check."),
            ToolUseBlock(id="c1", name="grep", input={"q": "x"}),
        ]

    end = final(await collect(FunctionModel(reply), ask(user(TextBlock(text="hi")))))

    assert end.stop_reason == "tool_use"
    assert end.content[1] == ToolUseBlock(id="c1", name="grep", input={"q": "x"})


async def test_function_model_passes_events_through_verbatim() -> None:
    script: list[ModelEvent] = [
        MessageStart("m1", "x", "function"),
        BlockStart(0, "text"),
        Delta(0, "text", "par"),
    ]

    def broken(request: ModelRequest) -> Iterator[ModelEvent]:
        yield from script
        raise ModelError("overloaded", error_type="overloaded_error", retryable=True)

    seen: list[ModelEvent] = []
    with pytest.raises(ModelError, match="overloaded"):
        async for event in FunctionModel(broken).stream(ask(user(TextBlock(text="hi")))):
            seen.append(event)
    assert seen == script


async def test_function_model_accepts_async_generators() -> None:
    async def gen(request: ModelRequest) -> AsyncIterator[ModelEvent]:
        yield MessageStart("m", "x", "function")
        yield MessageEnd(
            "m", (TextBlock(text="done"),), "end_turn", Usage(output_tokens=1), "x", "function"
        )

    events = await collect(FunctionModel(gen), ask(user(TextBlock(text="hi"))))
    assert final(events).content == (TextBlock(text="done"),)
