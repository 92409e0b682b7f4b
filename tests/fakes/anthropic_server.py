"""A fake Anthropic Messages API (`POST /v1/messages`, SSE) on 127.0.0.1.

Speaks the wire protocol of /work/shared/provider-wire-protocols.md §1: named SSE events whose
JSON `type` matches, `request-id` headers, JSON error bodies. Like the real API it answers 400
when a request breaks the tool-use structure (a `tool_use` without a `tool_result` in the next
user message, a `tool_result` without its `tool_use`) or alters a thinking block it sent.

    async with AnthropicFake() as fake:
        fake.add(stream(text("Hello")))
        client = anthropic.AsyncAnthropic(base_url=fake.url, api_key="test")
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.http_server import FakeServer, Pause, Recorded, Reply, Response, Stream, sse

_ids = itertools.count(1)


# --- what a message holds --------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """A text block streamed as these pieces."""

    pieces: Sequence[str]


@dataclass(frozen=True)
class ToolUse:
    """A tool_use block whose input JSON is streamed as these fragments."""

    id: str
    name: str
    json_pieces: Sequence[str]


@dataclass(frozen=True)
class Thinking:
    """A thinking block: text pieces, then a signature delta."""

    pieces: Sequence[str]
    signature: str


@dataclass(frozen=True)
class RedactedThinking:
    """A redacted_thinking block (start and stop only)."""

    data: str


Block = Text | ToolUse | Thinking | RedactedThinking


def text(*pieces: str) -> Text:
    """A text block."""
    return Text(pieces)


def events(
    *blocks: Block,
    stop_reason: str | None = "end_turn",
    usage: Mapping[str, int] | None = None,
    output_tokens: int = 10,
    message_id: str | None = None,
    model: str = "claude-fake-1",
    ping: bool = True,
) -> list[bytes]:
    """The SSE frames of a whole message: message_start ... message_stop.

    `stop_reason=None` leaves out message_delta and message_stop (a truncated stream).
    """
    start_usage = {
        "input_tokens": 25,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
        **(usage or {}),
    }
    message = {
        "id": message_id or f"msg_fake_{next(_ids):04d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    out = [_event({"type": "message_start", "message": message})]
    if ping:
        out.append(_event({"type": "ping"}))
    for index, block in enumerate(blocks):
        out.extend(_block(index, block))
    if stop_reason is not None:
        out.append(
            _event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                }
            )
        )
        out.append(_event({"type": "message_stop"}))
    return out


def _block(index: int, block: Block) -> list[bytes]:
    def delta(d: dict[str, Any]) -> bytes:
        return _event({"type": "content_block_delta", "index": index, "delta": d})

    match block:
        case Text(pieces):
            start = {"type": "text", "text": ""}
            deltas = [delta({"type": "text_delta", "text": p}) for p in pieces]
        case ToolUse(id, name, pieces):
            start = {"type": "tool_use", "id": id, "name": name, "input": {}}
            deltas = [delta({"type": "input_json_delta", "partial_json": p}) for p in pieces]
        case Thinking(pieces, signature):
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [delta({"type": "thinking_delta", "thinking": p}) for p in pieces]
            deltas.append(delta({"type": "signature_delta", "signature": signature}))
        case RedactedThinking(data):
            start = {"type": "redacted_thinking", "data": data}
            deltas = []
    return [
        _event({"type": "content_block_start", "index": index, "content_block": start}),
        *deltas,
        _event({"type": "content_block_stop", "index": index}),
    ]


def _event(data: Mapping[str, Any]) -> bytes:
    return sse(data, event=str(data["type"]))


def error_event(error_type: str, message: str = "Overloaded") -> bytes:
    """A mid-stream `event: error` frame."""
    return _event(
        {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": "req_err",
        }
    )


def stream(frames: Iterable[bytes | Pause], **options: Any) -> Stream:
    """A 200 SSE response with a `request-id` header."""
    headers = {"request-id": f"req_fake_{next(_ids):04d}", **options.pop("headers", {})}
    return Stream(list(frames), headers=headers, **options)


def error(
    status: int, error_type: str, message: str = "error", headers: Mapping[str, str] | None = None
) -> Reply:
    """An HTTP error with Anthropic's JSON body and a `request-id` header."""
    request_id = f"req_fake_{next(_ids):04d}"
    body = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }
    return Reply(status, body, headers={"request-id": request_id, **(headers or {})})


def _invalid(message: str) -> Reply:
    return error(400, "invalid_request_error", message)


# --- the server ------------------------------------------------------------------------------


@dataclass
class _Emitted:
    """What the fake sent in one message: its thinking blocks and tool_use ids."""

    thinking: list[dict[str, Any]] = field(default_factory=list)
    tool_ids: list[str] = field(default_factory=list)


class AnthropicFake(FakeServer):
    """The fake Messages API; `url` is the SDK's `base_url` (no `/v1`)."""

    def __init__(self, *, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        """When set, requests must carry it (`x-api-key` or `Authorization: Bearer`)."""
        self._emitted: dict[str, _Emitted] = {}
        """By tool_use id: the message that id was sent in."""

    @property
    def url(self) -> str:
        """The SDK's `base_url`."""
        return self.origin

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of every request to /v1/messages, in order."""
        return [r.json for r in self.requests if r.path == "/v1/messages"]

    def check(self, request: Recorded) -> Response | None:
        if request.method != "POST" or request.path != "/v1/messages":
            return error(404, "not_found_error", f"no route {request.method} {request.path}")
        if self.api_key is not None:
            given = request.headers.get("x-api-key") or request.headers.get(
                "authorization", ""
            ).removeprefix("Bearer ")
            if given != self.api_key:
                return error(401, "authentication_error", "invalid x-api-key")
        try:
            body = request.json
        except ValueError:
            return _invalid("request body is not valid JSON")
        return self._check_body(body)

    def _check_body(self, body: dict[str, Any]) -> Response | None:
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                return _invalid(f"{name}: Field required")
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            return _invalid("messages: at least one message is required")
        previous_uses: list[str] = []
        for i, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if role not in ("user", "assistant") or not isinstance(blocks, list):
                return _invalid(f"messages.{i}: invalid message")
            for j, block in enumerate(blocks):
                kind = block.get("type")
                if kind == "text" and not str(block.get("text", "")).strip():
                    return _invalid(
                        f"messages.{i}.content.{j}: text content blocks must be non-empty"
                    )
                if kind == "tool_use" and role != "assistant":
                    return _invalid(f"messages.{i}.content.{j}: tool_use only in assistant turns")
                if kind == "tool_result" and role != "user":
                    return _invalid(f"messages.{i}.content.{j}: tool_result only in user turns")
                if kind == "tool_use" and not isinstance(block.get("input"), dict):
                    return _invalid(
                        f"messages.{i}.content.{j}.input: Input should be a valid dictionary"
                    )
            if role == "user":
                results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
                missing = [u for u in previous_uses if u not in results]
                if missing:
                    return _invalid(
                        f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                        f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                        "corresponding `tool_result` block in the next message."
                    )
                for j, rid in enumerate(results):
                    if rid not in previous_uses:
                        return _invalid(
                            f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                            f"`tool_result` blocks: {rid}. Each `tool_result` block must have a "
                            "corresponding `tool_use` block in the previous message."
                        )
                previous_uses = []
            else:
                if previous_uses:
                    return _invalid(
                        f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                        f"immediately after: {', '.join(previous_uses)}."
                    )
                previous_uses = [b["id"] for b in blocks if b.get("type") == "tool_use"]
                problem = self._check_thinking(i, blocks)
                if problem:
                    return _invalid(problem)
        if previous_uses:
            return _invalid(
                f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` "
                f"blocks immediately after: {', '.join(previous_uses)}."
            )
        return None

    def _check_thinking(self, i: int, blocks: list[dict[str, Any]]) -> str | None:
        """Thinking the fake sent with a tool call must come back unchanged, before the call."""
        uses = [b["id"] for b in blocks if b.get("type") == "tool_use"]
        sent = next((self._emitted[u] for u in uses if u in self._emitted), None)
        if sent is None or not sent.thinking:
            return None
        got = [b for b in blocks if b.get("type") in ("thinking", "redacted_thinking")]
        first_use = next(j for j, b in enumerate(blocks) if b.get("type") == "tool_use")
        if got != sent.thinking or any(blocks.index(b) > first_use for b in got):
            return (
                f"messages.{i}.content: thinking blocks of an assistant turn with tool use must be "
                "passed back unmodified, before the tool_use blocks (Invalid `signature` in "
                "`thinking` block)"
            )
        return None

    async def _stream(self, stream: Stream, request: Recorded, reader: Any, writer: Any) -> bool:
        self._remember(stream)
        return await super()._stream(stream, request, reader, writer)

    def _remember(self, stream: Stream) -> None:
        """Note the thinking blocks and tool_use ids of a message about to be sent."""
        blocks: dict[int, dict[str, Any]] = {}
        for frame in stream.frames:
            if isinstance(frame, Pause):
                continue
            data = next(
                (line[6:] for line in frame.decode().splitlines() if line.startswith("data: ")),
                None,
            )
            if data is None:
                continue
            try:
                event = json.loads(data)
            except ValueError:
                continue
            if event.get("type") == "content_block_start":
                blocks[event["index"]] = dict(event["content_block"])
            elif event.get("type") == "content_block_delta" and event["index"] in blocks:
                block, delta = blocks[event["index"]], event["delta"]
                if delta.get("type") == "thinking_delta":
                    block["thinking"] = block.get("thinking", "") + delta["thinking"]
                elif delta.get("type") == "signature_delta":
                    block["signature"] = delta["signature"]
        ordered = [blocks[k] for k in sorted(blocks)]
        emitted = _Emitted(
            thinking=[b for b in ordered if b["type"] in ("thinking", "redacted_thinking")],
            tool_ids=[b["id"] for b in ordered if b["type"] == "tool_use"],
        )
        for tool_id in emitted.tool_ids:
            self._emitted[tool_id] = emitted
