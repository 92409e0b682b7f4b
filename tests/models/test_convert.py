"""The neutral history as provider messages, including histories the fold never makes."""

from __future__ import annotations

from bassi.messages import Message, TextBlock, ThinkingBlock, ToolResultBlock, ToolUseBlock
from bassi.models.convert import (
    MISSING_RESULT,
    REDACTED_THINKING,
    anthropic_messages,
    normalize,
    openai_messages,
)

USE_A = ToolUseBlock(id="a", name="bash", input={"command": "ls"})
USE_B = ToolUseBlock(id="b", name="list_dir", input={"path": "."})


def user(*blocks: TextBlock | ToolResultBlock) -> Message:
    return Message(role="user", content=blocks)


def assistant(*blocks: TextBlock | ThinkingBlock | ToolUseBlock) -> Message:
    return Message(role="assistant", content=blocks)


def test_a_tool_use_without_result_gets_an_error_result() -> None:
    history = [
        user(TextBlock(text="go")),
        assistant(USE_A, USE_B),
        user(ToolResultBlock(tool_use_id="b", content="x")),
    ]

    fixed = normalize(history)

    assert fixed[2].content == (
        ToolResultBlock(tool_use_id="a", content=MISSING_RESULT, is_error=True),
        ToolResultBlock(tool_use_id="b", content="x"),
    )


def test_results_come_first_and_orphans_become_text() -> None:
    history = [
        user(TextBlock(text="go")),
        assistant(USE_A),
        user(TextBlock(text="also this"), ToolResultBlock(tool_use_id="a", content="ok")),
        assistant(TextBlock(text="fine")),
        user(ToolResultBlock(tool_use_id="zzz", content="stray")),
    ]

    fixed = normalize(history)

    assert fixed[2].content == (
        ToolResultBlock(tool_use_id="a", content="ok"),
        TextBlock(text="also this"),
    )
    assert fixed[4].content == (TextBlock(text="[tool result zzz] stray"),)


def test_blank_text_and_empty_turns_are_dropped_and_same_roles_merged() -> None:
    history = [
        user(TextBlock(text="one")),
        assistant(TextBlock(text="  ")),
        user(TextBlock(text="two")),
        assistant(USE_A),
    ]

    fixed = normalize(history)

    assert [m.role for m in fixed] == ["user", "assistant", "user"]
    assert fixed[0].content == (TextBlock(text="one"), TextBlock(text="two"))
    assert fixed[2].content == (
        ToolResultBlock(tool_use_id="a", content=MISSING_RESULT, is_error=True),
    )


def test_anthropic_keeps_signed_thinking_and_drops_unsigned() -> None:
    history = [
        user(TextBlock(text="q")),
        assistant(
            ThinkingBlock(thinking="mine", signature="sig"),
            ThinkingBlock(thinking="", signature=REDACTED_THINKING + "xyz"),
            ThinkingBlock(thinking="from deepseek"),
            USE_A,
        ),
        user(ToolResultBlock(tool_use_id="a", content="", is_error=True)),
    ]

    out = anthropic_messages(history)

    assert out[1]["content"] == [
        {"type": "thinking", "thinking": "mine", "signature": "sig"},
        {"type": "redacted_thinking", "data": "xyz"},
        {"type": "tool_use", "id": "a", "name": "bash", "input": {"command": "ls"}},
    ]
    assert out[2]["content"] == [{"type": "tool_result", "tool_use_id": "a", "is_error": True}]


def test_anthropic_merges_turns_left_adjacent_by_dropped_thinking() -> None:
    history = [
        user(TextBlock(text="q")),
        assistant(ThinkingBlock(thinking="unsigned")),
        user(TextBlock(text="r")),
    ]

    out = anthropic_messages(history)

    assert out == [
        {"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "text", "text": "r"}]},
    ]


def test_openai_messages_shape() -> None:
    history = [
        user(TextBlock(text="q")),
        assistant(ThinkingBlock(thinking="hmm"), TextBlock(text="Checking."), USE_A),
        user(
            ToolResultBlock(tool_use_id="a", content="boom", is_error=True), TextBlock(text="and?")
        ),
    ]

    plain = openai_messages("sys", history)
    replaying = openai_messages("sys", history, replay_reasoning=True)

    assert plain == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "a",
                    "type": "function",
                    "function": {"name": "bash", "arguments": '{"command": "ls"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "Error: boom"},
        {"role": "user", "content": "and?"},
    ]
    assert replaying[2]["reasoning_content"] == "hmm"
    assert "reasoning_content" not in plain[2]


def test_openai_assistant_with_only_tool_calls_has_null_content() -> None:
    out = openai_messages("", [user(TextBlock(text="q")), assistant(USE_B)])
    assert out[1]["content"] is None
    assert out[2] == {"role": "tool", "tool_call_id": "b", "content": f"Error: {MISSING_RESULT}"}
