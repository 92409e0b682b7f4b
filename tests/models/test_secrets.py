"""No API key in events, logs, exception messages or the provider listing (issue 4, must show 5)."""

from __future__ import annotations

import logging
import traceback

import pytest

from bassi.errors import ModelError
from bassi.models.catalog import provider_status
from bassi.models.registry import get_model
from tests.fakes import anthropic_server as A
from tests.fakes import openai_server as O
from tests.fakes.http_server import Reply
from tests.models.harness import API_KEY, FAST, Harness, collect, prompt


async def test_key_appears_in_no_event_log_record_or_repr(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.fake.add(
        harness.http_error(429, FAST),
        harness.tool_calls([("call_1", "bash", ['{"command": "ls"}'])]),
    )
    caplog.set_level(logging.DEBUG)
    model = harness.model()

    events = await collect(model, prompt())

    assert harness.fake.requests[0].headers.get("authorization") == f"Bearer {API_KEY}"
    assert caplog.records, "the SDKs log at DEBUG; the check below must not pass vacuously"
    leaks = [r for r in caplog.records if API_KEY in r.getMessage()]
    assert leaks == []
    assert API_KEY not in repr(events)
    assert API_KEY not in repr(model)


async def test_error_messages_and_tracebacks_hold_no_key(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # A careless gateway echoes the key back; bassi's message must not repeat it.
    echo = f"Incorrect API key provided: {API_KEY}"
    if harness.provider == "anthropic":
        harness.fake.add(A.error(401, "authentication_error", echo))
    else:
        harness.fake.add(O.error(401, "invalid_request_error", echo, code="invalid_api_key"))
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ModelError) as caught:
        await collect(harness.model(), prompt())

    error = caught.value
    assert "Incorrect API key provided: [redacted]" in str(error)
    assert API_KEY not in str(error) and API_KEY not in repr(error)
    assert API_KEY not in error.message
    assert all(API_KEY not in r.getMessage() for r in caplog.records)


async def test_a_realistic_401_traceback_holds_no_key(harness: Harness) -> None:
    masked = "Incorrect API key provided: sk-test-***********cdef."
    body = {
        "error": {
            "message": masked,
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    if harness.provider == "anthropic":
        body = {"type": "error", "error": {"type": "authentication_error", "message": masked}}
    harness.fake.add(Reply(401, body))

    with pytest.raises(ModelError) as caught:
        await collect(harness.model(), prompt())

    assert API_KEY not in "".join(traceback.format_exception(caught.value))


def test_missing_key_error_names_the_variable_not_a_value() -> None:
    with pytest.raises(Exception, match="ANTHROPIC_API_KEY") as caught:
        get_model("anthropic:claude", environ={"OPENAI_API_KEY": API_KEY})
    assert API_KEY not in str(caught.value)


def test_provider_listing_says_whether_a_key_is_set_never_the_key() -> None:
    statuses = provider_status({"OPENAI_API_KEY": API_KEY, "DEEPSEEK_API_KEY": "  "})

    by_name = {s.name: s for s in statuses}
    assert by_name["openai"].key_set is True
    assert by_name["deepseek"].key_set is False  # blank is not set
    assert by_name["anthropic"].key_set is False
    assert API_KEY not in repr(statuses)
    assert all(API_KEY not in str(v) for s in statuses for v in vars_of(s))


def vars_of(status: object) -> list[object]:
    return [getattr(status, f) for f in status.__dataclass_fields__]  # type: ignore[attr-defined]
