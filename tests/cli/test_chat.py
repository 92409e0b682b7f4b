"""`bassi chat` in a pseudo-terminal: prompts, streaming, approvals, Ctrl-C, slash commands."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest

from tests.cli.conftest import Bassi, clean_env, run_ends
from tests.cli.terminal import Terminal


@pytest.fixture
def chat(bassi: Bassi) -> Iterator[Terminal]:
    terminal = Terminal(
        bassi.command("chat", "--model", "scripted"),
        cwd=bassi.cwd,
        env=clean_env(bassi.home, TERM="dumb"),
    )
    try:
        yield terminal
    finally:
        terminal.close()


def test_a_chat_session_at_the_terminal(bassi: Bassi, chat: Terminal) -> None:
    chat.expect(r"/help for commands")

    chat.expect(r"> ")
    chat.line("hello there")
    chat.expect(r"Echo #1: hello there")

    # A tool call that needs approval: the run waits for y / n / always.
    chat.expect(r"> ")
    chat.line("/write notes.txt from the chat")
    chat.expect(r"allow write_file\?")
    chat.expect(r"\[y\]es / \[n\]o / \[a\]lways: ")
    chat.line("y")
    chat.expect(r"write_file returned: wrote 13 bytes to notes.txt")
    assert (bassi.cwd / "notes.txt").read_text() == "from the chat"

    # Denied: the model is told, the file stays as it is.
    chat.expect(r"> ")
    chat.line("/write notes.txt overwritten")
    chat.expect(r"\[a\]lways: ")
    chat.line("n")
    chat.expect(r"write_file failed: .*denied at the terminal")
    assert (bassi.cwd / "notes.txt").read_text() == "from the chat"

    # Ctrl-C cancels a streaming run; the chat carries on.
    chat.expect(r"> ")
    chat.line("/stream 400 25")
    chat.expect(r"t3 ")
    chat.ctrl_c()
    chat.expect(r"run cancelled")
    chat.expect(r"> ")
    chat.line("still here?")
    chat.expect(r"Echo #5: still here\?")

    chat.expect(r"> ")
    chat.line("/cost")
    chat.expect(r"\d+ in / \d+ out tokens, cache 0 read / 0 written, over 5 runs")

    chat.expect(r"> ")
    chat.line("/exit")
    assert chat.wait() == 0
    assert "Traceback" not in chat.output
    history = (bassi.home / "history").read_text()
    assert "hello there" in history and "/stream 400 25" in history
    decisions = json.loads(bassi("audit", "tools", "--json").stdout)
    assert [(r["decision"], r["decided_by"]) for r in decisions] == [
        ("allow", "user:terminal"),  # the person at the terminal, as the web's are user:web
        ("deny", "user:terminal"),
    ]


def test_always_allows_the_same_call_from_then_on(chat: Terminal) -> None:
    chat.expect(r"> ")
    chat.line("/bash echo one")
    chat.expect(r"\[a\]lways: ")
    chat.line("always")
    chat.expect(r"bash returned: one")
    chat.expect(r"> ")
    chat.line("/bash echo one")
    chat.expect(r"bash returned: one")
    assert chat.output.count("[a]lways: ") == 1
    chat.expect(r"> ")
    chat.ctrl_c_at_prompt()
    chat.expect(r"Ctrl-C again")
    chat.expect(r"> ")
    chat.ctrl_c_at_prompt()  # twice at the prompt quits
    assert chat.wait() == 0


def test_the_approval_panel_shows_the_whole_reason(chat: Terminal) -> None:
    chat.expect(r"> ")
    chat.line("/bash ls")
    panel = chat.expect(r"allow bash\?(.|\n)*?\[a\]lways: ").group()
    # Was a subtitle on the border, as wide as `{"command": "ls"}`: "default mode ask".
    assert "default mode asks before exec tools" in panel
    chat.line("n")
    chat.expect(r"> ")
    chat.line("/exit")
    assert chat.wait() == 0


def test_control_codes_in_a_tools_output_are_shown_not_obeyed(chat: Terminal) -> None:
    chat.expect(r"> ")
    chat.line(r"/bash printf 'X\033]0;HACKED\007Y\033[2JZ'")
    chat.expect(r"\[a\]lways: ")
    chat.line("y")
    chat.expect(r"bash returned: X\\x1b\]0;HACKED\\x07Y\\x1b\[2JZ")  # the model's reply
    chat.expect(r"> ")
    chat.line("/exit")
    assert chat.wait() == 0
    assert r"X\x1b]0;HACKED\x07Y\x1b[2JZ" in chat.output.split("[a]lways: ")[1]  # the card
    assert "\x1b]0;" not in chat.output and "\x1b[2J" not in chat.output


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_chat_ended_by_a_signal_cancels_its_run_on_the_record(
    bassi: Bassi, chat: Terminal, sig: signal.Signals
) -> None:
    # A `kill` or a closed terminal: nobody is left to finish the run, so it must not stay
    # "running" for the web UI and the next command to find.
    chat.expect(r"> ")
    chat.line("/stream 2000 5")
    chat.expect(r"t3 ")
    chat.process.send_signal(sig)
    assert chat.wait() == 128 + sig
    assert "Traceback" not in chat.output
    assert run_ends(bassi) == [("run_cancelled", f"the command was stopped ({sig.name})")]


def test_a_signal_reaches_a_run_waiting_at_the_approval_prompt(bassi: Bassi) -> None:
    # input() is waiting for y / n: the signal must not wait for someone to type.
    terminal = Terminal(
        bassi.command("run", "/bash echo hi", "--model", "scripted"),
        cwd=bassi.cwd,
        env=clean_env(bassi.home, TERM="dumb"),
    )
    try:
        terminal.expect(r"\[a\]lways: ")
        terminal.process.send_signal(signal.SIGTERM)
        assert terminal.wait(timeout=20) == 128 + signal.SIGTERM
        assert "stopped by SIGTERM, so the run was cancelled" in terminal.output
    finally:
        terminal.close()
    assert run_ends(bassi) == [("run_cancelled", "the command was stopped (SIGTERM)")]
