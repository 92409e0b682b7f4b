"""`get_model("provider:name")`: a `Model` from its spec, SDKs imported only when needed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from bassi.errors import ConfigError
from bassi.models.base import Model
from bassi.models.catalog import PROVIDERS
from bassi.models.scripted import ScriptedModel


def get_model(
    spec: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    client: Any = None,
) -> Model:
    """The model named by `spec`: `scripted[:NAME]` or `PROVIDER:NAME` (see `catalog.PROVIDERS`).

    The API key and base URL come from the arguments, else from `environ` (default
    `os.environ`): the provider's key variable, and `ANTHROPIC_BASE_URL` / `OPENAI_BASE_URL`.
    `client` is a ready SDK client (tests pass one pointed at a fake server). Raises
    `ConfigError` for an unknown provider, a missing model name or a missing API key.
    """
    if not spec.isprintable():
        raise ConfigError(f"model spec {spec!r} holds a control character")
    provider, colon, name = spec.strip().partition(":")
    provider, name = provider.strip().lower(), name.strip()
    if colon and not name:
        raise ConfigError(f"model spec {spec!r} names no model: use {provider}:MODEL")
    if provider == "scripted":
        return ScriptedModel(name or "default")
    preset = PROVIDERS.get(provider)
    if preset is None:
        known = ", ".join(["scripted", *PROVIDERS])
        raise ConfigError(f"unknown model provider {provider!r} in {spec!r} (known: {known})")
    if not name:
        raise ConfigError(f"model spec {spec!r} names no model: use {provider}:MODEL")
    env = os.environ if environ is None else environ
    if client is None:
        api_key = api_key or env.get(preset.key_variable, "").strip() or None
        if api_key is None and preset.needs_key:
            raise ConfigError(
                f"{provider} needs an API key: set {preset.key_variable} (or pick another model)"
            )
        if preset.base_url_variable:
            base_url = base_url or env.get(preset.base_url_variable, "").strip() or None
        base_url = base_url or preset.base_url
    if preset.protocol == "anthropic":
        from bassi.models.anthropic import AnthropicModel

        return AnthropicModel(name, client=client, api_key=api_key, base_url=base_url)
    from bassi.models.openai_compat import OpenAICompatModel

    return OpenAICompatModel(
        name,
        provider=preset,
        client=client,
        api_key=api_key,
        base_url=base_url,
    )
