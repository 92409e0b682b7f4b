"""Live subscribers: bounded queues, a named overflow strategy, catch-up from the log.

`drop` mode (UIs): the producer never waits; when the queue is full the subscriber is marked
behind, later events are skipped for it and counted, and the consumer then reads what it missed
from the log before going live again. So it sees every event exactly once, in order.

`block` mode: the writer waits for space up to `block_timeout`, then disconnects the
subscriber with `SubscriberDisconnected` (never a silent loss).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from bassi import events as ev
from bassi.errors import StoreError


class SubscriberDisconnected(StoreError):
    """A block-mode subscriber stayed full past its timeout and was cut off."""


class Overflow(enum.StrEnum):
    """What happens when a subscriber's queue is full."""

    DROP = "drop"
    BLOCK = "block"


_CLOSED = object()  # end-of-stream sentinel
_PAGE = 500


@dataclass(frozen=True, slots=True)
class SubscriberStats:
    """Counters of one subscriber."""

    name: str
    mode: str
    session_id: str | None
    cursor: int
    queued: int
    drops: int
    catch_ups: int
    lag: int
    """Committed events of its stream that it has not consumed yet (head - cursor)."""


Reader = Callable[[int, int], Awaitable[Sequence[ev.Event]]]
"""(after, limit) -> committed events of the stream after the cursor, in cursor order
(not filtered by type: the subscription filters, so its cursor can pass unwanted events)."""


class Subscription(AsyncIterator[ev.Event]):
    """Committed events after a cursor: first from the log, then live, no gap, no duplicate.

    The cursor is the per-session `seq` when subscribed to one session, else the global
    `position`. Iterate with `async for`; `close()` ends the iteration.
    """

    def __init__(
        self,
        *,
        name: str,
        session_id: str | None,
        types: frozenset[str] | None,
        mode: Overflow,
        maxsize: int,
        block_timeout: float,
        after: int,
        reader: Reader,
        head: Callable[[], int],
        on_close: Callable[[Subscription], None],
        live_from_start: bool,
    ) -> None:
        self.name = name
        self.session_id = session_id
        self.types = types
        self.mode = mode
        self.block_timeout = block_timeout
        self.cursor = after
        self.drops = 0
        self.catch_ups = 0
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=maxsize)
        self._reader = reader
        self._head = head
        self._on_close = on_close
        self._behind = not live_from_start  # reading from the log, not the queue
        self._overflowed = False  # behind because the queue was full (so skips count as drops)
        self._backlog: deque[ev.Event] = deque()
        self._closed = False
        self._error: Exception | None = None

    # --- producer side (the store's writer) ----------------------------------------------

    def key(self, event: ev.EventBase) -> int:
        """This subscription's cursor value for `event`."""
        return event.seq if self.session_id is not None else event.position or 0

    def wants(self, event: ev.EventBase) -> bool:
        """Whether `event` belongs to this subscription's stream."""
        if self.session_id is not None and event.session_id != self.session_id:
            return False
        return self.types is None or event.type in self.types

    def offer(self, event: ev.Event) -> bool:
        """Drop mode: queue the event or mark the subscriber behind. Never waits."""
        if self._closed:
            return True
        if self._behind:
            if self._overflowed:
                self.drops += 1
            return True
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._behind = self._overflowed = True
            self.drops += 1
        return True

    async def put(self, event: ev.Event) -> None:
        """Block mode: wait for space up to the timeout, else disconnect the subscriber."""
        if self._closed:
            return
        try:
            await asyncio.wait_for(self._queue.put(event), self.block_timeout)
        except TimeoutError:
            self.fail(
                SubscriberDisconnected(
                    f"subscriber {self.name!r} was full for {self.block_timeout}s and was disconnected"
                )
            )

    def fail(self, error: Exception) -> None:
        """End the subscription with an error the consumer will see."""
        self._error = error
        self.close()

    # --- consumer side ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop the subscription; the iterator ends after what is already queued."""
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        # When the queue is full the consumer sees `_closed` once it has drained it.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_CLOSED)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ev.Event:
        while True:
            if self._backlog:
                event = self._backlog.popleft()
                self.cursor = self.key(event)
                return event
            if not self._queue.empty():
                item = self._queue.get_nowait()
                if item is _CLOSED:
                    raise self._stop()
                assert isinstance(item, ev.EventBase)
                if self.key(item) <= self.cursor:
                    continue  # already delivered through catch-up
                self.cursor = self.key(item)
                return item  # type: ignore[return-value]
            if self._closed:
                raise self._stop()
            if self._behind:
                await self._catch_up()
                continue
            item = await self._queue.get()
            if item is _CLOSED:
                raise self._stop()
            assert isinstance(item, ev.EventBase)
            if self.key(item) <= self.cursor:
                continue
            self.cursor = self.key(item)
            return item  # type: ignore[return-value]

    def _stop(self) -> Exception:
        if self._error is not None:
            error, self._error = self._error, None
            return error
        return StopAsyncIteration()

    async def _catch_up(self) -> None:
        """Read what was missed from the log; go live once the log has nothing newer."""
        self.catch_ups += 1
        page = [e for e in await self._reader(self.cursor, _PAGE) if self.key(e) > self.cursor]
        if page:
            wanted = [e for e in page if self.wants(e)]
            if wanted:
                self._backlog.extend(wanted)
            else:
                self.cursor = self.key(page[-1])  # skipped: filtered out
            return
        # Nothing newer is committed. The writer publishes synchronously right after each
        # commit, so if its head has not moved past our cursor, going live here (with no await
        # in between) cannot miss an event.
        if self._head() <= self.cursor:
            # Events still queued from before we fell behind are older than the cursor
            # and will be skipped by the duplicate check.
            self._behind = self._overflowed = False

    def stats(self) -> SubscriberStats:
        """Counters for monitoring."""
        return SubscriberStats(
            name=self.name,
            mode=self.mode.value,
            session_id=self.session_id,
            cursor=self.cursor,
            queued=self._queue.qsize(),
            drops=self.drops,
            catch_ups=self.catch_ups,
            lag=max(0, self._head() - self.cursor),
        )
