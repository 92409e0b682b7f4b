"""The providers bassi knows: wire protocol, default base URL and API key variable of each."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

WireProtocol = Literal["anthropic", "openai"]


@dataclass(frozen=True, slots=True)
class Provider:
    """How to reach one provider."""

    name: str
    """The `provider` part of a `provider:name` model spec."""
    protocol: WireProtocol
    """Wire protocol: Anthropic Messages or OpenAI-compatible chat completions."""
    base_url: str
    """Default API base URL."""
    key_variable: str
    """Environment variable holding the API key."""
    needs_key: bool = True
    """False for local servers that accept any key (ollama)."""
    base_url_variable: str | None = None
    """Environment variable that overrides `base_url`, if any."""
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    """Request field carrying the output limit (OpenAI-compatible only)."""
    replays_reasoning: bool = False
    """Whether earlier reasoning goes back as `reasoning_content` (DeepSeek and Kimi insist)."""


PROVIDERS: Mapping[str, Provider] = {
    p.name: p
    for p in (
        Provider(
            "anthropic",
            "anthropic",
            "https://api.anthropic.com",
            "ANTHROPIC_API_KEY",
            base_url_variable="ANTHROPIC_BASE_URL",
        ),
        Provider(
            "openai",
            "openai",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            base_url_variable="OPENAI_BASE_URL",
            max_tokens_field="max_completion_tokens",
        ),
        Provider(
            "deepseek",
            "openai",
            "https://api.deepseek.com/v1",
            "DEEPSEEK_API_KEY",
            replays_reasoning=True,
        ),
        Provider(
            "moonshot",
            "openai",
            "https://api.moonshot.ai/v1",
            "MOONSHOT_API_KEY",
            replays_reasoning=True,
        ),
        Provider("openrouter", "openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
        Provider(
            "ollama", "openai", "http://localhost:11434/v1", "OLLAMA_API_KEY", needs_key=False
        ),
    )
}
"""Every real provider, by name."""


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """What `bassi models` prints for one provider; never the key itself."""

    name: str
    base_url: str
    """Default base URL."""
    key_variable: str
    key_set: bool
    """Whether `key_variable` holds a non-empty value."""
    needs_key: bool

    @property
    def configured(self) -> bool:
        """Whether a model of this provider can be used as things stand."""
        return self.key_set or not self.needs_key


def provider_status(environ: Mapping[str, str] | None = None) -> list[ProviderStatus]:
    """Every real provider and whether its API key is set in `environ` (default `os.environ`)."""
    env = os.environ if environ is None else environ
    return [
        ProviderStatus(
            name=p.name,
            base_url=p.base_url,
            key_variable=p.key_variable,
            key_set=bool(env.get(p.key_variable, "").strip()),
            needs_key=p.needs_key,
        )
        for p in PROVIDERS.values()
    ]
