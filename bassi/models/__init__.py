"""Model adapters: the `Model` port (`base`), `get_model` (`registry`), providers and offline models."""
