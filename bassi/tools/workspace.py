"""Confinement: every path a tool touches resolves (through symlinks) inside the workspace."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from bassi.errors import ToolInputError, WorkspaceEscape


def confine(workspace: Path, path: str | os.PathLike[str]) -> Path:
    """The resolved absolute path of `path` (relative to the workspace or absolute).

    Raises `WorkspaceEscape` when it, or any symlink on the way, leads outside the workspace.
    """
    root = workspace.resolve()
    raw = os.fspath(path)
    if "\x00" in raw:
        raise ToolInputError("path contains a NUL byte", field="path")
    candidate = Path(raw).expanduser() if raw.startswith("~") else Path(raw)
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise WorkspaceEscape(f"{raw!r} resolves to {resolved}, outside the workspace {root}")
    return resolved


def relative(workspace: Path, path: Path) -> str:
    """`path` as shown to the model: relative to the workspace, with `/` separators."""
    root = workspace.resolve()
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return path.as_posix()


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` all at once: a temp file in the same directory, then rename.

    A file it replaces keeps its permission bits; a new file gets the usual umask ones.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
