"""Run `bassi serve` as a real child process on 127.0.0.1, for the benchmarks and the crash test.

The child gets its own BASSI_HOME, the scripted model, no provider keys, and a free port.
`Daemon.start()` returns once `/api/health` answers 200; `kill()` is SIGKILL, `stop()` SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]

_KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "DEEPSEEK_API_KEY", "MOONSHOT_API_KEY")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASSI_") and k not in _KEYS}
    env["BASSI_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Daemon:
    """One `bassi serve` process over a database file; restartable on the same port."""

    def __init__(
        self,
        db: Path,
        workdir: Path,
        *,
        module: tuple[str, ...] = ("-m", "bassi.cli", "serve"),
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.db = db
        self.workdir = workdir
        self.home = workdir / "home"
        self.workspace = workdir / "workspace"
        self.home.mkdir(parents=True, exist_ok=True)
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.module = module
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "serve.log"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def spawn(self) -> float:
        """Start the process (no waiting); returns the monotonic start time."""
        self.starts += 1
        env = child_env(self.home) | self.extra_env
        command = [
            sys.executable,
            *self.module,
            "--db",
            str(self.db),
            "--port",
            str(self.port),
            "--model",
            "scripted",
            "--workspace",
            str(self.workspace),
        ]
        log = self.log_path.open("ab")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return started

    async def wait_ready(self, within: float = 60.0, interval: float = 0.01) -> float:
        """Poll /api/health until 200; returns the monotonic time it first answered."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(
                        f"bassi serve exited with {self.proc.returncode}: {self.tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"{self.url}/api/health")
                    if response.status_code == 200:
                        return time.monotonic()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"bassi serve not ready after {within}s: {self.tail()}")
                await asyncio.sleep(interval)

    async def start(self, within: float = 60.0) -> float:
        """Start and wait until ready; returns seconds from spawn to ready."""
        started = self.spawn()
        ready = await self.wait_ready(within)
        return ready - started

    def kill(self) -> None:
        """SIGKILL the server (its own process group: tool subprocesses die with it)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait (SIGKILL after `timeout`)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@contextlib.asynccontextmanager
async def running(daemon: Daemon) -> AsyncIterator[Daemon]:
    await daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def parse_time(value: str) -> float:
    """An event's `recorded_at` (ISO-8601, `Z`) as a Unix timestamp."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def create_session(client: httpx.AsyncClient, base: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"{base}/api/sessions", json=body)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


async def prompt(client: httpx.AsyncClient, base: str, session_id: str, content: str) -> str:
    response = await client.post(
        f"{base}/api/sessions/{session_id}/prompts", json={"content": content}
    )
    response.raise_for_status()
    run_id: str = response.json()["run_id"]
    return run_id


async def events(
    client: httpx.AsyncClient, base: str, session_id: str, *, after: int = 0, types: str = ""
) -> list[dict[str, Any]]:
    """Every committed event of a session after `after` (all pages)."""
    out: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"after": after, "limit": 10_000}
        if types:
            params["types"] = types
        response = await client.get(f"{base}/api/sessions/{session_id}/events", params=params)
        response.raise_for_status()
        page = response.json()
        out.extend(page["events"])
        if not page["more"]:
            return out
        after = page["events"][-1]["seq"]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def session_head(client: httpx.AsyncClient, base: str, session_id: str) -> int:
    """The session's last committed seq (the state's last_seq may trail behind token deltas)."""
    response = await client.get(f"{base}/api/sessions/{session_id}")
    response.raise_for_status()
    head: int = response.json()["last_seq"]
    later = await events(client, base, session_id, after=head)
    return later[-1]["seq"] if later else head
