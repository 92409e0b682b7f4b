"""`SessionManager`: create, load, list and end sessions; one run per session; recovery on start.

A `Session` is the only writer of its events in this process: it appends through the store,
folds what it appended into its state, and runs one `Agent` run at a time in a task.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

from bassi import events as ev
from bassi.agent import Agent, close_open_calls, user_answer
from bassi.errors import (
    ConcurrencyError,
    ConfigError,
    InvalidStateError,
    PayloadTooLarge,
    PersistenceError,
    SessionNotFound,
    StoreError,
    check_reason,
    check_text,
)
from bassi.models.base import Model
from bassi.models.catalog import PROVIDERS
from bassi.models.registry import get_model
from bassi.session import FOLD_TYPES, OpenToolCall, SessionState, SessionStatus, evolve, replay
from bassi.settings import Settings, database_url
from bassi.store.eventstore import EventStore
from bassi.store.readmodel import SessionSummary
from bassi.store.subscription import Subscription
from bassi.tools.executor import ToolExecutor
from bassi.tools.hooks import command_hooks
from bassi.tools.permissions import PermissionPolicy
from bassi.tools.registry import ToolRegistry

log = logging.getLogger(__name__)

ModelFactory = Callable[[str], Model]

_DEFAULT_MODELS = {"anthropic": "anthropic:claude-sonnet-4-5", "openai": "openai:gpt-4.1"}


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What recovery did to one session whose last run had no terminal event."""

    session_id: str
    run_id: str
    action: str
    """`continue` (the run carries on) or `mark` (ended as `run_interrupted`)."""
    interrupted_tool_calls: list[str] = field(default_factory=list)


class Session:
    """One session: its state (the fold of its events), its run, approvals and cancel."""

    def __init__(self, manager: SessionManager, state: SessionState) -> None:
        self.id = state.session_id
        self._manager = manager
        self._state = state
        self._agent: Agent | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._start_lock = asyncio.Lock()
        self._stale: ConcurrencyError | None = None
        self._lost_seen = manager.store.lost(self.id)
        self._senders: set[Subscription] = set()  # streams of `send` waiting for a run's end
        self._closer: asyncio.Task[None] | None = None  # closes a run that could not end itself
        self._orphan: str | None = None  # a run of this process that ended without its end event

    @property
    def state(self) -> SessionState:
        """The fold of every event this session has committed."""
        return self._state

    @property
    def run_active(self) -> bool:
        """True while a run task is working (or parked on an approval)."""
        return self._task is not None and not self._task.done()

    # --- the SessionPort the agent uses ------------------------------------------------

    async def append(self, *events: ev.Event, durable: bool = True) -> None:
        """Append events (atomically); fold-relevant ones are always made durable and folded."""
        if not events:
            return
        if self._stale is not None:
            raise self._stale
        lost = self._manager.store.lost(self.id)
        # Only an end that admits failure may follow a loss: never `run_completed`.
        ending = any(e.type in ev.TERMINAL_RUN_TYPES and e.type != "run_completed" for e in events)
        if lost > self._lost_seen and not ending:
            # Streamed events of this run failed to commit: the log would have a silent hole.
            self._lost_seen = lost
            raise PersistenceError(f"{lost} streamed events of this session could not be stored")
        if not durable and not any(e.type in FOLD_TYPES for e in events):
            await self._manager.store.append_many(events)
            return
        # The commit and the fold finish even if the caller is cancelled meanwhile, so the
        # state never misses an event that is in the log; `settle` waits for them.
        task = asyncio.get_running_loop().create_task(self._commit(list(events)))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        await asyncio.shield(task)

    async def _commit(self, events: list[ev.Event]) -> None:
        try:
            committed = await self._manager.store.append_many(events, durable=True)
        except ConcurrencyError as exc:
            self._stale = exc  # another writer owns this session now: stop writing to it
            raise
        state = self._state
        for event in committed:
            if event.type in FOLD_TYPES:
                state = evolve(state, event)
        self._state = state

    async def settle(self) -> None:
        """Wait for appends still committing (after a cancel)."""
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    # --- runs ------------------------------------------------------------------------------

    async def prompt(self, content: str, *, user: str | None = None) -> str:
        """Start a run on `content` in the background and return its run_id."""
        limit = self._manager.settings.max_prompt_bytes
        if len(check_text(content, "the prompt").encode()) > limit:
            raise PayloadTooLarge(f"prompt is larger than the limit of {limit} bytes")
        if not content.strip():
            raise InvalidStateError("prompt is empty", state="empty", expected="text")
        async with self._start_lock:
            self._check_can_run()
            await self.settle()  # the end of a run just cancelled may still be committing
            # A bad model spec, rule or hook is a ConfigError before anything is written.
            agent = self._new_agent(self._manager.model_for(self._state.model))
            await self._close_orphaned_run()
            await self._lock_run()
            try:
                if self._state.current_run_id is not None:
                    # Another process left this run unfinished and is gone (its lock was
                    # free): account for it before the new one.
                    await self._manager._mark_interrupted(self)
                self._lost_seen = self._manager.store.lost(self.id)  # earlier losses are told
                run_id = ev.new_id()
                ids = {"session_id": self.id, "run_id": run_id}
                try:
                    await self.append(
                        ev.PromptReceived(**ids, content=content, user=user),
                        ev.RunStarted(
                            **ids,
                            model=self._state.model,
                            permission_mode=self._state.permission_mode,
                        ),
                    )
                except asyncio.CancelledError:
                    # The caller went away, but the commit went on: a run on record is run.
                    await self.settle()
                    if self._state.current_run_id == run_id:
                        self._start(run_id, agent)
                    raise
                self._start(run_id, agent)
            except BaseException:
                await self._unlock_run()
                raise
        return run_id

    async def _lock_run(self) -> None:
        """Take the session's run lock: only one process runs a session's runs at a time."""
        if not await self._manager.store.log.lock_run(self.id):
            raise InvalidStateError(
                f"session {self.id} has a run in progress in another process (a running "
                "`bassi serve` or another bassi command)",
                state=self._state.status,
                expected="idle",
            )

    async def _unlock_run(self) -> None:
        """Let the run lock go, unless this process still runs, or owes the end of, a run."""
        if not self.run_active and self._orphan is None:
            await self._manager.store.log.unlock_run(self.id)

    async def send(self, content: str, *, user: str | None = None) -> AsyncIterator[ev.Event]:
        """Prompt, then yield the run's events until (and including) its terminal event."""
        head = await self._manager.store.log.last_seq(self.id)
        sub = self._manager.store.subscribe(session_id=self.id, after=head, maxsize=10_000)
        self._senders.add(sub)
        try:
            run_id = await self.prompt(content, user=user)
            async for event in sub:
                if event.run_id != run_id:
                    continue
                if event.type in ev.TERMINAL_RUN_TYPES:
                    await self.wait()  # the state has folded the end of the run
                    yield event
                    return
                yield event
        finally:
            self._senders.discard(sub)
            sub.close()

    async def _close_orphaned_run(self) -> None:
        """End a run whose task is gone but whose terminal event never committed.

        That happens when the store failed (disk full, say) while the run was ending: the
        run could not record its own end. Record it now, before a new run starts.
        """
        run_id = self._state.current_run_id
        if self._orphan is not None and self._orphan != run_id:
            self._orphan = None  # its end was committed after all
        if run_id is None or self.run_active or run_id != self._orphan:
            return
        ids = {"session_id": self.id, "run_id": run_id}
        closing = close_open_calls(
            self._state,
            run_id,
            decided_by="recovery",
            started_reason="the run ended abnormally; the outcome of this call is unknown",
            unstarted_reason="the run ended abnormally before this call ran",
        )
        reason = "the run could not record its end (the event store failed)"
        await self.append(
            *closing,
            ev.Error(**ids, where="store", error_type="PersistenceError", message=reason),
            ev.RunFailed(**ids, error_type="PersistenceError", message=reason),
        )
        self._orphan = None

    def _check_can_run(self) -> None:
        if self._stale is not None:
            raise self._stale
        status = self._state.status
        if status is SessionStatus.ENDED:
            raise InvalidStateError(f"session {self.id} has ended", state=status, expected="idle")
        if self.run_active:
            raise InvalidStateError(
                f"session {self.id} already has an active run", state=status, expected="idle"
            )

    def _new_agent(self, model: Model) -> Agent:
        manager = self._manager
        state = self._state
        settings = manager.settings
        return Agent(
            port=self,
            model=model,
            registry=manager.registry,
            executor=ToolExecutor(
                manager.registry,
                hooks=command_hooks(settings.hooks),
                output_cap=settings.tool_output_cap,
            ),
            policy=PermissionPolicy.from_settings(
                settings, mode=state.permission_mode, session_rules=state.rules
            ),
            workspace=Path(state.workspace or settings.workspace or Path.cwd()),
            output_cap=settings.tool_output_cap,
        )

    def _start(self, run_id: str, agent: Agent) -> None:
        self._agent = agent
        self._task = asyncio.get_running_loop().create_task(
            _run_logged(self._agent, run_id), name=f"bassi-run-{run_id}"
        )
        self._task.add_done_callback(lambda _: self._run_gone(run_id))

    def _run_gone(self, run_id: str) -> None:
        """A run task ended; `_after_run` decides, once its appends have settled, whether its
        end is in the log."""
        if self._state.current_run_id == run_id:
            self._orphan = run_id  # until its end is folded: a commit may still be on its way
        if self._manager.closing or (self._agent is not None and self._agent.shutting_down):
            return  # the process is stopping: recovery closes or continues the run
        self._manager.background(self._after_run(run_id), f"bassi-after-{run_id}")

    async def _after_run(self, run_id: str) -> None:
        """The run's end committed: the run lock goes. It did not: `send` callers must not wait
        for it, and the run is closed as soon as the store takes writes again (the lock stays
        until then, so no other process recovers it meanwhile)."""
        await self.settle()  # a second cancel ends the task while its end is still committing
        async with self._start_lock:  # a prompt in between has taken, or closed, the run
            if self._orphan == run_id and self._state.current_run_id != run_id:
                self._orphan = None
            if self._orphan != run_id:
                await self._unlock_run()
                return
        for sub in tuple(self._senders):
            sub.fail(PersistenceError(f"run {run_id} ended without recording its end"))
        self._closer = self._manager.background(
            self._close_when_store_returns(run_id), f"bassi-close-{run_id}"
        )

    async def _close_when_store_returns(self, run_id: str, first_delay: float = 0.5) -> None:
        """Retry recording the orphaned run's failure until the store accepts it (or a new
        prompt, which closes it first, gets there before)."""
        delay = first_delay
        while True:
            await asyncio.sleep(delay)
            async with self._start_lock:
                if self._orphan != run_id or self._state.current_run_id != run_id:
                    if self._orphan == run_id:
                        self._orphan = None
                    await self._unlock_run()
                    return
                try:
                    await self._close_orphaned_run()
                    await self._unlock_run()
                    return
                except ConcurrencyError:
                    # Another writer took the session over (a CLI ended it, say): the run is
                    # no longer this process's to close, and its lock must not keep others out.
                    self._orphan = None
                    await self._unlock_run()
                    return
                except StoreError as exc:
                    if self._manager.closing:
                        return
                    log.info("run %s still cannot record its end: %s", run_id, exc)
            delay = min(delay * 2, 5.0)

    async def approve(
        self,
        tool_call_id: str,
        *,
        always: bool = False,
        user: str = "user",
        reason: str = "",
        decided_by: str | None = None,
    ) -> None:
        """Allow a parked tool call (once, or always for this session). `decided_by` names a
        decider that is not a person (default: `user:USER`)."""
        self._answer(
            tool_call_id, "allow", user=user, reason=reason, always=always, decided_by=decided_by
        )

    async def deny(
        self,
        tool_call_id: str,
        *,
        reason: str = "",
        user: str = "user",
        decided_by: str | None = None,
    ) -> None:
        """Deny a parked tool call; the model reads the reason. `decided_by` names a decider
        that is not a person (default: `user:USER`)."""
        self._answer(
            tool_call_id, "deny", user=user, reason=reason, always=False, decided_by=decided_by
        )

    def _answer(
        self,
        tool_call_id: str,
        decision: str,
        *,
        user: str,
        reason: str,
        always: bool,
        decided_by: str | None = None,
    ) -> None:
        from bassi.errors import ApprovalNotFound

        check_reason(reason)
        if self._agent is None or not self.run_active:
            raise ApprovalNotFound(f"no approval is pending for tool call {tool_call_id!r}")
        answer = user_answer(decision, user=user, reason=reason)
        if decided_by is not None:
            answer = replace(answer, decided_by=decided_by)
        self._agent.answer(tool_call_id, answer, always=always)

    async def cancel(self, mode: str = "immediate", reason: str = "") -> None:
        """Stop the active run now (`immediate`) or once its current step is done (`after_turn`)."""
        if mode not in ("immediate", "after_turn"):
            raise ConfigError(f"cancel mode must be immediate or after_turn, not {mode!r}")
        check_reason(reason)
        if not self.run_active or self._task is None or self._agent is None:
            await self.settle()  # the end of a run that just stopped may still be committing
            if self._state.current_run_id is not None and not self.run_active:
                await self._end_run_left_behind()
                return
            if not self.run_active or self._task is None or self._agent is None:
                raise InvalidStateError(
                    f"session {self.id} has no active run",
                    state=self._state.status,
                    expected="running",
                )
        if mode == "after_turn" and self._state.status is not SessionStatus.AWAITING_APPROVAL:
            self._agent.cancel_after_turn = reason or "cancelled after the current step"
            return
        self._agent.cancel_reason = reason
        while not self._agent.started and not self._task.done():  # noqa: ASYNC110 - a step or two
            await asyncio.sleep(0)  # let it begin, so that it records its cancel
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._task)

    async def wait(self) -> None:
        """Return once the current run (if any) has ended."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)

    async def _end_run_left_behind(self) -> None:
        """Account for a run on record that no task of this process runs: one whose process
        died (a `bassi run` killed, say) is marked interrupted, so the session is idle again;
        one that another process is running is refused (`InvalidStateError`)."""
        async with self._start_lock:
            await self.settle()
            await self._close_orphaned_run()  # this process's own, which could not end itself
            if self._state.current_run_id is None or self.run_active:
                return  # accounted for meanwhile, or a new run began: nothing left behind
            await self._lock_run()
            try:
                await self._manager._mark_interrupted(self)
            finally:
                await self._unlock_run()

    async def switch_model(self, model: str) -> None:
        """Use another model from the next run on."""
        self._manager.model_for(check_text(model, "the model"))
        async with self._start_lock:  # no prompt of this process starts a run meanwhile
            self._check_can_run()
            if model == self._state.model:
                return
            # With the run lock held, so no other process is mid-run (a switch in the middle
            # of its run would fail the run) or starts one meanwhile.
            await self._lock_run()
            try:
                await self.append(
                    ev.ModelSwitched(session_id=self.id, previous=self._state.model, model=model)
                )
            finally:
                await self._unlock_run()

    def subscribe(self, after: int | None = 0, **options: Any) -> Subscription:
        """This session's committed events after `after` (a seq), then live."""
        return self._manager.store.subscribe(session_id=self.id, after=after, **options)

    async def _shutdown(self) -> None:
        if self._task is not None and not self._task.done() and self._agent is not None:
            self._agent.shutting_down = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._closer is not None:
            self._closer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._closer
        await self.settle()


class SessionManager:
    """Hosts many sessions on one event loop over one event store."""

    def __init__(
        self,
        store: EventStore,
        settings: Settings,
        *,
        model_factory: ModelFactory | None = None,
        registry: ToolRegistry | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.registry = registry or ToolRegistry.with_builtins()
        self._model_factory = model_factory or get_model
        self._sessions: dict[str, Session] = {}
        self._models: dict[str, Model] = {}
        self._load_lock = asyncio.Lock()
        self.recovery: list[RecoveryReport] = []
        self.closing = False
        """Set once `close` begins: runs that end now are left to the next process's recovery."""
        self._background: set[asyncio.Task[None]] = set()
        self.default_model, self.using_scripted_fallback = _pick_default_model(
            settings, os.environ if environ is None else environ
        )

    @classmethod
    async def connect(
        cls,
        database: str | None = None,
        *,
        settings: Settings | None = None,
        recover: bool = True,
        model_factory: ModelFactory | None = None,
        registry: ToolRegistry | None = None,
    ) -> Self:
        """Open the database (migrating it), rebuild what recovery needs, and return the manager."""
        settings = settings or Settings.load()
        # Rules and hooks in the settings are checked now, not at the first prompt.
        PermissionPolicy.from_settings(settings)
        url = database_url(database) if database else settings.database_url
        if url.startswith("sqlite") and ":memory:" not in url:
            Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        store = await EventStore.open(
            url, synchronous=settings.sqlite_synchronous, max_history=settings.max_history
        )
        manager = cls(store, settings, model_factory=model_factory, registry=registry)
        if recover:
            try:
                await manager.recover()
            except BaseException:
                await store.close()
                raise
        return manager

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        database: str | None = None,
        *,
        settings: Settings | None = None,
        recover: bool = True,
        model_factory: ModelFactory | None = None,
        registry: ToolRegistry | None = None,
    ) -> AsyncIterator[Self]:
        """`async with SessionManager.open("bassi.db") as manager:` (closes and flushes on exit)."""
        manager = await cls.connect(
            database,
            settings=settings,
            recover=recover,
            model_factory=model_factory,
            registry=registry,
        )
        try:
            yield manager
        finally:
            await manager.close()

    def model_for(self, spec: str) -> Model:
        """The model for a `provider:name` spec (ConfigError when unknown or unconfigured).

        One instance per spec, so an SDK client and its connection pool are reused across runs.
        """
        model = self._models.get(spec)
        if model is None:
            model = self._models[spec] = self._model_factory(spec)
        return model

    # --- sessions --------------------------------------------------------------------------

    async def create(
        self,
        *,
        model: str | None = None,
        title: str = "",
        system_prompt: str = "",
        permission_mode: str | None = None,
        workspace: str | None = None,
        tools: Sequence[str] | None = None,
        rules: Sequence[str] = (),
    ) -> Session:
        """Start a new session (validating everything before anything is written)."""
        for what, text in (("the title", title), ("the system prompt", system_prompt)):
            check_text(text, what)
        for text in (model or "", workspace or "", *rules):
            check_text(text, "the session's settings")
        spec = model or self.default_model
        self.model_for(spec)
        mode = permission_mode or self.settings.permission_mode
        if mode not in ("default", "accept_edits", "plan", "bypass"):
            raise ConfigError(f"unknown permission mode {mode!r}")
        names = list(tools) if tools is not None else self.registry.names()
        unknown = [n for n in names if n not in self.registry.names()]
        if unknown:
            raise ConfigError(f"unknown tool {unknown[0]!r}")
        PermissionPolicy.create(rules=rules)  # ConfigError names a bad rule
        where = session_workspace(workspace, self.settings)
        started = ev.SessionStarted(
            session_id=ev.new_id(),
            title=title,
            model=spec,
            system_prompt=system_prompt,
            tools=names,
            workspace=str(where),
            permission_mode=mode,
            rules=list(rules),
            max_turns=self.settings.max_turns,
        )
        committed = await self.store.append(started, durable=True)
        session = Session(self, evolve(SessionState(session_id=started.session_id), committed))
        self._sessions[session.id] = session
        return session

    async def get(self, session_id: str) -> Session:
        """A session, rebuilt from its events on first use (SessionNotFound if none)."""
        cached = self._sessions.get(session_id)
        if cached is not None and await self._current(cached):
            return cached
        async with self._load_lock:
            cached = self._sessions.get(session_id)
            if cached is not None and await self._current(cached):
                return cached
            # The head first: what commits between the two reads then makes the session's
            # first append a ConcurrencyError, never a silent overwrite of a state not seen.
            head = await self.store.log.last_seq(session_id)
            events = await self.store.query(session_id=session_id, types=FOLD_TYPES)
            if not events:
                raise SessionNotFound(session_id)
            state = replace(replay(events), last_seq=head)
            self.store.claim(session_id, head)
            if cached is not None and cached._stale is None:  # whoever still holds it must
                cached._stale = ConcurrencyError(  # not write from a state that is behind
                    f"session {session_id} was written by another process; load it again"
                )
            session = self._sessions[session_id] = Session(self, state)
            return session

    async def _current(self, session: Session) -> bool:
        """Whether a loaded session still is the log's: not stale, and nobody else appended to
        it since (a `bassi run` beside the daemon, say). While a run of this process is live,
        its run lock keeps the others out."""
        if session._stale is not None:
            return False
        if session.run_active or session._inflight:
            return True
        known = self.store.head(session.id)
        return known is not None and await self.store.log.last_seq(session.id) <= known

    async def list(self) -> builtins.list[SessionSummary]:
        """Every session's summary row, newest first."""
        return await self.store.sessions()

    async def end(self, session_id: str, reason: str = "") -> None:
        """End a session: it takes no more prompts."""
        check_reason(reason)
        session = await self.get(session_id)
        async with session._start_lock:
            if session.state.status is SessionStatus.ENDED:
                return
            if session.run_active:
                raise InvalidStateError(
                    f"session {session_id} has an active run: cancel it first",
                    state=session.state.status,
                    expected="idle",
                )
            await session.settle()
            await session._close_orphaned_run()
            if session.state.current_run_id is None:
                await session.append(ev.SessionEnded(session_id=session_id, reason=reason))
                return
            # A run another process left unfinished: accounted for before the end, so nothing
            # follows `session_ended`; refused while that process still runs it.
            await session._lock_run()
            try:
                await self._mark_interrupted(session)
                await session.append(ev.SessionEnded(session_id=session_id, reason=reason))
            finally:
                await session._unlock_run()

    def active_runs(self) -> int:
        """How many runs are working right now."""
        return sum(1 for s in self._sessions.values() if s.run_active)

    # --- recovery --------------------------------------------------------------------------

    async def recover(self) -> builtins.list[RecoveryReport]:
        """Account for every run a crash cut short: close its open calls, then continue or mark it.

        Only the database's owner recovers: a second process beside a live daemon (a CLI
        command, say) would otherwise "recover" runs that are still running there.
        """
        if not await self.store.log.claim_ownership():
            log.warning("another process owns this database; recovery is left to it")
            return self.recovery
        mode = self.settings.resume_interrupted_runs
        for summary in await self.store.sessions():
            if summary.current_run_id is None or summary.status == "ended":
                continue
            if not await self.store.log.lock_run(summary.session_id):
                continue  # live in another process (a bassi command): not cut short at all
            session = await self.get(summary.session_id)
            run_id = session.state.current_run_id
            if run_id is not None:
                self.recovery.append(await self._recover(session, run_id, mode))
            await session._unlock_run()  # kept while a continued run runs
        return self.recovery

    async def recover_session(self, session_id: str) -> RecoveryReport | None:
        """Mark one session's run that a crash cut short as interrupted (None: it has none).

        For a process working on one session, such as the CLI. A run is only touched when its
        run lock is free, i.e. no live process is running it; `InvalidStateError` otherwise.
        """
        session = await self.get(session_id)
        async with session._start_lock:
            run_id = session.state.current_run_id
            if run_id is None or session.run_active or run_id == session._orphan:
                return None
            if session.state.status is SessionStatus.ENDED:
                return None  # nothing is written after the end
            await session._lock_run()
            try:
                return await self._mark_interrupted(session)
            finally:
                await session._unlock_run()

    async def _mark_interrupted(self, session: Session) -> RecoveryReport:
        """Account for the session's unfinished run (the caller holds its run lock)."""
        run_id = session.state.current_run_id
        if run_id is None:  # pragma: no cover - callers check
            raise InvalidStateError(
                f"session {session.id} has no unfinished run",
                state=session.state.status,
                expected="running",
            )
        report = await self._recover(session, run_id, "mark")
        self.recovery.append(report)
        return report

    def background(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run `work` as a task that `close` cancels and waits for."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _recover(self, session: Session, run_id: str, mode: str) -> RecoveryReport:
        state = session.state
        ids = {"session_id": session.id, "run_id": run_id}

        def keep(call: OpenToolCall) -> bool:
            if mode != "continue":
                return False
            if not call.started:
                return True  # re-offered (pending approval) or still to run
            names = self.registry.names()
            return call.tool_name in names and self.registry.get(call.tool_name).idempotent

        closing = close_open_calls(
            state,
            run_id,
            decided_by="recovery",
            started_reason="the process stopped while this tool was running; its outcome is unknown",
            unstarted_reason="the process stopped before this tool ran",
            keep=keep,
        )
        closed = [e.tool_call_id for e in closing if isinstance(e, ev.ToolCallFailed)]
        recovered = ev.SessionRecovered(
            session_id=session.id,
            interrupted_run_id=run_id,
            interrupted_tool_calls=closed,
            action=mode,
        )
        if mode == "mark":
            await session.append(*closing, recovered, ev.RunInterrupted(**ids))
        else:
            try:
                agent = session._new_agent(self.model_for(state.model))
            except ConfigError as exc:
                await session.append(
                    *closing,
                    recovered,
                    ev.Error(**ids, where="recovery", error_type="ConfigError", message=str(exc)),
                    ev.RunInterrupted(**ids, reason=f"cannot continue: {exc}"),
                )
                return RecoveryReport(session.id, run_id, "mark", closed)
            await session.append(
                *closing,
                recovered,
                ev.RunStarted(
                    **ids, model=state.model, permission_mode=state.permission_mode, resumed=True
                ),
            )
            session._start(run_id, agent)
        return RecoveryReport(session.id, run_id, mode, closed)

    async def close(self) -> None:
        """Stop the runs (left open for recovery to carry on), flush and close the store."""
        self.closing = True
        await asyncio.gather(*(s._shutdown() for s in self._sessions.values()))
        for task in tuple(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for model in self._models.values():
            aclose = getattr(model, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        await self.store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _run_logged(agent: Agent, run_id: str) -> None:
    # A run only raises when it could not even record its failure (the store is down);
    # the next prompt closes it (`_close_orphaned_run`), recovery does after a restart.
    try:
        await agent.run(run_id)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("run %s ended without recording its end", run_id)


def session_workspace(given: str | None, settings: Settings) -> Path:
    """The directory a new session works in: `given`, else the configured workspace, else
    the current directory; `ConfigError` if it is not a directory."""
    where = Path(given or settings.workspace or Path.cwd()).expanduser().resolve()
    if not where.is_dir():
        raise ConfigError(f"workspace {str(where)!r} is not a directory")
    return where


def _pick_default_model(settings: Settings, environ: Mapping[str, str]) -> tuple[str, bool]:
    """The configured model, else the first provider with a key, else the offline scripted model."""
    if settings.default_model:
        return settings.default_model, False
    for provider, spec in _DEFAULT_MODELS.items():
        preset = PROVIDERS.get(provider)
        if preset is not None and environ.get(preset.key_variable, "").strip():
            return spec, False
    return "scripted", True
