"""bassi: an event-sourced LLM agent service."""

__version__ = "0.1.0"
