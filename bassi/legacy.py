"""The seed's API, kept working: `AgentConfig`, `AgentSession`, `create_bash_tool`.

    session = AgentSession(AgentConfig(model_provider="scripted"), tools=[create_bash_tool()])
    await session.start()
    async for event in session.send_prompt("hello"):
        ...
    await session.complete()

It is a thin shell over `SessionManager`: a standalone session on an in-memory store (or a
file, with `database=`), producing exactly the events a daemon session produces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bassi import events as ev
from bassi.errors import InvalidStateError
from bassi.manager import Session, SessionManager
from bassi.models.base import Model
from bassi.models.registry import get_model
from bassi.settings import Settings
from bassi.store.subscription import Subscription
from bassi.tools.base import Tool
from bassi.tools.registry import ToolRegistry
from bassi.tools.shell import bash


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """How a standalone session talks to its model."""

    model_provider: str = "scripted"
    """`anthropic`, `openai`, `deepseek`, `moonshot`, `openrouter`, `ollama` or `scripted`."""
    model_name: str = ""
    """The provider's model name (ignored by `scripted`)."""
    api_key: str | None = None
    """The provider key; never written to events."""
    system_prompt: str = ""
    """System prompt of every model call."""
    max_tokens: int = 4096
    """Output token limit per model call."""
    permission_mode: str = "bypass"
    """The seed ran every tool it was given without asking; `default` asks for risky ones."""
    workspace: str | None = None
    """Directory the tools work in (default: the current directory)."""

    @property
    def model(self) -> str:
        """The `provider:name` spec."""
        return (
            f"{self.model_provider}:{self.model_name}" if self.model_name else self.model_provider
        )


def create_bash_tool() -> Tool:
    """The `bash` tool: runs in the workspace, in its own process group, with a timeout."""
    return bash


class AgentSession:
    """A standalone agent session (the seed's API)."""

    def __init__(
        self, config: AgentConfig, *, tools: Sequence[Tool] = (), database: str = ":memory:"
    ) -> None:
        self.config = config
        self.tools = list(tools)
        self.database = database
        self._manager: SessionManager | None = None
        self._session: Session | None = None

    @property
    def session_id(self) -> str:
        """The session's id (after `start`)."""
        return self._require().id

    async def start(self) -> None:
        """Open the store and create the session."""
        if self._manager is not None:
            raise InvalidStateError(
                "the session was already started", state="started", expected="new"
            )
        config = self.config

        def model(spec: str) -> Model:
            return get_model(spec, api_key=config.api_key)

        settings = Settings.load(
            {"home": Path.cwd() / ".bassi-session", "max_turns": 50}, environ={}
        )
        self._manager = await SessionManager.connect(
            self.database,
            settings=settings,
            recover=False,
            model_factory=model,
            registry=ToolRegistry(self.tools),
        )
        self._session = await self._manager.create(
            model=config.model,
            system_prompt=config.system_prompt,
            permission_mode=config.permission_mode,
            workspace=config.workspace,
            tools=[t.name for t in self.tools],
        )

    async def send_prompt(self, prompt: str) -> AsyncIterator[ev.Event]:
        """Run one prompt; yield its events until the run ends."""
        async for event in self._require().send(prompt):
            yield event

    def subscribe(self, name: str) -> Subscription:
        """Every event of this session from the first, then live, as an async iterator."""
        return self._require().subscribe(after=0, name=name)

    async def get_events(self) -> list[ev.Event]:
        """Every committed event of this session, in order."""
        assert self._manager is not None
        await self._manager.store.flush()
        return await self._manager.store.query(session_id=self.session_id)

    async def complete(self) -> None:
        """End the session and close the store (flushing everything)."""
        if self._manager is None:
            return
        session = self._require()
        if not session.run_active:
            await self._manager.end(session.id, reason="completed")
        await self._manager.close()
        self._manager = None

    def _require(self) -> Session:
        if self._session is None or self._manager is None:
            raise InvalidStateError("call start() first", state="new", expected="started")
        return self._session
