"""The test-wide guard stops a real SDK from reaching a public host (issue 4, must show 4)."""

from __future__ import annotations

import pytest

from bassi.errors import ModelError
from bassi.models.anthropic import AnthropicModel
from bassi.models.openai_compat import OpenAICompatModel
from tests.conftest import NetworkGuardError
from tests.models.harness import collect, prompt

PUBLIC = "203.0.113.7"  # TEST-NET-3: public, never loopback; no DNS needed


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        if isinstance(current, BaseExceptionGroup):
            current = current.exceptions[0]
        else:
            current = current.__cause__ or current.__context__
    return chain


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_a_real_sdk_pointed_at_a_public_host_fails_loudly(kind: str) -> None:
    model: AnthropicModel | OpenAICompatModel
    if kind == "anthropic":
        model = AnthropicModel(
            "claude", api_key="sk-x", base_url=f"https://{PUBLIC}", max_retries=0
        )
    else:
        model = OpenAICompatModel(
            "gpt", api_key="sk-x", base_url=f"https://{PUBLIC}/v1", max_retries=0
        )

    with pytest.raises((ModelError, NetworkGuardError)) as caught:
        await collect(model, prompt())

    guard = [e for e in _causes(caught.value) if isinstance(e, NetworkGuardError)]
    assert guard, f"expected the network guard in the cause chain of {caught.value!r}"
    assert "non-loopback" in str(guard[0])
    assert "NetworkGuardError" in str(caught.value)  # the message says what happened
    await model.aclose()
