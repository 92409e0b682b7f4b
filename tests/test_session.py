"""The fold (`bassi.session`): how events become a session's state."""

from __future__ import annotations

from bassi import events as ev
from bassi.messages import ToolResultBlock, ToolUseBlock, Usage
from bassi.session import SessionState, replay

SID, RID = "s", "r"


def _numbered(events: list[ev.Event]) -> list[ev.Event]:
    return [e.model_copy(update={"seq": n}) for n, e in enumerate(events, 1)]


def _asked(calls: int) -> list[ev.Event]:
    uses = [ToolUseBlock(id=f"c{i}", name="list_dir", input={"path": "."}) for i in range(calls)]
    return [
        ev.SessionStarted(session_id=SID, model="scripted"),
        ev.PromptReceived(session_id=SID, run_id=RID, content="go"),
        ev.RunStarted(session_id=SID, run_id=RID, model="scripted"),
        ev.MessageCompleted(
            session_id=SID,
            run_id=RID,
            message_id="m",
            content=uses,
            stop_reason="tool_use",
            usage=Usage(),
            model="scripted",
            provider="scripted",
        ),
    ]


def _done(i: int, output: str = "ok") -> ev.ToolCallCompleted:
    return ev.ToolCallCompleted(
        session_id=SID,
        run_id=RID,
        tool_call_id=f"c{i}",
        tool_name="list_dir",
        output=output,
        duration_ms=1,
    )


def _results(state: SessionState) -> list[tuple[str, str]]:
    last = state.messages[-1]
    return [(b.tool_use_id, b.content) for b in last.content if isinstance(b, ToolResultBlock)]


def test_thousands_of_parallel_calls_fold_into_one_turn_of_results() -> None:
    """A model may ask for many calls at once: each result joins one user turn, in order."""
    n = 2_000
    events = _asked(n)
    for i in range(n):
        events.append(
            ev.ToolCallStarted(
                session_id=SID, run_id=RID, tool_call_id=f"c{i}", tool_name="list_dir", input={}
            )
        )
        events.append(_done(i, f"out{i}"))

    state = replay(_numbered(events))

    assert state.open_tool_calls == {}
    assert [m.role for m in state.messages] == ["user", "assistant", "user"]
    assert _results(state) == [(f"c{i}", f"out{i}") for i in range(n)]


def test_a_second_result_for_a_call_already_answered_is_not_added_again() -> None:
    """Recovery or a retry may record an end for a call that has one: the history keeps the
    first, so every tool use has exactly one result."""
    events = [*_asked(2), _done(0, "first"), _done(0, "again"), _done(1)]

    state = replay(_numbered(events))

    assert _results(state) == [("c0", "first"), ("c1", "ok")]


def test_a_prompt_after_the_results_joins_their_turn_and_later_results_start_a_new_one() -> None:
    events = [*_asked(2), _done(0)]
    events.append(ev.PromptReceived(session_id=SID, run_id="r2", content="and then?"))
    events.append(_done(1))

    state = replay(_numbered(events))

    *_, joined, after = state.messages
    assert [type(b).__name__ for b in joined.content] == ["ToolResultBlock", "TextBlock"]
    assert [(b.tool_use_id) for b in after.content if isinstance(b, ToolResultBlock)] == ["c1"]
