"""Must-show 4: `bassi events tail --follow` prints, within a second, what a `bassi serve`
process beside it appends."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli.conftest import Bassi, clean_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


@pytest.fixture
def server(bassi: Bassi) -> Iterator[str]:
    process = subprocess.Popen(
        bassi.command("serve", "--port", "0", "--model", "scripted"),  # any free port ...
        cwd=bassi.cwd,
        env=clean_env(bassi.home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first = process.stderr.readline()  # ... which it says before anything else
    match = re.fullmatch(r"bassi: serving on (http://127\.0\.0\.1:\d+)/\n", first)
    assert match, first
    base = match.group(1)
    deadline = time.monotonic() + 30
    while True:
        try:
            http("GET", base + "/api/health")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _, err = process.communicate()
                pytest.fail(f"bassi serve did not start: {err}")
            time.sleep(0.1)
    try:
        yield base
    finally:
        process.terminate()
        process.communicate(timeout=20)


class Lines:
    """The stdout (or stderr) of a process, line by line, with a deadline."""

    def __init__(self, process: subprocess.Popen[bytes], stream: str = "stdout") -> None:
        pipe = process.stdout if stream == "stdout" else process.stderr
        assert pipe is not None
        self.fd = pipe.fileno()
        self.buffer = b""

    def until(self, needle: str, timeout: float) -> float:
        """Seconds until a line containing `needle` appeared (fails after `timeout`)."""
        started = time.monotonic()
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                if needle in line.decode():
                    return time.monotonic() - started
            left = started + timeout - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not printed within {timeout} s")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                self.buffer += os.read(self.fd, 65536)


def test_tail_follow_shows_what_the_daemon_appends_within_a_second(
    bassi: Bassi, server: str
) -> None:
    tail = subprocess.Popen(
        bassi.command("events", "tail", "--follow"),
        cwd=bassi.cwd,
        env=clean_env(bassi.home),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        lines = Lines(tail)
        first = http("POST", server + "/api/sessions", {"title": "followed"})
        lines.until("session_started", timeout=30)  # tail is up (its start-up is not timed)
        for n in range(3):
            http("POST", f"{server}/api/sessions/{first['id']}/prompts", {"content": f"ping {n}"})
            assert lines.until(f"ping {n}", timeout=1.0) < 1.0  # prompt_received
            assert lines.until("run_completed", timeout=1.0) < 1.0
    finally:
        tail.terminate()
        tail.communicate(timeout=10)


def test_a_second_daemon_on_the_same_database_says_it_leaves_recovery_alone(
    bassi: Bassi, server: str
) -> None:
    second = subprocess.Popen(
        bassi.command("serve", "--port", "0", "--model", "scripted"),
        cwd=bassi.cwd,
        env=clean_env(bassi.home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # It must not "recover" the first daemon's live runs, and the user should know why.
        Lines(second, stream="stderr").until("another process owns this database", timeout=30)
    finally:
        second.terminate()
        second.communicate(timeout=20)


def test_a_restart_after_kill_9_says_what_recovery_did(bassi: Bassi) -> None:
    """The operator who restarts a killed daemon is told which runs it took up again."""

    def serve() -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        process = subprocess.Popen(
            bassi.command("serve", "--port", str(port), "--model", "scripted"),
            cwd=bassi.cwd,
            env=clean_env(bassi.home),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                http("GET", base + "/api/health")
                return process, base
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.1)

    first, base = serve()
    try:
        session = http("POST", base + "/api/sessions", {"title": "killed"})
        http("POST", f"{base}/api/sessions/{session['id']}/prompts", {"content": "/stream 500 20"})
        time.sleep(1)  # the run streams
    finally:
        first.kill()
        first.communicate(timeout=10)
    second, _ = serve()
    try:
        Lines(second, stream="stderr").until(
            f"bassi: recovered session {session['id']}: run", timeout=30
        )
    finally:
        second.terminate()
        second.communicate(timeout=20)
