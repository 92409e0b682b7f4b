"""`bassi version` and `bassi models`: what is installed and which providers are configured."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from bassi import __version__
from bassi.cli.app import app, load_settings
from bassi.cli.render import console
from bassi.models.catalog import provider_status


@app.command("version")
def version() -> None:
    """Print bassi's version."""
    typer.echo(__version__)


@app.command("models")
def models() -> None:
    """Providers, the variable holding each one's key, and whether it is set (never the key)."""
    settings = load_settings()
    table = Table("provider", "configured", "key variable", "base URL", "example")
    table.add_row("scripted", "yes (offline)", "-", "-", "scripted")
    examples = {
        "anthropic": "anthropic:claude-sonnet-4-5",
        "openai": "openai:gpt-4.1",
        "deepseek": "deepseek:deepseek-chat",
        "moonshot": "moonshot:kimi-k2-0905-preview",
        "openrouter": "openrouter:anthropic/claude-sonnet-4.5",
        "ollama": "ollama:llama3.2",
    }
    for status in provider_status():
        state = "yes" if status.key_set else ("no key needed" if not status.needs_key else "no")
        table.add_row(
            status.name,
            state,
            status.key_variable,
            Text(status.base_url),
            Text(examples.get(status.name, f"{status.name}:MODEL")),
        )
    out = console()
    out.print(table)
    if settings.default_model:
        out.print(Text(f"default model for new sessions: {settings.default_model}"))
    else:
        out.print(
            "default model for new sessions: the first of anthropic, openai with a key set, "
            "else scripted (set BASSI_MODEL or default_model to choose)"
        )
