"""How provider failures become `ModelError`: which are retryable, and no secret in a message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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

NEVER_RETRYABLE_CODES = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "enforced_spend_limit_reached"}
)
"""Error codes that look transient (a 429) but last until someone pays."""

MAX_RETRY_WAIT = 60.0
"""The longest `retry-after` the SDKs may sleep on inside one model call (seconds). A provider
that asks for longer gets no retry: the call fails at once with a retryable error, rather than
leaving the run silent for minutes (anthropic 2.14 honours any value, even 600 s)."""


def retryable_status(status: int, headers: Mapping[str, str] | None = None) -> bool:
    """Whether an HTTP status means a later retry may succeed, as the SDKs decide it: the
    provider's `x-should-retry` header first, else 408, 409, 429 and 5xx."""
    said = (headers or {}).get("x-should-retry")
    if said in ("true", "false"):
        return said == "true"
    return status in (408, 409, 429) or status >= 500


class PatientRetries:
    """Mixed into an SDK client (anthropic's or openai's, which share their retry code): a
    `retry-after` longer than `MAX_RETRY_WAIT` is not slept on; the error goes to the caller."""

    def _should_retry(self, response: Any) -> bool:
        wait = self._parse_retry_after_header(response.headers)  # type: ignore[attr-defined]
        if wait is not None and wait > MAX_RETRY_WAIT:
            return False
        return bool(super()._should_retry(response))  # type: ignore[misc]


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
