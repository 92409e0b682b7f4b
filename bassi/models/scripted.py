"""The `scripted` model: offline and deterministic, for the demo and the tests (DESIGN.md §7).

It answers the last user message:

| message            | answer                                                            |
|--------------------|-------------------------------------------------------------------|
| `/bash CMD`        | one call `bash {"command": CMD}`; after the result, a reply quoting it |
| `/read PATH`       | `read_file {"path": PATH}`, then a reply quoting the result        |
| `/write PATH TEXT` | `write_file {"path": PATH, "content": TEXT}`, then a reply         |
| `/tools N`         | N (at most 100) parallel `list_dir {"path": "."}` calls, then a reply |
| `/stream N [MS]`   | N text deltas `t1 `, `t2 `, ... `tN`, MS milliseconds apart        |
| `/think TEXT`      | a thinking block, then TEXT                                        |
| `/fail`            | a provider error that is not retryable                             |
| `/help`            | this list, in short (the web UI has no other help for it)          |
| anything else      | `Echo #K: MESSAGE`, K = the number of user prompts so far          |

A user turn holding only tool results (the answer to its own calls) gets a reply quoting
each result: `bash returned: OUTPUT` (or `bash failed: ERROR`), one line per call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from bassi.errors import ModelError
from bassi.messages import (
    ContentBlock,
    Message,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from bassi.models.base import ModelEvent, ModelRequest
from bassi.models.playback import play

HELP = """I am the offline scripted model (no LLM behind me). I understand:
/bash CMD - run CMD with the bash tool (it asks for approval first), then quote the result
/read PATH - read a file in the workspace
/write PATH TEXT - write TEXT to a file in the workspace
/tools N - N list_dir calls at once (at most 100)
/stream N [MS] - stream N tokens, MS milliseconds apart
/think TEXT - think aloud, then say TEXT
/fail - fail as a provider would
Anything else I echo back."""


MAX_TOOLS = 100
"""Most calls `/tools N` asks for at once (more than any real model does)."""


@dataclass(frozen=True, slots=True)
class _Answer:
    content: tuple[ContentBlock, ...]
    deltas: Sequence[Sequence[str]] | None = None
    delay: float = 0.0


class ScriptedModel:
    """The offline model of DESIGN.md §7; the same history always gives the same answer."""

    provider = "scripted"

    def __init__(self, name: str = "default") -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"ScriptedModel(name={self.name!r})"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Stream the scripted answer to the last user message."""
        # Every request of a session holds more blocks than the one before (each completed
        # message or new prompt adds at least one), so the count makes ids unique per session.
        serial = sum(len(m.content) for m in request.messages)
        answer = _answer(request.messages, serial)
        words_in = sum(len(_words(m)) for m in request.messages) + len(request.system.split())
        words_out = sum(len(_block_words(b)) for b in answer.content)
        stop = (
            "tool_use" if any(isinstance(b, ToolUseBlock) for b in answer.content) else "end_turn"
        )
        async for event in play(
            answer.content,
            message_id=f"msg_scripted_{serial}",
            model=self.name,
            provider=self.provider,
            stop_reason=stop,
            usage=Usage(input_tokens=words_in, output_tokens=words_out),
            deltas=answer.deltas,
            delay=answer.delay,
        ):
            yield event


def _answer(messages: Sequence[Message], serial: int) -> _Answer:
    last = messages[-1] if messages else None
    if last is None or last.role != "user":
        return _text("Echo #0: ")
    texts = [b.text for b in last.content if isinstance(b, TextBlock)]
    if texts:
        prompts = sum(
            1 for m in messages if m.role == "user" for b in m.content if isinstance(b, TextBlock)
        )
        return _command(texts[-1], prompts, serial)
    results = [b for b in last.content if isinstance(b, ToolResultBlock)]
    return _text(_quote(results, messages))


def _command(text: str, prompts: int, serial: int) -> _Answer:
    command, _, rest = text.strip().partition(" ")
    rest = rest.strip()

    def call(name: str, args: dict[str, Any], i: int = 0) -> ToolUseBlock:
        return ToolUseBlock(id=f"toolu_scripted_{serial}_{i}", name=name, input=args)

    match command:
        case "/bash" if rest:
            return _Answer((call("bash", {"command": rest}),))
        case "/read" if rest:
            return _Answer((call("read_file", {"path": rest}),))
        case "/write" if rest:
            path, _, content = rest.partition(" ")
            return _Answer((call("write_file", {"path": path, "content": content}),))
        case "/tools" if rest.isdigit() and 0 < int(rest) <= MAX_TOOLS:
            return _Answer(tuple(call("list_dir", {"path": "."}, i) for i in range(int(rest))))
        case "/tools" if rest.isdigit() and int(rest) > MAX_TOOLS:
            return _text(f"/tools takes from 1 to {MAX_TOOLS} calls, not {rest}")
        case "/stream" if (args := _stream_args(rest)) is not None:
            count, ms = args
            tokens = [f"t{i} " for i in range(1, count)] + [f"t{count}"]
            return _Answer((TextBlock(text="".join(tokens)),), deltas=[tokens], delay=ms / 1000)
        case "/think" if rest:
            thinking = ThinkingBlock(thinking=f"The user wants me to say: {rest}")
            return _Answer((thinking, TextBlock(text=rest)))
        case "/help" if not rest:
            return _text(HELP)
        case "/fail" if not rest:
            raise ModelError(
                "scripted failure (/fail)",
                provider="scripted",
                error_type="scripted_failure",
                retryable=False,
            )
    return _text(f"Echo #{prompts}: {text}")


def _stream_args(rest: str) -> tuple[int, int] | None:
    parts = rest.split()
    if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts):
        return None
    count, ms = int(parts[0]), int(parts[1]) if len(parts) == 2 else 0
    return (count, ms) if count > 0 else None


def _quote(results: Sequence[ToolResultBlock], messages: Sequence[Message]) -> str:
    names = {u.id: u.name for m in messages if m.role == "assistant" for u in m.tool_uses}
    lines = []
    for r in results:
        name = names.get(r.tool_use_id, "tool")
        lines.append(f"{name} {'failed' if r.is_error else 'returned'}: {r.content}")
    return "\n".join(lines)


def _text(text: str) -> _Answer:
    return _Answer((TextBlock(text=text),))


def _words(message: Message) -> list[str]:
    return [w for b in message.content for w in _block_words(b)]


def _block_words(block: ContentBlock) -> list[str]:
    if isinstance(block, TextBlock):
        return block.text.split()
    if isinstance(block, ThinkingBlock):
        return block.thinking.split()
    if isinstance(block, ToolResultBlock):
        return block.content.split()
    return [block.name, *str(block.input).split()]
