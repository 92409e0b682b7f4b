"""The file tools and the search tools on real files."""

from __future__ import annotations

import os
from pathlib import Path

from bassi.tools.base import ToolContext
from bassi.tools.executor import ToolExecutor


async def test_read_file_pages_with_offset_and_limit(
    executor: ToolExecutor, ctx: ToolContext, workspace: Path
) -> None:
    (workspace / "many.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    outcome = await executor.run(
        "c1", "read_file", {"path": "many.txt", "offset": 3, "limit": 2}, ctx
    )
    assert (
        outcome.output == "     3\tline 3\n     4\tline 4\n[6 more lines; continue with offset 5]"
    )


async def test_read_file_refuses_binary_with_a_clear_message(
    executor: ToolExecutor, ctx: ToolContext, workspace: Path
) -> None:
    (workspace / "blob.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    outcome = await executor.run("c1", "read_file", {"path": "blob.bin"}, ctx)
    assert outcome.failed
    assert outcome.error == "blob.bin is a binary file (16 bytes); only text can be read"


async def test_read_file_on_missing_file_says_so(executor: ToolExecutor, ctx: ToolContext) -> None:
    outcome = await executor.run("c1", "read_file", {"path": "nope.txt"}, ctx)
    assert outcome.error == "nope.txt does not exist"


async def test_write_file_is_atomic_and_keeps_permissions(
    executor: ToolExecutor, ctx: ToolContext, workspace: Path
) -> None:
    script = workspace / "run.sh"
    script.write_text("old\n")
    script.chmod(0o755)
    inode = script.stat().st_ino
    outcome = await executor.run(
        "c1", "write_file", {"path": "run.sh", "content": "#!/bin/sh\necho new\n"}, ctx
    )
    assert outcome.output == "wrote 19 bytes to run.sh"
    assert script.read_text() == "#!/bin/sh\necho new\n"
    assert script.stat().st_mode & 0o777 == 0o755
    assert script.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert sorted(os.listdir(workspace)) == ["hello.txt", "run.sh"]  # no temp file left


async def test_write_file_creates_parent_directories(
    executor: ToolExecutor, ctx: ToolContext, workspace: Path
) -> None:
    outcome = await executor.run(
        "c1", "write_file", {"path": "src/pkg/mod.py", "content": "x = 1\n"}, ctx
    )
    assert not outcome.failed
    assert (workspace / "src" / "pkg" / "mod.py").read_text() == "x = 1\n"


async def test_edit_file_replaces_exactly_one_match(
    executor: ToolExecutor, ctx: ToolContext, workspace: Path
) -> None:
    outcome = await executor.run(
        "c1", "edit_file", {"path": "hello.txt", "old_string": "world", "new_string": "there"}, ctx
    )
    assert outcome.output == "replaced 1 occurrence in hello.txt"
    assert (workspace / "hello.txt").read_text() == "hello\nthere\n"


async def test_edit_file_with_no_match_says_so_and_changes_nothing(
    executor: ToolExecutor, ctx: ToolContext, workspace: Path
) -> None:
    outcome = await executor.run(
        "c1", "edit_file", {"path": "hello.txt", "old_string": "moon", "new_string": "sun"}, ctx
    )
    assert outcome.error == "old_string was not found in hello.txt; nothing was changed"
    assert (workspace / "hello.txt").read_text() == "hello\nworld\n"


async def test_edit_file_with_several_matches_names_the_lines(
    executor: ToolExecutor, ctx: ToolContext, workspace: Path
) -> None:
    (workspace / "dup.txt").write_text("a = 1\nb = 2\na = 1\n")
    call = {"path": "dup.txt", "old_string": "a = 1", "new_string": "a = 3"}
    outcome = await executor.run("c1", "edit_file", call, ctx)
    assert outcome.error is not None
    assert "occurs 2 times in dup.txt (lines 1, 3)" in outcome.error
    assert (workspace / "dup.txt").read_text() == "a = 1\nb = 2\na = 1\n"
    again = await executor.run("c2", "edit_file", {**call, "replace_all": True}, ctx)
    assert again.output == "replaced 2 occurrences in dup.txt"
    assert (workspace / "dup.txt").read_text() == "a = 3\nb = 2\na = 3\n"


async def test_list_dir_marks_directories_and_links(
    executor: ToolExecutor, ctx: ToolContext, workspace: Path
) -> None:
    (workspace / "src").mkdir()
    (workspace / "link").symlink_to("hello.txt")
    outcome = await executor.run("c1", "list_dir", {}, ctx)
    assert outcome.output == "hello.txt\nlink -> hello.txt\nsrc/"


async def test_grep_filters_by_glob_and_caps_results(
    executor: ToolExecutor, ctx: ToolContext, workspace: Path
) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "a.py").write_text("import os\nimport re\n")
    (workspace / "src" / "b.txt").write_text("import nothing\n")
    (workspace / ".git").mkdir()
    (workspace / ".git" / "config").write_text("import\n")
    (workspace / "blob.bin").write_bytes(b"import\x00")
    found = await executor.run("c1", "grep", {"pattern": r"^import \w+", "glob": "*.py"}, ctx)
    assert found.output == "src/a.py:1:import os\nsrc/a.py:2:import re"
    capped = await executor.run("c2", "grep", {"pattern": "import", "max_results": 2}, ctx)
    assert capped.output.splitlines() == [
        "src/a.py:1:import os",
        "src/a.py:2:import re",
        "[stopped at 2 matches; narrow the pattern or path]",
    ]


async def test_grep_rejects_a_bad_regex_naming_the_field(
    executor: ToolExecutor, ctx: ToolContext
) -> None:
    outcome = await executor.run("c1", "grep", {"pattern": "("}, ctx)
    assert outcome.error_type == "ToolInputError"
    assert outcome.error is not None and outcome.error.startswith("grep: invalid pattern")
