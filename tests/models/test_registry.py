"""`get_model` specs, keys and base URLs; the provider catalogue; lazy SDK imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bassi.errors import ConfigError
from bassi.messages import TextBlock
from bassi.models.anthropic import AnthropicModel
from bassi.models.catalog import PROVIDERS, provider_status
from bassi.models.openai_compat import OpenAICompatModel
from bassi.models.registry import get_model
from bassi.models.scripted import ScriptedModel
from tests.fakes import anthropic_server as A
from tests.fakes import openai_server as O
from tests.models.harness import API_KEY, collect, final, prompt


@pytest.mark.parametrize(
    ("spec", "name"), [("scripted", "default"), ("scripted:demo", "demo"), (" Scripted:x ", "x")]
)
def test_scripted_specs(spec: str, name: str) -> None:
    model = get_model(spec, environ={})
    assert isinstance(model, ScriptedModel)
    assert (model.provider, model.name) == ("scripted", name)


def test_unknown_provider_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown model provider 'gemini'.*anthropic.*ollama"):
        get_model("gemini:pro", environ={})


def test_a_real_provider_needs_a_model_name() -> None:
    with pytest.raises(ConfigError, match="openai:MODEL"):
        get_model("openai", environ={"OPENAI_API_KEY": API_KEY})


@pytest.mark.parametrize("provider", [p for p in PROVIDERS.values() if p.needs_key])
def test_missing_key_names_the_variable(provider: object) -> None:
    name, variable = provider.name, provider.key_variable  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=variable):
        get_model(f"{name}:some-model", environ={})


async def test_presets_have_their_base_urls_and_protocols() -> None:
    env = {p.key_variable: API_KEY for p in PROVIDERS.values()}
    for preset in PROVIDERS.values():
        model = get_model(f"{preset.name}:m", environ=env)
        assert (model.provider, model.name) == (preset.name, "m")
        client = model.client  # type: ignore[attr-defined]
        assert str(client.base_url).rstrip("/") == preset.base_url
        expected = AnthropicModel if preset.protocol == "anthropic" else OpenAICompatModel
        assert isinstance(model, expected)
        await model.aclose()  # type: ignore[attr-defined]


async def test_ollama_works_without_a_key() -> None:
    model = get_model("ollama:llama3", environ={})
    assert model.provider == "ollama"
    await model.aclose()  # type: ignore[attr-defined]


async def test_anthropic_base_url_variable_is_honoured(anthropic_fake: A.AnthropicFake) -> None:
    env = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": anthropic_fake.url}
    model = get_model("anthropic:claude-fake-1", environ=env)
    anthropic_fake.add(A.stream(A.events(A.text("via env"))))

    assert final(await collect(model, prompt())).content == (TextBlock(text="via env"),)
    assert anthropic_fake.bodies[0]["model"] == "claude-fake-1"
    await model.aclose()  # type: ignore[attr-defined]


async def test_openai_base_url_variable_is_honoured(openai_fake: O.OpenAIFake) -> None:
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": openai_fake.url}
    model = get_model("openai:gpt-fake-1", environ=env)
    openai_fake.add(O.stream(O.text_chunks("via env")))

    assert final(await collect(model, prompt())).content == (TextBlock(text="via env"),)
    await model.aclose()  # type: ignore[attr-defined]


async def test_explicit_arguments_beat_the_environment(openai_fake: O.OpenAIFake) -> None:
    env = {"DEEPSEEK_API_KEY": "sk-from-env-wrong", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    model = get_model("deepseek:chat", api_key=API_KEY, base_url=openai_fake.url, environ=env)
    openai_fake.add(O.stream(O.text_chunks("ok")))

    final(await collect(model, prompt()))
    assert openai_fake.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    await model.aclose()  # type: ignore[attr-defined]


async def test_an_injected_client_is_used_as_is(openai_fake: O.OpenAIFake) -> None:
    import openai

    client = openai.AsyncOpenAI(base_url=openai_fake.url, api_key=API_KEY, max_retries=0)
    model = get_model("moonshot:kimi", client=client, environ={})
    openai_fake.add(O.stream(O.text_chunks("kimi")))

    assert final(await collect(model, prompt())).provider == "moonshot"
    await client.close()


def test_provider_status_lists_every_provider() -> None:
    statuses = provider_status({"ANTHROPIC_API_KEY": "x"})
    assert [s.name for s in statuses] == [
        "anthropic",
        "openai",
        "deepseek",
        "moonshot",
        "openrouter",
        "ollama",
    ]
    by_name = {s.name: s for s in statuses}
    assert by_name["anthropic"].configured and by_name["ollama"].configured
    assert not by_name["openai"].configured
    assert by_name["moonshot"].key_variable == "MOONSHOT_API_KEY"
    assert by_name["openrouter"].base_url == "https://openrouter.ai/api/v1"


def test_sdks_are_imported_only_when_a_real_model_is_made() -> None:
    code = (
        "import sys\n"
        "import bassi.models.scripted, bassi.models.registry, bassi.models.catalog\n"
        "import bassi.models.anthropic, bassi.models.openai_compat, bassi.models.function\n"
        "from bassi.models.registry import get_model\n"
        "get_model('scripted')\n"
        "assert not {'anthropic', 'openai', 'httpx2'} & set(sys.modules), sorted(sys.modules)\n"
        "get_model('anthropic:x', environ={'ANTHROPIC_API_KEY': 'k'})\n"
        "assert 'anthropic' in sys.modules and 'openai' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("spec", ["scripted:", "ollama: ", "scripted:\x00", "scripted:a\nb"])
def test_a_spec_with_an_empty_name_or_a_control_character_is_refused(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"names no model|control character"):
        get_model(spec, environ={})
