"""Real servers for the web tests: uvicorn in a thread, or `python -m bassi.web.server`.

Both listen on 127.0.0.1 on a free port and use a fresh SQLite file; neither can reach a paid
model (no provider key is set, so sessions use the scripted model).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from bassi.settings import Settings
from bassi.web.app import create_app
from bassi.web.server import uvicorn_options

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
PROVIDER_KEYS = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "DEEPSEEK_API_KEY",
    "MOONSHOT_API_KEY",
    "OPENROUTER_API_KEY",
)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_healthy(
    url: str, *, timeout: float = 20.0, headers: dict[str, str] | None = None
) -> None:
    """Poll `/api/health` until it answers 200 (or fail after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health", headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"server at {url} did not become healthy: {last}")


class ThreadServer:
    """`create_app(settings)` served by uvicorn on its own event loop in a thread."""

    def __init__(self, settings: Settings, **app_options: Any) -> None:
        self.settings = settings
        self.app = create_app(settings, **app_options)
        options = uvicorn_options(settings)
        options.update(log_level="warning", timeout_graceful_shutdown=2.0)
        self.server = uvicorn.Server(uvicorn.Config(self.app, **options))
        self.thread = threading.Thread(target=self._run, name="bassi-test-server", daemon=True)
        self.url = f"http://{settings.host}:{settings.port}"
        self.ws_url = f"ws://{settings.host}:{settings.port}"

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def start(self) -> ThreadServer:
        self.thread.start()
        wait_until_healthy(self.url, headers=self.auth_headers())
        return self

    def auth_headers(self) -> dict[str, str]:
        token = self.settings.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def stop(self) -> None:
        context = getattr(self.app.state, "web", None)
        if context is not None:
            context.drain()
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "test server did not shut down"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test server: a fresh database and home under `tmp_path`, a free port."""
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    values: dict[str, Any] = {
        "home": tmp_path / "home",
        "database": str(tmp_path / "bassi.db"),
        "host": "127.0.0.1",
        "port": free_port(),
        "workspace": workspace,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Start thread servers with `make_server(**settings_overrides, app_options=...)`."""
    for key in PROVIDER_KEYS:
        monkeypatch.delenv(key, raising=False)
    started: list[ThreadServer] = []

    def start(*, app_options: dict[str, Any] | None = None, **overrides: Any) -> ThreadServer:
        directory = tmp_path / f"server{len(started)}"
        directory.mkdir()
        server = ThreadServer(make_settings(directory, **overrides), **(app_options or {}))
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Any) -> ThreadServer:
    """A running server without a token."""
    result: ThreadServer = make_server()
    return result


class ProcessServer:
    """`python -m bassi.web.server` as a child process (to SIGKILL it, or to see it refuse)."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        port: int | None = None,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = tmp_path / "bassi.db"
        self.log = tmp_path / "server.log"
        self.args = args
        workspace = tmp_path / "workspace"
        workspace.mkdir(exist_ok=True)
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in PROVIDER_KEYS and not k.startswith("BASSI_")
        }
        self.env.update(BASSI_HOME=str(tmp_path / "home"), BASSI_WORKSPACE=str(workspace))
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "bassi.web.server",
            "--db", str(self.db), "--port", str(self.port), *self.args,
        ]  # fmt: skip

    def start(self, *, wait: bool = True) -> ProcessServer:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.tmp_path,
            )
        if wait:
            wait_until_healthy(self.url)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs at all."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def process_server(tmp_path: Path) -> Iterator[Any]:
    """Create child-process servers with `process_server(**options)`; all stopped at the end."""
    made: list[ProcessServer] = []

    def make(**options: Any) -> ProcessServer:
        server = ProcessServer(tmp_path, **options)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()
