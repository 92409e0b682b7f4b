"""The event catalogue: every thing an agent does, as an immutable, typed event.

Events are frozen pydantic models discriminated on `type` (a wire name, never renamed once
written). The store assigns `seq` and `position`; producers leave them at 0 / None. The wire
format is one flat JSON object per event: the envelope fields plus the type's own fields.
`decode()` parses that shape back, upcasting older schema versions first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeAlias

import uuid_utils
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bassi.errors import EventDecodeError
from bassi.messages import ContentBlock, Usage

ENVELOPE_FIELDS: set[str] = set(
    {"type", "event_id", "session_id", "run_id", "seq", "position", "recorded_at", "v"}
)
"""Fields every event carries; everything else is the type's own payload."""

MAX_SEQ = 2**63 - 1
"""The largest seq or position (or cursor) there can be: a 64-bit integer in both databases."""

PermissionMode = Literal["default", "accept_edits", "plan", "bypass"]


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_id() -> str:
    """A fresh random (version 4) UUID in its canonical text form.

    What `str(uuid.uuid4())` returns, spelled out from 16 random bytes at under half the cost:
    every token delta gets one.
    """
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def new_event_id() -> str:
    """A fresh time-ordered (version 7) UUID: the ids of consecutive events sort together.

    The log's unique index on event_id then grows at its right edge, as the position index
    does, instead of taking every insert at a random page: a random id dirtied pages all over
    the index, which made each commit write and fsync more and grew with the log (at 100,000
    events a commit cost three times what it does with ordered ids). Sessions and runs keep
    random ids, which people shorten to a prefix.
    """
    return str(uuid_utils.uuid7())


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """ISO-8601 UTC with a `Z`, as on the wire and in the database."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"  # drop "+00:00"


class EventBase(BaseModel):
    """The envelope shared by every event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    """Discriminator: the event's wire name (each subclass fixes it)."""
    event_id: str = Field(default_factory=new_event_id)
    """UUID chosen by the producer; the idempotency key."""
    session_id: str
    """The stream this event belongs to."""
    run_id: str | None = None
    """The run (one prompt and all it causes); None for session-level events."""
    seq: int = 0
    """Per-session position 1, 2, 3, ... assigned by the store on append (0 = not yet)."""
    position: int | None = None
    """Global log position, strictly increasing across sessions, assigned on commit."""
    recorded_at: datetime = Field(default_factory=utcnow)
    """When the producer made the event (UTC)."""
    v: int = 1
    """Schema version of this event type."""

    def payload(self) -> dict[str, Any]:
        """The type's own fields as JSON-ready data (what the `payload` column holds)."""
        return self.model_dump(mode="json", exclude=ENVELOPE_FIELDS)

    def to_wire(self) -> dict[str, Any]:
        """One flat JSON-ready object: envelope plus own fields."""
        return self.model_dump(mode="json")


# --- session -------------------------------------------------------------------------------


class SessionStarted(EventBase):
    """A session was created with this configuration (never an API key)."""

    type: Literal["session_started"] = "session_started"
    title: str = ""
    """Human-readable name."""
    model: str
    """`provider:name` of the model runs use."""
    system_prompt: str = ""
    """System prompt sent with every model request."""
    tools: list[str] = Field(default_factory=list)
    """Names of the tools the model may call."""
    workspace: str | None = None
    """Directory the file tools and bash are confined to."""
    permission_mode: PermissionMode = "default"
    """How tool calls are approved."""
    rules: list[str] = Field(default_factory=list)
    """Session permission rules such as `allow:bash(git status*)`."""
    max_turns: int = 50
    """Model calls one run may make before it stops."""
    max_tokens: int = 4096
    """Output token limit per model call."""


class ModelSwitched(EventBase):
    """Runs from now on use another model."""

    type: Literal["model_switched"] = "model_switched"
    previous: str
    """The model used until now."""
    model: str
    """The model used from now on."""


class PermissionModeChanged(EventBase):
    """Tool calls from now on are approved under another mode."""

    type: Literal["permission_mode_changed"] = "permission_mode_changed"
    previous: PermissionMode
    """The mode until now."""
    mode: PermissionMode
    """The mode from now on."""


class PermissionRuleAdded(EventBase):
    """A permission rule now applies to this session (e.g. after "allow always")."""

    type: Literal["permission_rule_added"] = "permission_rule_added"
    rule: str
    """The rule, such as `allow:bash(git status*)`."""
    added_by: str = "user"
    """Who added it."""


class SessionRecovered(EventBase):
    """Recovery found this session's last run cut short by a crash and decided what to do."""

    type: Literal["session_recovered"] = "session_recovered"
    interrupted_run_id: str | None = None
    """The run that had no terminal event."""
    interrupted_tool_calls: list[str] = Field(default_factory=list)
    """Tool calls closed as interrupted."""
    action: Literal["continue", "mark", "none"] = "none"
    """Whether the run carries on (`continue`) or ends as `run_interrupted` (`mark`)."""


class SessionEnded(EventBase):
    """The session takes no more prompts."""

    type: Literal["session_ended"] = "session_ended"
    reason: str = ""
    """Why it ended."""


# --- run -----------------------------------------------------------------------------------


class PromptReceived(EventBase):
    """A user prompt arrived; it starts a run."""

    type: Literal["prompt_received"] = "prompt_received"
    content: str
    """The prompt text."""
    user: str | None = None
    """Who sent it, when known."""


class RunStarted(EventBase):
    """A run began working on the prompt."""

    type: Literal["run_started"] = "run_started"
    model: str
    """`provider:name` used for this run."""
    permission_mode: PermissionMode = "default"
    """Approval mode in force."""
    resumed: bool = False
    """True when recovery carries on a run that a crash cut short."""


class PlanGenerated(EventBase):
    """In plan mode, the model's plan (no side effects were allowed)."""

    type: Literal["plan_generated"] = "plan_generated"
    plan: str
    """The plan text."""


class RunCompleted(EventBase):
    """The run ended normally."""

    type: Literal["run_completed"] = "run_completed"
    stop_reason: str
    """Why the last model call stopped (`end_turn`, `max_turns`, ...)."""
    turns: int
    """Model calls made."""
    usage: Usage = Field(default_factory=Usage)
    """Tokens used by the run."""
    duration_ms: int = 0
    """Wall time of the run."""


class RunCancelled(EventBase):
    """A user cancelled the run."""

    type: Literal["run_cancelled"] = "run_cancelled"
    mode: Literal["immediate", "after_turn"] = "immediate"
    """`immediate` stopped everything; `after_turn` let the current step finish."""
    reason: str = ""
    """Why, if given."""


class RunFailed(EventBase):
    """The run ended because of an error (described by the preceding `error` event)."""

    type: Literal["run_failed"] = "run_failed"
    error_type: str
    """Class of the failure."""
    message: str
    """What went wrong."""


class RunInterrupted(EventBase):
    """Recovery ended a run that a crash cut short."""

    type: Literal["run_interrupted"] = "run_interrupted"
    reason: str = "process stopped during the run"
    """Why."""


# --- model ---------------------------------------------------------------------------------


class MessageStarted(EventBase):
    """The model began an assistant message."""

    type: Literal["message_started"] = "message_started"
    message_id: str
    """Id of the message (provider's id when it gives one)."""
    model: str = ""
    """Model name as the provider reports it."""
    provider: str = ""
    """Provider name."""


class ContentBlockStarted(EventBase):
    """A content block of the streaming message began."""

    type: Literal["content_block_started"] = "content_block_started"
    message_id: str
    """The message."""
    index: int
    """Block index within the message."""
    block_type: Literal["text", "thinking", "tool_use"]
    """What the block holds."""
    tool_call_id: str | None = None
    """For tool_use blocks, the call id."""
    tool_name: str | None = None
    """For tool_use blocks, the tool."""


class TokenDelta(EventBase):
    """A piece of streamed output."""

    type: Literal["token_delta"] = "token_delta"
    message_id: str
    """The message."""
    index: int
    """Block index within the message."""
    channel: Literal["text", "thinking", "tool_input"]
    """Which stream the text belongs to."""
    text: str
    """The piece."""


class ContentBlockStopped(EventBase):
    """A content block of the streaming message ended."""

    type: Literal["content_block_stopped"] = "content_block_stopped"
    message_id: str
    """The message."""
    index: int
    """Block index within the message."""


class MessageCompleted(EventBase):
    """The whole assistant message, as it enters the conversation history."""

    type: Literal["message_completed"] = "message_completed"
    message_id: str
    """The message."""
    content: list[ContentBlock]
    """Its blocks, in order."""
    stop_reason: str
    """Why generation stopped (`end_turn`, `tool_use`, `max_tokens`, ... kept verbatim)."""
    usage: Usage = Field(default_factory=Usage)
    """Tokens of this model call."""
    model: str = ""
    """Model name."""
    provider: str = ""
    """Provider name."""
    request_id: str | None = None
    """Provider request id, for support tickets."""


# --- tools ---------------------------------------------------------------------------------


class PermissionRequested(EventBase):
    """A tool call waits for a user's decision."""

    type: Literal["permission_requested"] = "permission_requested"
    tool_call_id: str
    """The call."""
    tool_name: str
    """The tool."""
    input: dict[str, Any]
    """Arguments the model asked for."""
    reason: str = ""
    """Why the policy asks."""


class PermissionDecided(EventBase):
    """A tool call was allowed or denied, and by whom."""

    type: Literal["permission_decided"] = "permission_decided"
    tool_call_id: str
    """The call."""
    tool_name: str
    """The tool."""
    decision: Literal["allow", "deny"]
    """The outcome."""
    decided_by: str
    """`mode:NAME`, `rule:PATTERN`, `hook:NAME`, `user:NAME` or `recovery`."""
    reason: str = ""
    """Why; a deny reason is shown to the model."""
    updated_input: dict[str, Any] | None = None
    """Arguments as rewritten by a hook, if they were."""


class ToolCallStarted(EventBase):
    """A tool call is about to run (made durable before it does: write-ahead)."""

    type: Literal["tool_call_started"] = "tool_call_started"
    tool_call_id: str
    """The call."""
    tool_name: str
    """The tool."""
    input: dict[str, Any]
    """Arguments it runs with."""


class ToolCallCompleted(EventBase):
    """A tool call returned."""

    type: Literal["tool_call_completed"] = "tool_call_completed"
    tool_call_id: str
    """The call."""
    tool_name: str
    """The tool."""
    output: str
    """Output shown to the model (truncated with a marker past the cap)."""
    is_error: bool = False
    """True when the tool reported a failure it handled (e.g. non-zero exit)."""
    duration_ms: int = 0
    """How long it ran."""
    truncated: bool = False
    """True when output was cut at the cap."""
    original_size: int | None = None
    """Size in bytes before truncation."""


class ToolCallFailed(EventBase):
    """A tool call did not return a result: it raised, timed out, was denied or interrupted."""

    type: Literal["tool_call_failed"] = "tool_call_failed"
    tool_call_id: str
    """The call."""
    tool_name: str
    """The tool."""
    error: str
    """What went wrong, shown to the model."""
    error_type: str = ""
    """Class of the failure."""
    duration_ms: int = 0
    """How long it ran before failing."""
    interrupted: bool = False
    """True when a crash or cancel cut it off."""


class Error(EventBase):
    """Something failed; says where and whether retrying could help."""

    type: Literal["error"] = "error"
    where: str
    """The part that failed (`model`, `tool`, `store`, `agent`, ...)."""
    error_type: str
    """Class of the failure."""
    message: str
    """What went wrong."""
    retryable: bool = False
    """Whether the same request could succeed later."""
    request_id: str | None = None
    """Provider request id, if any."""


Event: TypeAlias = Annotated[
    SessionStarted
    | ModelSwitched
    | PermissionModeChanged
    | PermissionRuleAdded
    | SessionRecovered
    | SessionEnded
    | PromptReceived
    | RunStarted
    | PlanGenerated
    | RunCompleted
    | RunCancelled
    | RunFailed
    | RunInterrupted
    | MessageStarted
    | ContentBlockStarted
    | TokenDelta
    | ContentBlockStopped
    | MessageCompleted
    | PermissionRequested
    | PermissionDecided
    | ToolCallStarted
    | ToolCallCompleted
    | ToolCallFailed
    | Error,
    Field(discriminator="type"),
]
"""Any event."""

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

EVENT_TYPES: dict[str, type[EventBase]] = {
    cls.model_fields["type"].default: cls for cls in EventBase.__subclasses__()
}
"""Wire name -> class."""

CURRENT_VERSION: dict[str, int] = {
    name: cls.model_fields["v"].default for name, cls in EVENT_TYPES.items()
}
"""Wire name -> schema version written today."""

TERMINAL_RUN_TYPES = frozenset({"run_completed", "run_cancelled", "run_failed", "run_interrupted"})
"""Types that end a run."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""(type, v) -> function turning a version-v object into version v+1."""


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function that upgrades `event_type` objects from `from_version` by one."""

    def register(fn: Upcaster) -> Upcaster:
        UPCASTERS[(event_type, from_version)] = fn
        return fn

    return register


def upcast(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a wire object of an older schema version up to today's, step by step."""
    event_type = data["type"]
    version = int(data.get("v", 1))
    current = CURRENT_VERSION[event_type]
    while version < current:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise EventDecodeError(f"no upcaster for {event_type!r} v{version}")
        data = step(data)
        version += 1
        data["v"] = version
    return data


def decode(data: Mapping[str, Any]) -> Event:
    """Parse one flat wire object into its event; unknown types fail loudly and are named."""
    event_type = data.get("type")
    if event_type not in EVENT_TYPES:
        raise EventDecodeError(f"unknown event type {event_type!r}")
    obj = dict(data)
    if int(obj.get("v", 1)) < CURRENT_VERSION[event_type]:
        obj = upcast(obj)
    try:
        return EVENT_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise EventDecodeError(f"invalid {event_type} event: {exc}") from exc


def decode_json(text: str | bytes) -> Event:
    """Parse one wire JSON text into its event."""
    import json

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EventDecodeError(f"event is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EventDecodeError("event must be a JSON object")
    return decode(data)
