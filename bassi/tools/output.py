"""Output caps: text above a byte cap is cut, with a visible marker saying how much there was."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Capped:
    """Text after applying a cap."""

    text: str
    """The text, ending with a truncation marker when it was cut."""
    truncated: bool
    """True when it was cut."""
    original_size: int
    """Size in bytes (UTF-8) before it was cut."""


def storable(text: str) -> str:
    """`text` with each NUL character as U+FFFD, the mark undecodable bytes get already.

    Binary output (`find -print0`, `cat` of an image) holds NULs, which PostgreSQL's jsonb
    cannot store; the same output is recorded alike on every backend.
    """
    return text.replace("\x00", "\ufffd")


def marker(*, kept: int, original_size: int) -> str:
    """The line appended to cut output."""
    return f"\n[output truncated: showing the first {kept} of {original_size} bytes]"


def cap_text(text: str, cap: int) -> Capped:
    """Keep at most `cap` bytes of `text` (never splitting a character), marking any cut."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= cap:
        return Capped(text=text, truncated=False, original_size=len(data))
    kept = data[:cap].decode("utf-8", errors="ignore")
    kept_size = len(kept.encode("utf-8", errors="replace"))
    return Capped(
        text=kept + marker(kept=kept_size, original_size=len(data)),
        truncated=True,
        original_size=len(data),
    )
