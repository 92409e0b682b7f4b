"""The `bassi` command: the app in `app.py`, one module per command (group) registering on it."""

from bassi.cli import audit, chat, db, demo, events, info, runs, serve, sessions
from bassi.cli.app import app, main

__all__ = [
    "app",
    "audit",
    "chat",
    "db",
    "demo",
    "events",
    "info",
    "main",
    "runs",
    "serve",
    "sessions",
]
