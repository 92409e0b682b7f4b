"""A fake OpenAI-compatible chat-completions API (`POST /v1/chat/completions`, SSE) on 127.0.0.1.

Speaks the wire protocol of /work/shared/provider-wire-protocols.md §2: data-only chunks with
`object: "chat.completion.chunk"`, `[DONE]`, `x-request-id` headers, JSON error bodies. Like
the real APIs it answers 400 when an assistant message with `tool_calls` is not followed by a
`tool` message for every `tool_call_id`, when a `tool` message answers no call, and (DeepSeek
mode) when reasoning it sent with tool calls is not sent back as `reasoning_content`.

    async with OpenAIFake() as fake:
        fake.add(stream(text_chunks("Hello")))
        client = openai.AsyncOpenAI(base_url=fake.url, api_key="test")
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tests.fakes.http_server import FakeServer, Pause, Recorded, Reply, Response, Stream, sse

_ids = itertools.count(1)

DONE = sse("[DONE]")


def chunk(
    delta: Mapping[str, Any] | None = None,
    *,
    finish_reason: str | None = None,
    usage: Mapping[str, Any] | None = None,
    choices: bool = True,
    choice_extra: Mapping[str, Any] | None = None,
    chunk_id: str = "chatcmpl-fake1",
    model: str = "gpt-fake-1",
) -> bytes:
    """One `data:` chunk. `choices=False` makes the usage-only chunk (`choices: []`)."""
    data: dict[str, Any] = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [],
        "usage": dict(usage) if usage is not None else None,
    }
    if choices:
        choice = {
            "index": 0,
            "delta": dict(delta or {}),
            "logprobs": None,
            "finish_reason": finish_reason,
            **(choice_extra or {}),
        }
        data["choices"] = [choice]
    return sse(data)


def usage(prompt: int = 20, completion: int = 6, cached: int = 0) -> dict[str, Any]:
    """A usage object as OpenAI sends it."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def text_chunks(
    *pieces: str,
    finish_reason: str | None = "stop",
    usage_chunk: Mapping[str, Any] | None = None,
    done: bool = True,
    model: str = "gpt-fake-1",
) -> list[bytes]:
    """A text answer: role chunk, one chunk per piece, finish chunk, usage chunk, `[DONE]`.

    `finish_reason=None` leaves out the finish, the usage and `[DONE]` (an incomplete stream).
    """
    out = [chunk({"role": "assistant", "content": ""}, model=model)]
    out += [chunk({"content": p}, model=model) for p in pieces]
    if finish_reason is None:
        return out
    out.append(chunk({}, finish_reason=finish_reason, model=model))
    out.append(chunk(usage=usage_chunk or usage(), choices=False, model=model))
    if done:
        out.append(DONE)
    return out


def call_start(index: int, call_id: str, name: str) -> dict[str, Any]:
    """The first fragment of a tool call."""
    return {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": ""},
    }


def call_args(index: int, arguments: str) -> dict[str, Any]:
    """A later fragment of a tool call: more argument text."""
    return {"index": index, "function": {"arguments": arguments}}


def tool_call_chunks(
    *fragments: Sequence[Mapping[str, Any]],
    finish_reason: str = "tool_calls",
    usage_chunk: Mapping[str, Any] | None = None,
) -> list[bytes]:
    """A tool-call answer; each argument is the `tool_calls` list of one chunk."""
    out = [chunk({"role": "assistant", "content": None, "tool_calls": list(fragments[0])})]
    out += [chunk({"tool_calls": list(f)}) for f in fragments[1:]]
    out.append(chunk({}, finish_reason=finish_reason))
    out.append(chunk(usage=usage_chunk or usage(20, 40), choices=False))
    out.append(DONE)
    return out


def error_chunk(
    error_type: str = "server_error", message: str = "The server had an error"
) -> bytes:
    """A mid-stream `data: {"error": ...}`."""
    return sse({"error": {"message": message, "type": error_type, "param": None, "code": None}})


def stream(frames: Iterable[bytes | Pause], **options: Any) -> Stream:
    """A 200 SSE response with an `x-request-id` header."""
    headers = {"x-request-id": f"req_fake_oai_{next(_ids)}", **options.pop("headers", {})}
    return Stream(list(frames), headers=headers, **options)


def error(
    status: int,
    error_type: str,
    message: str = "error",
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """An HTTP error with OpenAI's JSON body and an `x-request-id` header."""
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    request_id = f"req_fake_oai_{next(_ids)}"
    return Reply(status, body, headers={"x-request-id": request_id, **(headers or {})})


def _invalid(message: str, param: str | None = None) -> Reply:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    }
    return Reply(400, body, headers={"x-request-id": f"req_fake_oai_{next(_ids)}"})


class OpenAIFake(FakeServer):
    """The fake chat-completions API; `url` is the SDK's `base_url` (with `/v1`)."""

    def __init__(self, *, api_key: str | None = None, deepseek: bool = False) -> None:
        super().__init__()
        self.api_key = api_key
        """When set, requests must carry `Authorization: Bearer <api_key>`."""
        self.deepseek = deepseek
        """Insist that reasoning sent with tool calls comes back as `reasoning_content`."""
        self._reasoning: dict[str, str] = {}
        """By tool call id: the reasoning sent in the same message."""

    @property
    def url(self) -> str:
        """The SDK's `base_url`."""
        return self.origin + "/v1"

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of every request to /v1/chat/completions, in order."""
        return [r.json for r in self.requests if r.path == "/v1/chat/completions"]

    def check(self, request: Recorded) -> Response | None:
        if request.method != "POST" or request.path != "/v1/chat/completions":
            return error(404, "invalid_request_error", f"Unknown request URL: {request.path}")
        if self.api_key is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            if given != self.api_key:
                return error(
                    401,
                    "invalid_request_error",
                    "Incorrect API key provided.",
                    code="invalid_api_key",
                )
        try:
            body = request.json
        except ValueError:
            return _invalid("We could not parse the JSON body of your request.")
        return self._check_body(body)

    def _check_body(self, body: dict[str, Any]) -> Response | None:
        if "model" not in body:
            return _invalid("you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _invalid("[] is too short - 'messages'", "messages")
        waiting: list[str] = []
        for i, message in enumerate(messages):
            role = message.get("role")
            if role == "tool":
                call_id = message.get("tool_call_id")
                if call_id not in waiting:
                    return _invalid(
                        "Invalid parameter: messages with role 'tool' must be a response to a "
                        "preceeding message with 'tool_calls'.",
                        f"messages.[{i}].role",
                    )
                if not isinstance(message.get("content"), str | list):
                    return _invalid(f"Invalid type for 'messages[{i}].content'.")
                waiting.remove(call_id)
                continue
            if waiting:
                return _invalid(
                    "An assistant message with 'tool_calls' must be followed by tool messages "
                    "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                    f"response messages: {', '.join(waiting)}",
                    f"messages.[{i}].role",
                )
            if role == "assistant":
                calls = message.get("tool_calls") or []
                for call in calls:
                    if not isinstance(call.get("function", {}).get("arguments"), str):
                        return _invalid(f"Invalid type for 'messages[{i}].tool_calls.arguments'.")
                waiting = [c["id"] for c in calls]
                replayed = message.get("reasoning_content")
                if (
                    self.deepseek
                    and not replayed
                    and any(c["id"] in self._reasoning for c in calls)
                ):
                    return _invalid(
                        "Missing `reasoning_content` field in the assistant message at "
                        f"message index {i}"
                    )
            elif role not in ("system", "developer", "user"):
                return _invalid(f"Invalid value: '{role}'.", f"messages.[{i}].role")
        if waiting:
            return _invalid(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(waiting)}",
                "messages",
            )
        return None

    async def _stream(self, stream: Stream, request: Recorded, reader: Any, writer: Any) -> bool:
        self._remember(stream)
        return await super()._stream(stream, request, reader, writer)

    def _remember(self, stream: Stream) -> None:
        """Note which tool calls were sent together with reasoning."""
        reasoning, ids = "", []
        for frame in stream.frames:
            if isinstance(frame, Pause) or not frame.startswith(b"data: {"):
                continue
            try:
                data = json.loads(frame[6:])
            except ValueError:
                continue
            for choice in data.get("choices") or []:
                delta = choice.get("delta") or {}
                reasoning += delta.get("reasoning_content") or ""
                ids += [c["id"] for c in delta.get("tool_calls") or [] if c.get("id")]
        if reasoning:
            for call_id in ids:
                self._reasoning[call_id] = reasoning
