"""Fixtures: the fake providers, and `harness`, which runs a test once per provider."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes import anthropic_server as A
from tests.fakes import openai_server as O
from tests.models.harness import API_KEY, AnthropicHarness, Harness, OpenAIHarness


@pytest.fixture
async def anthropic_fake() -> AsyncIterator[A.AnthropicFake]:
    async with A.AnthropicFake(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
async def openai_fake() -> AsyncIterator[O.OpenAIFake]:
    async with O.OpenAIFake(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture(params=["anthropic", "openai"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """Each provider in turn: its fake server started, models made against it closed after."""
    made: Harness
    if request.param == "anthropic":
        async with A.AnthropicFake(api_key=API_KEY) as fake:
            made = AnthropicHarness(fake)
            yield made
            await made.aclose()
    else:
        async with O.OpenAIFake(api_key=API_KEY) as fake:
            made = OpenAIHarness(fake)
            yield made
            await made.aclose()
