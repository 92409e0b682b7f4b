"""Every error bassi raises on purpose.

    BassiError                      root: catch this to catch anything bassi means to raise
    ├── ConfigError                 settings or a command-line value are invalid
    ├── StoreError                  the event log
    │   ├── PersistenceError        the database failed and the store failed closed
    │   ├── ConcurrencyError        another writer took the seq this append wanted
    │   ├── IdempotencyError        a retried event_id matches a committed event only in part
    │   └── EventDecodeError        a stored or received event cannot be parsed (unknown type, bad fields)
    ├── SessionError                sessions and runs
    │   ├── SessionNotFound         no session has this id
    │   ├── InvalidStateError       the command needs another lifecycle state (names the expected one)
    │   ├── ApprovalNotFound        no pending approval has this tool_call_id
    │   └── PayloadTooLarge         a prompt (or frame) exceeds the configured limit
    ├── ModelError                  a model provider failed (status, type, request id, retryable)
    └── ToolError                   a tool could not run
        ├── ToolNotFound            the model asked for a tool that is not registered
        ├── ToolInputError          arguments do not match the schema (names the field)
        ├── ToolTimeout             the handler ran past its timeout
        └── WorkspaceEscape         a path resolves outside the session's workspace

Control-flow signals are not errors and do not derive from BassiError: `ApprovalRequired`
(a tool call waits for a user) and `RunCancelled` (a cancel cut the run short).
"""

from __future__ import annotations


class BassiError(Exception):
    """Root of every error bassi raises on purpose."""


class ConfigError(BassiError):
    """Settings, a config file or a command-line value are invalid."""


class StoreError(BassiError):
    """The event log could not do what was asked."""


class PersistenceError(StoreError):
    """The database failed past the retry limit; the store refuses appends until it recovers."""


class ConcurrencyError(StoreError):
    """Another writer already holds the (session_id, seq) this append wanted; nothing was written."""


class IdempotencyError(StoreError):
    """A retried batch matches committed events only in part (same event_id, different content)."""


class EventDecodeError(StoreError):
    """An event cannot be parsed: unknown type, missing or invalid fields."""


class InvalidEventError(StoreError):
    """An event holds a value the log cannot store (text that is not valid Unicode, or that the
    database refuses); nothing of the append that carried it was written."""


class SessionError(BassiError):
    """A session or run command cannot be carried out."""


class SessionNotFound(SessionError):
    """No session has this id."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"no session with id {session_id!r}")
        self.session_id = session_id


class InvalidStateError(SessionError):
    """The session is not in the lifecycle state this command needs."""

    def __init__(self, message: str, *, state: str, expected: str) -> None:
        super().__init__(message)
        self.state = state
        self.expected = expected


class ApprovalNotFound(SessionError):
    """No approval is pending for this tool_call_id."""


class PayloadTooLarge(SessionError):
    """A prompt or frame is larger than the configured limit; nothing was recorded."""


class InvalidInput(SessionError):
    """A value given to bassi cannot be recorded as it is; nothing was recorded."""


def check_text(value: str, what: str) -> str:
    """`value`, if it is text UTF-8 can encode; else `InvalidInput` saying where it is not.

    A lone surrogate (a `\\ud800` escape in JSON, or a byte that is not UTF-8 in a command
    line, which Python decodes to one) can be held in a `str` but never stored or sent.
    """
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"{what} is not valid Unicode text: character {exc.start + 1} "
            f"({value[exc.start]!r}) is a lone surrogate"
        ) from None
    return value


MAX_REASON = 1000
"""Characters a reason (for a denial, a cancel, an end) may hold: a sentence, not a file."""


def check_reason(reason: str) -> str:
    """`reason`, if it is text (`check_text`) of at most `MAX_REASON` characters."""
    check_text(reason, "the reason")
    if len(reason) > MAX_REASON:
        raise InvalidInput(
            f"the reason is {len(reason)} characters long; at most {MAX_REASON} are kept"
        )
    return reason


class ModelError(BassiError):
    """A model provider failed; says whether retrying could help."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        error_type: str = "model_error",
        request_id: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status
        self.error_type = error_type
        self.request_id = request_id
        self.retryable = retryable


class ToolError(BassiError):
    """A tool could not run."""


class ToolNotFound(ToolError):
    """The model asked for a tool that is not registered."""


class ToolInputError(ToolError):
    """Arguments do not match the tool's schema; the message names the field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ToolTimeout(ToolError):
    """The tool ran past its timeout and was stopped."""


class WorkspaceEscape(ToolError):
    """A path resolves outside the session's workspace."""


class ApprovalRequired(Exception):
    """Control flow: a tool call waits for a user's decision."""

    def __init__(self, tool_call_id: str) -> None:
        super().__init__(tool_call_id)
        self.tool_call_id = tool_call_id


class RunCancelled(Exception):
    """Control flow: a cancel cut the run short."""

    def __init__(self, mode: str = "immediate", reason: str = "") -> None:
        super().__init__(reason or mode)
        self.mode = mode
        self.reason = reason
