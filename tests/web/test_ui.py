"""The web UI in a real browser: Playwright driving Debian's chromium, headless.

Screenshots of every test are kept under test-artifacts/web/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.web.conftest import ARTIFACTS, ProcessServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessServer]:
    server = ProcessServer(tmp_path_factory.mktemp("ui")).start()
    yield server
    server.stop()


class Watched:
    """A page plus what it did that a user must never see: dialogs, errors, outside requests."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", lambda request: self.requests.append(request.url))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def shoot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def watched(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    page = context.new_page()
    watched = Watched(page)
    yield watched
    watched.shoot(request.node.name)
    context.close()
    assert watched.dialogs == [], watched.dialogs
    assert watched.errors == [], watched.errors


def assert_nothing_from_outside(watched: Watched, server: ProcessServer) -> None:
    origins = {server.url, server.url.replace("http://", "ws://")}
    foreign = [u for u in watched.requests if not any(u.startswith(o) for o in origins)]
    assert foreign == []


def new_session(page: Page, title: str) -> None:
    page.fill("#new-title", title)
    page.click("#create-session")
    expect(page.locator("#session-title")).to_have_text(title)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")


def send(page: Page, text: str) -> None:
    # A reply's text can show before its run has ended; a prompt sent then would be refused.
    expect(page.locator("#session-status")).to_have_text("idle", timeout=15_000)
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")


def test_chat_streams_a_reply_in(watched: Watched, ui_server: ProcessServer) -> None:
    page = watched.page
    page.goto(ui_server.url)
    expect(page.locator("#fallback-note")).to_contain_text("scripted model")
    new_session(page, "chat")
    expect(page.locator(".session-item.active")).to_contain_text("chat")

    send(page, "hello bassi")
    expect(page.locator(".msg.user")).to_have_text(re.compile("hello bassi"))
    expect(page.locator(".msg.assistant").last).to_contain_text("Echo #1: hello bassi")
    expect(page.locator("#prompt")).to_have_value("")

    send(page, "/stream 60 40")
    reply = page.locator(".msg.assistant").last
    expect(reply).to_contain_text("t5")
    assert "t60" not in reply.inner_text()  # it arrives token by token
    expect(page.locator("#session-status")).to_have_text("running")
    expect(page.locator("#cancel")).to_be_enabled()
    watched.shoot("chat-mid-stream")
    expect(reply).to_contain_text("t60")
    expect(page.locator("#session-status")).to_have_text("idle")
    expect(page.locator(".notice.run-end").last).to_contain_text("Run completed")
    expect(page.locator("#usage")).not_to_have_text(re.compile(r"^0 in · 0 out"))

    # Thinking is shown collapsed, and opens on a click.
    send(page, "/think weighing the options")
    thinking = page.locator("details.thinking").last
    expect(thinking.locator("summary")).to_have_text("Thinking")
    expect(thinking.locator(".thinking-text")).to_be_hidden()
    thinking.locator("summary").click()
    expect(thinking.locator(".thinking-text")).to_be_visible()
    expect(thinking.locator(".thinking-text")).not_to_be_empty()
    expect(page.locator("#session-status")).to_have_text("idle")

    # The event inspector lists every event with its seq, type and JSON.
    page.click("#toggle-inspector")
    rows = page.locator("#inspector-list .event-row")
    expect(rows.first).to_contain_text("session_started")
    expect(rows.last).to_contain_text("run_completed")
    rows.first.locator(".event-summary").click()
    expect(rows.first.locator(".event-json")).to_contain_text('"title": "chat"')

    # The model selector switches the session's model.
    page.fill("#model-input", "scripted:other")
    page.press("#model-input", "Enter")
    page.locator("#prompt").focus()
    expect(page.locator(".notice.info").last).to_contain_text("to scripted:other")
    assert_nothing_from_outside(watched, ui_server)


def test_permission_prompt_allow_shows_the_tool_output(
    watched: Watched, ui_server: ProcessServer
) -> None:
    page = watched.page
    page.goto(ui_server.url)
    new_session(page, "tools")
    send(page, "/bash echo hi")
    card = page.locator(".tool-card")
    expect(card.locator(".permission")).to_be_visible()
    expect(card.locator(".tool-name")).to_have_text("bash")
    expect(card.locator(".tool-input")).to_contain_text('"command": "echo hi"')
    expect(page.locator("#session-status")).to_have_text("awaiting approval")
    for button in (".allow-once", ".allow-always", ".deny"):
        expect(card.locator(button)).to_be_visible()
    watched.shoot("permission-prompt")

    card.locator(".allow-once").click()
    expect(card.locator(".tool-output")).to_contain_text("hi")
    expect(card).to_have_attribute("data-status", "done")
    expect(card.locator(".tool-status")).to_have_text("done · allowed by user:web")
    expect(card.locator(".tool-duration")).to_have_text(re.compile(r"\d+(\.\d)? m?s"))
    expect(card.locator(".permission")).to_be_hidden()
    expect(page.locator(".msg.assistant").last).to_contain_text("bash returned: hi")
    expect(page.locator("#session-status")).to_have_text("idle")


def test_an_untitled_session_has_one_name_in_the_list_and_the_header(
    watched: Watched, ui_server: ProcessServer
) -> None:
    page = watched.page
    page.goto(ui_server.url)
    page.click("#create-session")
    header = page.locator("#session-title")
    expect(header).to_have_text(re.compile(r"^Session [0-9a-f]{8}$"))
    active = page.locator(".session-item.active .session-name")
    expect(active).to_have_text(header.inner_text())


def test_a_long_title_does_not_push_the_page_wider_than_the_window(
    watched: Watched, ui_server: ProcessServer
) -> None:
    page = watched.page
    page.goto(ui_server.url)
    new_session(page, "x" * 200)  # the form's maxlength, and no space to wrap at
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    send_box = page.locator("#send").bounding_box()
    assert send_box is not None and send_box["x"] + send_box["width"] <= width


def test_a_phone_width_screen_gets_a_usable_layout(
    browser: Browser, ui_server: ProcessServer
) -> None:
    """At 420 px the sidebar used to keep its 260 px and leave the conversation and the
    composer 160 px: one letter per line, the fallback note and the error toast overflowing."""
    context = browser.new_context(viewport={"width": 420, "height": 800})
    context.set_default_timeout(10_000)
    watched = Watched(context.new_page())
    page = watched.page

    def box(selector: str) -> dict[str, float]:
        found = page.locator(selector).bounding_box()
        assert found is not None, selector
        return found

    def inside_the_window(selector: str) -> None:
        b = box(selector)
        assert b["x"] >= 0 and b["x"] + b["width"] <= 420 + 0.5, (selector, b)

    def not_wider_than_the_window() -> None:
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
        assert page.evaluate("document.body.scrollWidth") <= 420

    try:
        page.goto(ui_server.url)
        expect(page.locator("#fallback-note")).to_contain_text("scripted model")
        new_session(page, "on a phone")
        send(page, "hello from a small screen")
        expect(page.locator(".msg.assistant").last).to_contain_text("Echo #1: hello from")
        not_wider_than_the_window()
        for selector in ("#fallback-note", "#session-bar", "#conversation", "#composer"):
            inside_the_window(selector)
        assert box("#prompt")["width"] >= 250  # room for words, not a letter per line
        assert box("#conversation")["width"] >= 400
        assert box("#conversation")["height"] >= 250
        composer = box("#composer")
        assert composer["y"] + composer["height"] <= 800 + 0.5  # on screen without scrolling
        expect(page.locator(".session-item.active")).to_be_visible()

        # An error: the toast fits the window and leaves the session list alone.
        page.fill("#model-input", "nope:no-such-model")
        page.press("#model-input", "Enter")
        expect(page.locator("#toast")).to_be_visible()
        inside_the_window("#toast")
        toast, sessions = box("#toast"), box("#session-list")
        assert toast["y"] >= sessions["y"] + sessions["height"], (toast, sessions)
        watched.shoot("test_a_phone_width_screen_gets_a_usable_layout")

        page.click("#toggle-inspector")
        expect(page.locator("#inspector-list li").first).to_be_visible()
        not_wider_than_the_window()
        inside_the_window("#inspector")
    finally:
        watched.shoot("test_a_phone_width_screen_gets_a_usable_layout-last")
        context.close()
    assert watched.dialogs == [] and watched.errors == [], (watched.dialogs, watched.errors)


def test_with_a_provider_key_the_conversation_keeps_the_height(
    watched: Watched, tmp_path: Path
) -> None:
    """With a key set there is no fallback note; the composer must not take its place and
    grow to half the window."""
    server = ProcessServer(tmp_path, env={"ANTHROPIC_API_KEY": "sk-ant-test-0000000000"}).start()
    try:
        page = watched.page
        page.goto(server.url)
        new_session(page, "layout")
        expect(page.locator("#fallback-note")).to_be_hidden()
        composer = page.locator("#composer").bounding_box()
        conversation = page.locator("#conversation").bounding_box()
        assert composer is not None and conversation is not None
        assert composer["height"] < 200, composer
        assert conversation["height"] > 500, conversation
        assert composer["y"] + composer["height"] == pytest.approx(860, abs=2)  # at the bottom
    finally:
        server.stop()


def test_a_call_left_waiting_by_a_cancel_reads_not_run_rather_than_denied(
    watched: Watched, ui_server: ProcessServer
) -> None:
    page = watched.page
    page.goto(ui_server.url)
    new_session(page, "cancel at the prompt")
    send(page, "/bash echo hi")
    card = page.locator(".tool-card")
    expect(card.locator(".permission")).to_be_visible()
    page.click("#cancel")
    expect(page.locator(".notice.cancelled")).to_be_visible()
    expect(card.locator(".tool-status")).to_have_text("not run · the run was cancelled")
    expect(card.locator(".permission")).to_be_hidden()


def test_a_call_cut_off_by_the_token_limit_reads_not_run(watched: Watched, tmp_path: Path) -> None:
    """A real model (the Anthropic SDK against a fake API) runs out of tokens while writing a
    tool call: the card it had started says the call never ran, and the run's end says the
    reply hit the token limit."""
    from tests.fakes import anthropic_server as A
    from tests.models.harness import API_KEY

    with A.AnthropicFake().in_thread() as fake:
        cut = A.ToolUse("toolu_cut", "write_file", ['{"path": "a.py", "content": "def f'])
        fake.add(A.stream(A.events(A.text("Writing it."), cut, stop_reason="max_tokens")))
        server = ProcessServer(
            tmp_path,
            args=("--model", "anthropic:claude-fake-1"),
            env={"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.url},
        ).start()
        try:
            page = watched.page
            page.goto(server.url)
            new_session(page, "cut off")
            send(page, "write a.py")
            expect(page.locator(".notice.run-end")).to_contain_text("the reply hit the token limit")
            card = page.locator(".tool-card")
            expect(card.locator(".tool-name")).to_have_text("write_file")
            expect(card).to_have_attribute("data-status", "skipped")
            expect(card.locator(".tool-status")).to_have_text(
                "not run · the reply stopped first (max_tokens)"
            )
            expect(page.locator(".msg.assistant").last).to_contain_text("Writing it.")
        finally:
            server.stop()


def test_cancel_stops_a_long_stream(watched: Watched, ui_server: ProcessServer) -> None:
    page = watched.page
    page.goto(ui_server.url)
    new_session(page, "cancel")
    send(page, "/stream 1000 20")
    reply = page.locator(".msg.assistant").last
    expect(reply).to_contain_text("t10")
    page.fill("#prompt", "not now")
    page.press("#prompt", "Enter")  # a run works: Enter keeps the text rather than send it
    expect(page.locator("#prompt")).to_have_value("not now")
    expect(page.locator("#toast")).to_be_hidden()  # no "a run is in progress" refusal
    page.fill("#prompt", "")
    page.click("#cancel")
    expect(page.locator(".notice.cancelled")).to_contain_text("Run cancelled (immediate)")
    expect(page.locator("#session-status")).to_have_text("idle")
    expect(page.locator("#cancel")).to_be_disabled()
    assert "t1000" not in reply.inner_text()
    send(page, "still here?")  # the session takes prompts again
    expect(page.locator(".msg.assistant").last).to_contain_text("Echo #2: still here?")


def test_reload_mid_stream_resumes_the_conversation_and_the_stream(
    watched: Watched, ui_server: ProcessServer
) -> None:
    page = watched.page
    page.goto(ui_server.url)
    new_session(page, "reload")
    send(page, "first")
    expect(page.locator(".msg.assistant")).to_contain_text("Echo #1: first")
    send(page, "/stream 150 20")
    expect(page.locator(".msg.assistant").last).to_contain_text("t10")
    seen_before = page.locator(".msg.assistant").last.inner_text()

    page.reload()
    expect(page.locator("#session-title")).to_have_text("reload")
    expect(page.locator(".msg.user")).to_have_count(2)
    expect(page.locator(".msg.user").first).to_contain_text("first")
    expect(page.locator(".msg.assistant").first).to_contain_text("Echo #1: first")
    reply = page.locator(".msg.assistant").last
    expect(reply).to_contain_text("t150", timeout=15_000)
    assert len(reply.inner_text()) > len(seen_before)
    expect(page.locator(".msg.assistant")).to_have_count(2)  # nothing shown twice
    expect(page.locator(".notice.run-end")).to_have_count(2)
    assert reply.inner_text().count("t15 ") == 1


def test_model_output_cannot_run_script(watched: Watched, ui_server: ProcessServer) -> None:
    page = watched.page
    page.goto(ui_server.url)
    new_session(page, "xss")
    payload = "<img src=x onerror=alert(1)> <script>alert(2)</script> [link](javascript:alert(3))"
    send(page, payload)
    reply = page.locator(".msg.assistant").last
    expect(reply).to_contain_text("Echo #1: <img src=x onerror=alert(1)>")
    expect(reply).to_contain_text("<script>alert(2)</script>")
    expect(page.locator("#session-status")).to_have_text("idle")
    assert page.locator("#conversation img, #conversation script").count() == 0
    for href in page.locator("#conversation a").evaluate_all("links => links.map(a => a.href)"):
        assert not href.startswith("javascript:")
    if page.locator("#conversation a").count():
        page.locator("#conversation a").first.click()
    page.wait_for_timeout(300)  # a dialog would have opened by now
    assert watched.dialogs == []


def test_login_page_then_the_ui_works_with_the_cookie(
    watched: Watched, process_server: Any
) -> None:
    server = process_server(args=("--token", "let-me-in")).start(wait=False)
    from tests.web.conftest import wait_until_healthy

    wait_until_healthy(server.url, headers={"Authorization": "Bearer let-me-in"})
    page = watched.page
    page.goto(server.url)
    expect(page).to_have_url(re.compile("/login$"))
    page.fill("#token", "wrong")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("wrong token")
    page.fill("#token", "let-me-in")
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/(#.*)?$"))
    new_session(page, "authenticated")
    send(page, "hi")
    expect(page.locator(".msg.assistant")).to_contain_text("Echo #1: hi")


def test_sigkill_restart_reload_shows_what_recovery_did(watched: Watched, tmp_path: Path) -> None:
    server = ProcessServer(tmp_path).start()
    try:
        page = watched.page
        page.goto(server.url)
        new_session(page, "crash")
        send(page, "/bash sleep 2; echo finished")
        card = page.locator(".tool-card")
        card.locator(".allow-once").click()
        expect(card).to_have_attribute("data-status", "running")

        server.kill()
        expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        watched.shoot("recovery-server-down")
        server.start()
        # The open page reconnects by itself and picks up from its last seq...
        recovery = page.locator(".notice.recovery")
        expect(recovery).to_contain_text("Recovered after a restart", timeout=20_000)
        # ...and a reload shows the same story, once.
        page.reload()
        expect(recovery).to_have_count(1)
        expect(recovery).to_contain_text("1 interrupted tool call closed; the run carries on")
        expect(card).to_have_attribute("data-status", "interrupted")
        expect(card.locator(".tool-output")).to_contain_text("the process stopped")
        expect(page.locator(".notice.run-end")).to_contain_text("Run completed")
        expect(page.locator(".msg.assistant").last).to_contain_text("bash failed")
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
        watched.shoot("recovery-after-reload")
    finally:
        server.stop()


def test_a_message_a_restart_cut_off_is_marked_and_the_resumed_one_starts_afresh(
    watched: Watched, tmp_path: Path
) -> None:
    server = ProcessServer(tmp_path).start()
    try:
        page = watched.page
        page.goto(server.url)
        new_session(page, "cut")
        send(page, "/stream 150 20")
        expect(page.locator(".msg.assistant").last).to_contain_text("t10")
        server.kill()
        expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        server.start()
        expect(page.locator(".notice.run-end")).to_contain_text("Run completed", timeout=30_000)
        cut = page.locator(".msg.assistant[data-cut=true]")
        expect(cut).to_have_count(1)
        expect(cut).to_contain_text("cut off by a restart")
        resumed = page.locator(".msg.assistant").last
        expect(resumed).to_have_attribute("data-complete", "true")
        text = resumed.locator(".blocks").inner_text()
        assert text.split() == [f"t{n}" for n in range(1, 151)]  # nothing glued on
        watched.shoot("cut-off-message")
    finally:
        server.stop()
