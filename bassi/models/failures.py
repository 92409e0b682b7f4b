"""How provider failures become `ModelError`: which are retryable, and no secret in a message."""

from __future__ import annotations

from collections.abc import Iterable

from bassi.errors import ModelError

RETRYABLE_TYPES = frozenset(
    {
        # Anthropic
        "overloaded_error",
        "api_error",
        "rate_limit_error",
        "timeout_error",
        # OpenAI-compatible
        "server_error",
        "rate_limit_exceeded",
        "service_unavailable",
        "internal_error",
        # transport and stream
        "connection_error",
        "timeout",
        "incomplete_stream",
    }
)
"""Provider error types that a later retry of the same request may get past."""

NEVER_RETRYABLE_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
"""Error codes that look transient (a 429) but last until someone pays."""


def retryable_status(status: int) -> bool:
    """Whether an HTTP status means a later retry may succeed (what the SDKs retry too)."""
    return status in (408, 409, 429) or status >= 500


def describe(exc: BaseException) -> str:
    """`Type: message` of an exception and of its causes (into exception groups), outermost first."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 6:
        text = str(current)
        parts.append(f"{type(current).__name__}: {text}" if text else type(current).__name__)
        if isinstance(current, BaseExceptionGroup) and current.exceptions:
            current = current.exceptions[0]
        else:
            current = current.__cause__ or current.__context__
    return " <- ".join(parts)


def model_error(
    message: str,
    *,
    provider: str,
    error_type: str,
    status: int | None = None,
    request_id: str | None = None,
    retryable: bool | None = None,
    secrets: Iterable[str | None] = (),
) -> ModelError:
    """A `ModelError` whose message holds none of `secrets`; retryable by type unless given."""
    for secret in secrets:
        if secret and len(secret) >= 8:
            message = message.replace(secret, "[redacted]")
    if retryable is None:
        retryable = error_type in RETRYABLE_TYPES
    return ModelError(
        message,
        provider=provider,
        status=status,
        error_type=error_type,
        request_id=request_id,
        retryable=retryable,
    )
