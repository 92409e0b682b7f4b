"""Every command's happy path and its bad input, through real `bassi` processes."""

from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bassi import events as ev
from bassi.events import MAX_SEQ
from tests.cli.conftest import (
    Bassi,
    clean_env,
    make_bassi,
    one_line_error,
    run_ends,
    streaming_run,
)


def session_of(stderr: str) -> str:
    match = re.search(r"^session (\S+)$", stderr, re.MULTILINE)
    assert match, stderr
    return match.group(1)


@dataclass
class History:
    """A database with three sessions made by `bassi run`."""

    bassi: Bassi
    chat: str  # "hello", then "again"
    allowed: str  # /bash with --yes
    denied: str  # /write without --yes and without a terminal


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    bassi = make_bassi(tmp_path_factory.mktemp("history"))
    first = bassi("run", "hello", "--model", "scripted")
    assert (first.returncode, first.stdout.strip()) == (0, "Echo #1: hello"), first.stderr
    chat = session_of(first.stderr)
    again = bassi("run", "again", "--session", chat[:8])
    assert (again.returncode, again.stdout.strip()) == (0, "Echo #2: again"), again.stderr
    allowed = bassi("run", "/bash echo hi", "--yes")
    assert allowed.returncode == 0, allowed.stderr
    assert "bash returned: hi" in allowed.stdout
    denied = bassi("run", "/write secret.txt nope")
    assert denied.returncode == 0, denied.stderr
    return History(bassi, chat, session_of(allowed.stderr), session_of(denied.stderr))


# --- run -----------------------------------------------------------------------------------


def test_run_without_yes_and_without_a_terminal_denies_tool_calls(history: History) -> None:
    assert not (history.bassi.cwd / "secret.txt").exists()
    result = history.bassi("audit", "permissions", "--session", history.denied, "--json")
    [row] = json.loads(result.stdout)
    assert (row["tool_name"], row["decision"]) == ("write_file", "deny")
    assert row["reason"] == "no one to approve (use --yes)"


def test_run_json_prints_every_event_of_the_run_as_wire_json(bassi: Bassi) -> None:
    events = [ev.decode(d) for d in bassi.json_lines("run", "/stream 3", "--json")]
    assert events[0].type == "prompt_received"
    assert events[-1].type == "run_completed"
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    text = "".join(e.text for e in events if isinstance(e, ev.TokenDelta))
    assert text == "t1 t2 t3"


def test_a_failed_run_exits_1_and_says_why(bassi: Bassi) -> None:
    result = bassi("run", "/fail")
    assert result.returncode == 1
    assert "run failed: scripted failure" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_reply_cut_off_inside_a_tool_call_ends_the_run_and_says_so(bassi: Bassi) -> None:
    """An OpenAI-compatible model (the real SDK against a fake API) hits its token limit
    while writing a call's arguments: the run completes with what it said, runs nothing, and
    the terminal says why the answer stops there."""
    from tests.fakes import openai_server as O
    from tests.models.harness import API_KEY

    with O.OpenAIFake().in_thread() as fake:
        frames = O.tool_call_chunks(
            [O.call_start(0, "call_w", "write_file")],
            [O.call_args(0, '{"path": "a.py", "content": "def f')],
            finish_reason="length",
        )
        fake.add(O.stream([O.chunk({"role": "assistant", "content": "Writing it."}), *frames]))
        env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake.url}
        result = bassi("run", "write a.py", "--model", "openai:gpt-fake-1", "--yes", env=env)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "Writing it." in result.stdout
    assert "run completed: the reply hit the token limit" in result.stdout + result.stderr
    assert not (bassi.cwd / "a.py").exists()
    runs = json.loads(bassi("audit", "runs", "--json").stdout)
    assert [(r["outcome"], r["stop_reason"]) for r in runs] == [("run_completed", "max_tokens")]


@pytest.mark.parametrize(
    ("config", "said"),
    [
        ('rules = ["bogus"]', "invalid permission rule 'bogus'"),
        ('rules = ["deny:bash(rm*"]', "invalid permission rule 'deny:bash(rm*'"),
        ("max_prompt_bytes = -5", "invalid setting max_prompt_bytes"),
        ("max_turns = 0", "invalid setting max_turns"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(
    bassi: Bassi, config: str, said: str
) -> None:
    """A mistake in the config used to surface at the first prompt, after the prompt and the
    run's start were on record: the session stayed 'running' for good."""
    bassi.home.mkdir(parents=True, exist_ok=True)
    (bassi.home / "config.toml").write_text(config + "\n")

    result = bassi("run", "hi")

    assert result.returncode == 2
    assert said in one_line_error(result)
    assert not bassi.db.exists()  # refused before the database was even opened


def test_an_untrusted_workspace_file_cannot_switch_to_bypass(bassi: Bassi) -> None:
    (bassi.cwd / ".bassi").mkdir()
    (bassi.cwd / ".bassi" / "settings.toml").write_text('permission_mode = "bypass"\n')
    result = bassi("run", "/bash echo pwned > pwned.txt")
    assert result.returncode == 0
    assert "ignored permission_mode = bypass (untrusted workspace" in result.stderr
    assert not (bassi.cwd / "pwned.txt").exists()


@pytest.mark.parametrize("where", ["home", "workspace"])
@pytest.mark.parametrize("bad", ["not utf-8", "a directory"])
def test_a_settings_file_that_cannot_be_read_is_one_line_and_runs_nothing(
    bassi: Bassi, where: str, bad: str
) -> None:
    path = bassi.home / "config.toml" if where == "home" else bassi.cwd / ".bassi" / "settings.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if bad == "a directory":
        path.mkdir()
        reason = "Is a directory"
    else:
        path.write_bytes(b"\xff\xfe")
        reason = "not UTF-8 text (byte 0xff at offset 0)"
    result = bassi("run", "hi")
    assert result.returncode == 2, result.stderr
    assert one_line_error(result) == f"bassi: cannot read {path}: {reason}"
    assert not bassi.db.exists()  # nothing ran on settings it could not read


# --- sessions ------------------------------------------------------------------------------


def test_a_reader_that_stops_reading_cancels_the_run_instead_of_leaving_it_open(
    bassi: Bassi,
) -> None:
    # `bassi run ... | head -c 20`: the pipe closes while the run still streams.
    process = streaming_run(bassi, 300)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    with process.stderr:
        err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert err.splitlines()[-1] == "bassi: the output was closed, so the run was cancelled"
    assert "Traceback" not in err
    assert run_ends(bassi) == [("run_cancelled", "the output was closed")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_run_stopped_by_a_signal_is_cancelled_on_the_record(
    bassi: Bassi, sig: signal.Signals
) -> None:
    # Ctrl-C, `kill`, a closed terminal: no process is left to finish the run, so it must
    # not stay "running" (a web UI could not even cancel it).
    process = streaming_run(bassi, 2000)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + sig
    assert (
        err.decode().splitlines()[-1] == f"bassi: stopped by {sig.name}, so the run was cancelled"
    )
    assert run_ends(bassi) == [("run_cancelled", f"the command was stopped ({sig.name})")]
    [listed] = bassi.json_lines("sessions", "list", "--json")
    assert listed["status"] == "idle"


def test_sessions_list_show_and_export(history: History) -> None:
    bassi = history.bassi
    listed = bassi.json_lines("sessions", "list", "--json")
    assert {r["session_id"] for r in listed} == {history.chat, history.allowed, history.denied}
    assert all(r["status"] == "idle" for r in listed)

    shown = bassi("sessions", "show", history.chat[:8])
    assert shown.returncode == 0, shown.stderr
    assert history.chat in shown.stdout
    assert "Echo #2: again" in shown.stdout

    exported = [ev.decode(d) for d in bassi.json_lines("sessions", "export", history.allowed)]
    assert [e.seq for e in exported] == list(range(1, len(exported) + 1))
    assert exported[0].type == "session_started"
    assert any(isinstance(e, ev.ToolCallCompleted) and "hi" in e.output for e in exported)

    markdown = bassi("sessions", "export", history.allowed, "--format", "markdown")
    assert "## User\n\n/bash echo hi" in markdown.stdout
    assert "**tool call** `bash`" in markdown.stdout


def test_an_unknown_session_exits_2_with_one_line(history: History) -> None:
    for args in (
        ("sessions", "show", "no-such-session"),
        ("events", "tail", "no-such-session"),
    ):
        result = history.bassi(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "no session with id 'no-such-session'" in one_line_error(result)


def test_a_file_that_is_not_a_database_exits_1_with_one_line(bassi: Bassi) -> None:
    garbage = bassi.cwd / "garbage.db"
    garbage.write_bytes(b"this is not a database, " * 100)
    for args in (("sessions", "list"), ("run", "hi")):
        result = bassi(*args, "--db", str(garbage), db=False)
        assert result.returncode == 1, (args, result.stderr)
        assert "database error: file is not a database" in one_line_error(result)


def test_a_file_without_bassi_tables_says_to_upgrade(bassi: Bassi) -> None:
    other = bassi.cwd / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE notes (text)").connection.commit()
    for args, table in ((("sessions", "list"), "sessions"), (("events", "tail"), "events")):
        result = bassi(*args, "--db", str(other), db=False)
        assert result.returncode == 1, (args, result.stderr)
        assert one_line_error(result) == (
            f"bassi: the database has no bassi schema (no table {table!r}): run `bassi db upgrade`"
        )


READING_COMMANDS = (
    ("sessions", "list"),
    ("events", "tail"),
    ("audit", "tools"),
    ("db", "current"),
)
WRITING_COMMANDS = (("run", "hi"), ("chat",), ("db", "upgrade"))


@pytest.mark.postgres
def test_a_missing_postgres_database_is_one_line(bassi: Bassi, pg_server: str) -> None:
    url = f"{pg_server.rpartition('/')[0]}/bassi_no_such_database"
    for args in READING_COMMANDS + WRITING_COMMANDS:
        result = bassi(*args, "--db", url, db=False)
        assert result.returncode == 1, (args, result.stderr)
        assert one_line_error(result) == (
            'bassi: cannot connect to the database: database "bassi_no_such_database" '
            "does not exist"
        ), args


@pytest.mark.postgres
def test_an_unreachable_postgres_server_is_one_line(bassi: Bassi) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = bassi(
        "sessions", "list", "--db", f"postgresql://postgres@127.0.0.1:{port}/x", db=False
    )
    assert result.returncode == 1, result.stderr
    assert one_line_error(result).startswith("bassi: cannot connect to the database: ")


@pytest.mark.postgres
def test_a_postgres_database_without_bassi_tables_says_to_upgrade(
    bassi: Bassi, empty_pg: str
) -> None:
    cases = (
        (("sessions", "list"), "sessions"),
        (("events", "tail"), "events"),
        (("audit", "tools"), "audit_tool_calls"),
    )
    for args, table in cases:
        result = bassi(*args, "--db", empty_pg, db=False)
        assert result.returncode == 1, (args, result.stderr)
        assert one_line_error(result) == (
            f"bassi: the database has no bassi schema (no table {table!r}): run `bassi db upgrade`"
        )


def test_an_audit_report_on_a_sqlite_file_that_is_not_bassis_says_to_upgrade(
    bassi: Bassi,
) -> None:
    other = bassi.cwd / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    result = bassi("audit", "runs", "--db", str(other), db=False)
    assert result.returncode == 1, result.stderr
    assert one_line_error(result) == (
        "bassi: the database has no bassi schema (no table 'audit_runs'): run `bassi db upgrade`"
    )
    assert "SQL error" in bassi("audit", "SELECT * FROM nope", "--db", str(other), db=False).stderr


def test_a_database_url_with_parameters_is_one_database(bassi: Bassi) -> None:
    url = f"sqlite:///{bassi.cwd / 'q.db'}?timeout=10"
    result = bassi("run", "hello", "--yes", "--db", url, db=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Echo #1: hello"
    assert (bassi.cwd / "q.db").exists()
    assert not [p.name for p in bassi.cwd.iterdir() if "?" in p.name]  # no second database


def test_a_prompt_that_is_not_text_exits_2_with_one_line_and_records_nothing(
    bassi: Bassi,
) -> None:
    session = session_of(bassi("run", "hello").stderr)
    # A byte that is not UTF-8 on the command line reaches Python as a lone surrogate.
    for args in (("run", "caf\udce9"), ("run", "caf\udce9", "--session", session)):
        result = bassi(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert one_line_error(result) == (
            "bassi: the prompt is not valid Unicode text: character 4 ('\\udce9') is a lone "
            "surrogate"
        )
    assert [r["session_id"] for r in bassi.json_lines("sessions", "list", "--json")] == [session]
    events = bassi.json_lines("sessions", "export", session)
    assert [e["type"] for e in events].count("prompt_received") == 1  # only "hello"


def test_yes_on_an_existing_session_is_recorded_as_the_flag_not_a_person(bassi: Bassi) -> None:
    session = session_of(bassi("run", "hello").stderr)  # made in the default mode: it asks
    result = bassi("run", "/write notes.txt hi", "--session", session, "--yes")
    assert result.returncode == 0, result.stderr
    rows = json.loads(bassi("audit", "tools", "--json").stdout)
    assert [(r["decided_by"], r["outcome"]) for r in rows] == [("cli:--yes", "completed")]


def test_an_ended_session_takes_no_more_prompts(bassi: Bassi) -> None:
    session = session_of(bassi("run", "hello").stderr)
    ended = bassi("sessions", "end", session, "--reason", "done here")
    assert ended.returncode == 0, ended.stderr
    assert f"ended session {session}" in ended.stdout
    refused = bassi("run", "more", "--session", session)
    assert refused.returncode == 2
    assert "ended" in one_line_error(refused)


def _cut_a_run_short(bassi: Bassi, session: str) -> None:
    """What a SIGKILL mid-run leaves in the log: a run started, a tool call started, no end."""
    import asyncio

    from bassi.settings import database_url
    from bassi.store.eventstore import EventStore

    async def main() -> None:
        store = await EventStore.open(database_url(str(bassi.db)))
        ids = {"session_id": session, "run_id": "cut-run"}
        await store.append_many(
            [
                ev.PromptReceived(**ids, content="/bash sleep 30"),
                ev.RunStarted(**ids, model="scripted"),
                ev.ToolCallStarted(
                    **ids, tool_call_id="call-1", tool_name="bash", input={"command": "sleep 30"}
                ),
            ],
            durable=True,
        )
        await store.close()

    asyncio.run(main())


def test_run_accounts_for_a_run_a_crash_cut_short_then_continues(bassi: Bassi) -> None:
    session = session_of(bassi("run", "hello").stderr)
    _cut_a_run_short(bassi, session)
    result = bassi("run", "again", "--session", session)
    assert result.returncode == 0, result.stderr
    assert "again" in result.stdout
    assert "cut short" in result.stderr and "1 tool call(s) closed" in result.stderr
    lines = bassi.json_lines("events", "tail", session, "-n", "100", "--json")
    ends = [(e["run_id"], e["type"]) for e in lines if e["type"] in ev.TERMINAL_RUN_TYPES]
    assert ends[1:] == [("cut-run", "run_interrupted"), (ends[2][0], "run_completed")]
    failed = [e for e in lines if e["type"] == "tool_call_failed"]
    assert [(e["tool_call_id"], e["error_type"]) for e in failed] == [("call-1", "Interrupted")]


def test_run_leaves_alone_a_run_that_another_process_is_running(bassi: Bassi) -> None:
    import fcntl
    import os

    from bassi.store.sqlite import RunLocks

    session = session_of(bassi("run", "hello").stderr)
    _cut_a_run_short(bassi, session)
    fd = os.open(f"{bassi.db}.runs", os.O_RDWR | os.O_CREAT)
    try:
        # What a live process running that run holds (this test process plays it).
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, RunLocks._offset(session))
        result = bassi("run", "again", "--session", session)
    finally:
        os.close(fd)
    assert result.returncode == 2
    assert "in progress in another process" in one_line_error(result)
    lines = bassi.json_lines("events", "tail", session, "-n", "100", "--json")
    cut = [e["type"] for e in lines if e["run_id"] == "cut-run"]
    assert cut == ["prompt_received", "run_started", "tool_call_started"], "left untouched"


def test_a_second_command_cannot_take_over_a_session_another_is_running(bassi: Bassi) -> None:

    session = session_of(bassi("run", "hello").stderr)
    first = subprocess.Popen(
        bassi.command("run", "/bash sleep 3; echo slept", "--session", session, "--yes"),
        cwd=bassi.cwd,
        env=clean_env(bassi.home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(100):  # until the first command's run has started its tool call
            lines = bassi.json_lines("events", "tail", session, "-n", "5", "--json")
            if any(e["type"] == "tool_call_started" for e in lines):
                break
            time.sleep(0.1)
        second = bassi("run", "second prompt", "--session", session)
        assert second.returncode == 2, second.stderr
        assert "in progress in another process" in one_line_error(second)
    finally:
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert "slept" in out
    lines = bassi.json_lines("events", "tail", session, "-n", "100", "--json")
    assert not [e for e in lines if e["type"] in ("run_interrupted", "session_recovered")]


# --- terminal control codes ----------------------------------------------------------------

RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\x0d", "\u202e")
"""What must never reach a terminal from a model, a tool or the log: ESC (screen clears,
colours, window titles), BEL, CSI as a C1 control, a lone carriage return (overwrites the
line), a bidi override (reorders what is seen)."""


def test_control_codes_from_a_model_or_a_tool_are_shown_not_obeyed(bassi: Bassi) -> None:
    # A reply with a screen clear and a bidi override (the scripted model echoes the prompt),
    # and a tool whose output retitles the window, rings, clears, overwrites and sends a CSI.
    reply = bassi("run", "a \x1b[2J b \u202e c")
    assert reply.returncode == 0, reply.stderr
    assert reply.stdout == "Echo #1: a \\x1b[2J b \\u202e c\n"
    command = r"printf 'X\033]0;HACKED\007Y\033[2JZ\rW\302\233'"
    tool = bassi("run", f"/bash {command}", "--yes")
    assert tool.returncode == 0, tool.stderr
    shown = r"X\x1b]0;HACKED\x07Y\x1b[2JZ\x0dW\x9b"
    assert shown in tool.stdout  # the model's reply quotes the output
    assert shown in tool.stderr  # the tool card
    session = session_of(tool.stderr)

    readers = [
        ("events", "tail", "-n", "100"),
        ("sessions", "list"),
        ("sessions", "show", session),
        ("audit", "tools"),
        ("audit", "SELECT json_extract(payload, '$.output') AS output FROM events"),
    ]
    for args in [*readers, ("run", "x", "--session", session)]:
        result = bassi(*args)
        assert result.returncode == 0, (args, result.stderr)
        printed = result.stdout + result.stderr
        assert not [c for c in RAW_CONTROLS if c in printed], (args, printed)
    for args in readers[:1] + readers[3:]:
        assert "\\x1b]0;HACKED" in bassi(*args).stdout, args

    # --json output is data: JSON escapes ESC and BEL, and it decodes to exactly what ran.
    raw = bassi("events", "tail", session, "--after", "0", "--json").stdout
    assert "\x1b" not in raw and "\x07" not in raw and "\\u001b]0;HACKED" in raw
    lines = [json.loads(x) for x in raw.splitlines()]
    [completed] = [x for x in lines if x["type"] == "tool_call_completed"]
    assert completed["output"].startswith("X\x1b]0;HACKED\x07Y\x1b[2JZ\rW\x9b")


# --- events --------------------------------------------------------------------------------


def test_events_tail_prints_the_last_events_and_a_session_from_a_cursor(history: History) -> None:
    last = history.bassi("events", "tail", "-n", "2")
    lines = last.stdout.splitlines()
    assert len(lines) == 2
    assert "message_completed" in lines[0] and "run_completed" in lines[1]

    events = [
        ev.decode(d)
        for d in history.bassi.json_lines(
            "events", "tail", history.chat[:8], "--after", "3", "--json"
        )
    ]
    assert events[0].seq == 4
    assert {e.session_id for e in events} == {history.chat}
    assert events[-1].type == "run_completed"


def test_events_tail_cursors_beyond_64_bits_are_usage_errors(history: History) -> None:
    top = str(MAX_SEQ)
    for session in ((), (history.chat,)):
        for bad in (str(MAX_SEQ + 1), "-1"):
            result = history.bassi("events", "tail", *session, "--after", bad)
            assert result.returncode == 2, result.stderr
            assert one_line_error(result) == f"bassi: --after must be from 0 to {top}"
        result = history.bassi("events", "tail", *session, "--after", top)
        assert (result.returncode, result.stdout) == (0, ""), result.stderr
    many = history.bassi("events", "tail", "--lines", str(MAX_SEQ + 1))
    assert many.returncode == 0 and "run_completed" in many.stdout, many.stderr


@pytest.mark.postgres
def test_events_tail_cursors_on_postgres(bassi: Bassi, empty_pg: str) -> None:
    assert bassi("run", "hi", "--db", empty_pg, db=False).returncode == 0
    for after, code in ((str(MAX_SEQ), 0), (str(MAX_SEQ + 1), 2)):
        result = bassi("events", "tail", "--after", after, "--db", empty_pg, db=False)
        assert result.returncode == code, result.stderr
        assert result.stdout == ""


# --- audit ---------------------------------------------------------------------------------


def test_audit_json_is_valid_json_for_numbers_json_has_not(history: History) -> None:
    result = history.bassi(
        "audit", "SELECT 1e999 AS up, -1e999 AS down, 1.5 AS plain, NULL AS missing", "--json"
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"emitted {name}"))
    assert rows == [{"up": "Infinity", "down": "-Infinity", "plain": 1.5, "missing": None}]


def test_audit_reports(history: History) -> None:
    tools = history.bassi("audit", "tools", "--json")
    rows = {r["tool_name"]: r for r in json.loads(tools.stdout)}
    assert (rows["bash"]["decision"], rows["bash"]["decided_by"], rows["bash"]["outcome"]) == (
        "allow",
        "mode:bypass",
        "completed",
    )
    assert (rows["write_file"]["decision"], rows["write_file"]["decided_by"]) == (
        "deny",
        "cli:no-terminal",  # no person decided: `bassi run` had no terminal to ask at
    )
    assert (
        rows["write_file"]["result"] == "denied by cli:no-terminal: no one to approve (use --yes)"
    )
    assert rows["bash"]["result"] == "hi\n[exit code 0]"  # what the call returned

    mine = history.bassi("audit", "tools", "--session", history.allowed[:8], "--json")
    assert [r["tool_name"] for r in json.loads(mine.stdout)] == ["bash"]  # a prefix will do
    unknown = history.bassi("audit", "runs", "--session", "ffffffff")
    assert unknown.returncode == 2 and "ffffffff" in unknown.stderr

    usage = history.bassi("audit", "usage", "--csv").stdout.splitlines()
    assert usage[0].startswith("session_id,provider,model,model_calls,input_tokens")
    assert len(usage) == 4


def test_audit_sql_prints_a_table(history: History) -> None:
    sql = (
        "SELECT type, COUNT(*) AS n FROM events WHERE type LIKE 'run_%' GROUP BY type ORDER BY type"
    )
    result = history.bassi("audit", sql)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("│")]
    assert rows == [["│", "run_completed", "│", "4", "│"], ["│", "run_started", "│", "4", "│"]]
    assert "2 rows" in result.stdout


def test_invalid_sql_exits_1_with_the_databases_message(history: History) -> None:
    result = history.bassi("audit", "SELEC * FROM events")
    assert result.returncode == 1
    assert 'near "SELEC": syntax error' in one_line_error(result)


def test_audit_refuses_writes_and_changes_nothing(history: History) -> None:
    def count() -> int:
        with sqlite3.connect(history.bassi.db) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    before = count()
    beside = history.bassi.cwd / "beside.db"
    for sql in (
        "DELETE FROM events",
        "SELECT 1; DELETE FROM events",
        f"ATTACH DATABASE '{beside}' AS other",  # would create the file
    ):
        result = history.bassi("audit", sql)
        assert result.returncode == 1, sql
        line = one_line_error(result)
        assert "read-only" in line or "one statement" in line, line
    assert count() == before
    assert not beside.exists()


# --- the rest ------------------------------------------------------------------------------


def test_models_says_which_providers_have_keys_and_never_prints_one(bassi: Bassi) -> None:
    result = bassi("models", db=False, env={"ANTHROPIC_API_KEY": "sk-ant-secret-123"})
    assert result.returncode == 0, result.stderr
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "yes" in rows["anthropic"] and "ANTHROPIC_API_KEY" in rows["anthropic"]
    assert " no " in rows["openai"]
    assert "scripted" in rows
    assert "sk-ant-secret" not in result.stdout


def test_piped_output_is_neither_cut_nor_folded_at_80_columns(bassi: Bassi) -> None:
    result = bassi("models", db=False, env={"COLUMNS": ""})  # a pipe, and no width known
    assert result.returncode == 0, result.stderr
    assert "OPENROUTER_API_KEY" in result.stdout  # not "OPENROUTER_AP…"
    assert "openrouter:anthropic/claude-sonnet-4.5" in result.stdout
    [default] = [line for line in result.stdout.splitlines() if line.startswith("default model")]
    assert default.endswith("(set BASSI_MODEL or default_model to choose)")


def test_looking_at_a_database_that_is_not_there_creates_none(bassi: Bassi) -> None:
    typo = bassi.cwd / "typo.db"
    for command in (("db", "current"), ("db", "check"), ("sessions", "list")):
        result = bassi(*command, "--db", str(typo), db=False)
        assert result.returncode == 1, command
        assert f"no database at {typo}" in one_line_error(result)
    assert not typo.exists()


def test_db_check_passes_on_a_database_bassi_made(history: History) -> None:
    result = history.bassi("db", "check")
    assert (result.returncode, result.stdout.strip()) == (0, "ok: revision 0001, schema matches")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run",), "Missing argument"),
        (("audit", "tools", "--json", "--csv"), "choose one of --json and --csv"),
        (("serve", "--port", "99999"), "port: Input should be less than or equal to 65535"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    bassi: Bassi, args: tuple[str, ...], message: str
) -> None:
    result = bassi(*args)
    assert result.returncode == 2
    assert message in one_line_error(result)


@pytest.mark.parametrize(
    "args", [("run", "hi"), ("sessions", "list"), ("db", "upgrade"), ("serve", "--port", "0")]
)
def test_an_empty_db_is_refused_not_taken_as_the_default(
    bassi: Bassi, args: tuple[str, ...]
) -> None:
    result = bassi(*args, "--db", "", db=False, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "Invalid value for '--db': give a database path or URL" in one_line_error(result)
    assert not bassi.home.exists()  # the default database was not created


def test_serve_refuses_an_exposed_bind_without_a_token_in_one_line(bassi: Bassi) -> None:
    result = bassi("serve", "--host", "0.0.0.0", "--port", "1")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in one_line_error(result)


def test_serve_on_a_file_that_is_not_a_database_is_one_line_before_serving(
    bassi: Bassi,
) -> None:
    for db, says in (
        ("/etc/passwd", "database error: file is not a database"),
        (str(bassi.cwd), "database error: unable to open database file"),
    ):
        result = bassi("serve", "--port", "0", "--db", db, db=False, timeout=30)
        assert result.returncode == 1, result.stderr
        assert one_line_error(result) == f"bassi: {says}"  # and no "serving on" before it


@pytest.mark.postgres
def test_serve_on_a_missing_postgres_database_is_one_line(bassi: Bassi, pg_server: str) -> None:
    url = f"{pg_server.rpartition('/')[0]}/bassi_no_such_database"
    result = bassi("serve", "--port", "0", "--db", url, db=False, timeout=30)
    assert result.returncode == 1, result.stderr
    assert one_line_error(result) == (
        'bassi: cannot connect to the database: database "bassi_no_such_database" does not exist'
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--model", "nosuch:x"), "unknown model provider 'nosuch'"),
        (("--model", "anthropic:claude-x"), "anthropic needs an API key"),
        (("--workspace", "/definitely/not/here"), "is not a directory"),
    ],
)
def test_serve_refuses_defaults_no_session_could_use(
    bassi: Bassi, args: tuple[str, ...], says: str
) -> None:
    # It would otherwise report healthy and answer every "New session" with a 422.
    result = bassi("serve", "--port", "0", *args, timeout=30)
    assert result.returncode == 2
    assert says in one_line_error(result)


def test_serve_refuses_a_bad_rule_in_the_config(bassi: Bassi) -> None:
    bassi.home.mkdir(parents=True, exist_ok=True)
    (bassi.home / "config.toml").write_text('rules = ["deny:bash(rm*"]\n')
    result = bassi("serve", "--port", "0", timeout=30)
    assert result.returncode == 2
    assert "invalid permission rule 'deny:bash(rm*'" in one_line_error(result)


def test_every_command_but_models_and_version_takes_db() -> None:
    # README: "Every command that uses a database (all but `bassi models` and `bassi version`)
    # takes `--db`".
    from typing import Any

    import typer.main

    from bassi.cli import app

    def leaves(command: Any, path: str) -> list[tuple[str, Any]]:
        if hasattr(command, "commands"):  # a group (typer vendors click's classes)
            return [
                leaf
                for name, sub in command.commands.items()
                for leaf in leaves(sub, f"{path} {name}".strip())
            ]
        return [(path, command)]

    without = {
        path
        for path, command in leaves(typer.main.get_command(app), "")
        if not any("--db" in p.opts for p in command.params)
    }
    assert without == {"models", "version"}
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "Every command that uses a database (all but `bassi models` and `bassi version`)" in (
        " ".join(readme.split())
    )
