"""Fake model providers on 127.0.0.1 for any test: `anthropic_server`, `openai_server`, built on `http_server`."""
