"""A pseudo-terminal driver for interactive commands (stdlib only)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# The child becomes a session leader and takes the pty as its controlling terminal, so that
# Ctrl-C typed into the pty reaches it as SIGINT, exactly as in a real terminal.
_EXEC_WITH_TTY = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


class Terminal:
    """A child process on a pty: `expect` what it prints, `send` what a user types."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        self.process = subprocess.Popen(
            [sys.executable, "-c", _EXEC_WITH_TTY, *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self.output = ""
        self._seen = 0

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the child closed the pty
                chunk = b""
            self.output += chunk.decode(errors="replace").replace("\r\n", "\n")

    def expect(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        """Wait for `pattern` (a regex) in output not matched before; fail with what was seen."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output, self._seen)
            if match:
                self._seen = match.end()
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not seen in:\n{self.output[self._seen :]}")
            self._read(0.05)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def line(self, text: str) -> None:
        self.send(text + "\r")

    def ctrl_c(self) -> None:
        self.send("\x03")

    def ctrl_c_at_prompt(self) -> None:
        """Ctrl-C at an input() prompt just seen. CPython's readline loop looks at pending
        signals only when its select() is interrupted; a SIGINT that lands while readline is
        still setting up (the prompt is already printed) waits for the next key. A person
        is never that quick, so wait as one would."""
        time.sleep(0.3)
        self.ctrl_c()

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.05)
        self._read(0.05)
        return self.process.wait(timeout=1)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        os.close(self.master)
