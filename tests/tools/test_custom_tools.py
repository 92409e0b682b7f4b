"""Must show 5: sync and async custom tools; a tool that raises becomes `tool_call_failed` with
type and message and nothing else breaks; malformed arguments produce an error naming the field."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from bassi.errors import ToolInputError, ToolNotFound
from bassi.events import ToolCallCompleted, ToolCallFailed
from bassi.tools.base import ToolContext, ToolResult, tool
from bassi.tools.executor import ToolExecutor
from bassi.tools.registry import ToolRegistry


@tool(read_only=True)
def add(a: int, b: Annotated[int, Field(description="Second addend.")] = 1) -> str:
    """Add two integers."""
    return str(a + b)


@tool
def which_thread() -> str:
    """Name of the thread the handler runs on."""
    return threading.current_thread().name


@tool
def block_for(seconds: float) -> str:
    """Block its thread (a sync handler must not block the event loop)."""
    time.sleep(seconds)
    return "woke"


class Order(BaseModel):
    """An order to place."""

    item: str
    quantity: Annotated[int, Field(ge=1)]
    notes: list[str] = []


@tool(name="place_order", timeout=5)
async def place_order(order: Order, ctx: ToolContext) -> ToolResult:
    """Place an order (async, takes a pydantic model and the context)."""
    await asyncio.sleep(0)
    return ToolResult(output=f"{order.quantity} x {order.item} for {ctx.session_id}")


@tool
async def structured() -> dict[str, Any]:
    """Return JSON-ready data."""
    return {"ok": True, "n": 3}


@tool
def explode(message: str) -> str:
    """Always raises."""
    raise ValueError(message)


@tool(timeout=0.2)
async def dawdle() -> str:
    """Takes longer than its timeout."""
    await asyncio.sleep(10)
    return "never"


@pytest.fixture
def executor() -> ToolExecutor:
    return ToolExecutor(
        ToolRegistry([add, which_thread, block_for, place_order, structured, explode, dawdle])
    )


def test_schemas_come_from_the_signature_or_the_model() -> None:
    assert add.spec().model_dump() == {
        "name": "add",
        "description": "Add two integers.",
        "input_schema": {
            "additionalProperties": False,
            "properties": {
                "a": {"title": "A", "type": "integer"},
                "b": {
                    "default": 1,
                    "description": "Second addend.",
                    "title": "B",
                    "type": "integer",
                },
            },
            "required": ["a"],
            "title": "AddInput",
            "type": "object",
        },
    }
    schema = place_order.input_schema
    assert schema["required"] == ["item", "quantity"]
    assert "ctx" not in schema["properties"]
    assert (add.read_only, add.kind, place_order.kind) == (True, "read", "other")


async def test_sync_and_async_tools_run(executor: ToolExecutor, ctx: ToolContext) -> None:
    assert (await executor.run("c1", "add", {"a": 2, "b": 3}, ctx)).output == "5"
    placed = await executor.run("c2", "place_order", {"item": "tea", "quantity": 2}, ctx)
    assert placed.output == "2 x tea for s1"
    assert (await executor.run("c3", "structured", {}, ctx)).output == '{"ok": true, "n": 3}'
    thread = await executor.run("c4", "which_thread", {}, ctx)
    assert thread.output != threading.current_thread().name


async def test_a_sync_handler_does_not_block_the_event_loop(
    executor: ToolExecutor, ctx: ToolContext
) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    outcome = await executor.run("c1", "block_for", {"seconds": 0.3}, ctx)
    ticking.cancel()
    assert outcome.output == "woke"
    assert ticks >= 10


async def test_a_tool_that_raises_fails_with_type_and_message_and_nothing_else_breaks(
    executor: ToolExecutor, ctx: ToolContext
) -> None:
    outcome = await executor.run("c1", "explode", {"message": "the disk is on fire"}, ctx)
    assert outcome.failed
    assert (outcome.error_type, outcome.error) == ("ValueError", "the disk is on fire")
    event = outcome.to_event(session_id="s1", run_id="r1")
    assert isinstance(event, ToolCallFailed)
    assert (event.tool_call_id, event.tool_name) == ("c1", "explode")
    assert (event.error_type, event.error) == ("ValueError", "the disk is on fire")
    assert not event.interrupted

    after = await executor.run("c2", "add", {"a": 1}, ctx)
    done = after.to_event(session_id="s1", run_id="r1")
    assert isinstance(done, ToolCallCompleted)
    assert (done.output, done.is_error, done.truncated) == ("2", False, False)


async def test_a_tool_past_its_timeout_fails_as_tool_timeout(
    executor: ToolExecutor, ctx: ToolContext
) -> None:
    started = time.monotonic()
    outcome = await executor.run("c1", "dawdle", {}, ctx)
    assert time.monotonic() - started < 1.0
    assert (outcome.error_type, outcome.error) == ("ToolTimeout", "dawdle timed out after 0.2s")


@pytest.mark.parametrize(
    ("name", "input", "field", "message"),
    [
        ("add", {}, "a", "add: field 'a': Field required"),
        ("add", {"a": "seven"}, "a", "add: field 'a': Input should be a valid integer"),
        ("add", {"a": 1, "c": 2}, "c", "add: field 'c': Extra inputs are not permitted"),
        (
            "place_order",
            {"item": "tea", "quantity": 0},
            "quantity",
            "place_order: field 'quantity'",
        ),
        (
            "place_order",
            {"item": "tea", "quantity": 1, "notes": ["ok", 5]},
            "notes.1",
            "place_order: field 'notes.1'",
        ),
        ("bash", {"command": ""}, "command", "bash: field 'command'"),
        ("bash", {"command": "ls", "timeout": 9999}, "timeout", "bash: field 'timeout'"),
        ("read_file", {"path": "a", "offset": 0}, "offset", "read_file: field 'offset'"),
        ("bash", ["ls"], None, "bash: input must be a JSON object, not list"),
    ],
)
def test_malformed_arguments_name_the_field(
    name: str, input: Any, field: str | None, message: str
) -> None:
    registry = ToolRegistry.with_builtins(add, place_order)
    with pytest.raises(ToolInputError) as caught:
        registry.validate(name, input)
    assert caught.value.field == field
    assert str(caught.value).startswith(message)


async def test_malformed_arguments_fail_before_anything_runs(
    executor: ToolExecutor, ctx: ToolContext
) -> None:
    outcome = await executor.run("c1", "explode", {"mesage": "typo"}, ctx)
    assert outcome.error_type == "ToolInputError"
    assert outcome.error is not None and "field 'message'" in outcome.error


async def test_unknown_tools_fail_naming_what_exists(
    executor: ToolExecutor, ctx: ToolContext
) -> None:
    outcome = await executor.run("c1", "rm", {}, ctx)
    assert outcome.error_type == "ToolNotFound"
    assert outcome.error is not None and "no tool named 'rm'" in outcome.error
    with pytest.raises(ToolNotFound):
        ToolRegistry().get("rm")


def test_validate_returns_coerced_input() -> None:
    registry = ToolRegistry([add])
    assert registry.validate("add", {"a": "2"}) == {"a": 2}


def test_registry_refuses_a_duplicate_name() -> None:
    registry = ToolRegistry([add])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(add)
    assert registry.names() == ["add"]
    assert [s.name for s in registry.specs()] == ["add"]


def test_kind_and_read_only_agree() -> None:
    with pytest.raises(ValueError, match="read_only"):
        tool(kind="read")(lambda: "x")
