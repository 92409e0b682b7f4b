"""Serve the web app with uvicorn: refuse unsafe binds, shut down cleanly on SIGTERM/SIGINT.

`python -m bassi.web.server --db PATH --port N [--host H] [--token T] [--reload]` runs the
same thing as `bassi serve`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import ipaddress
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from bassi.errors import BassiError, ConfigError, StoreError
from bassi.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bassi.manager import SessionManager

# uvicorn and the app are imported only once the settings are known to be servable, so a
# refused bind answers at once instead of after loading the whole web stack.

_SETTINGS_VARIABLE = "BASSI_WEB_SETTINGS"
"""Carries the settings to the app factory in `--reload` mode (the worker is a new process)."""

GRACEFUL_SHUTDOWN_SECONDS = 10.0
"""How long shutdown waits for open requests before cancelling them."""


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses; any other name or address is exposed."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse to listen beyond this machine without a token (DESIGN.md section 9)."""
    if not settings.token and not is_loopback(settings.host):
        raise ConfigError(
            f"refusing to listen on {settings.host} without a token: set --token or BASSI_TOKEN"
        )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings bassi uses: sans-I/O websockets, frame cap, graceful timeout."""
    return {
        "host": settings.host,
        "port": settings.port,
        "ws": "websockets-sansio",
        "ws_max_size": 8 * settings.max_prompt_bytes + 65_536,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "server_header": False,
        "proxy_headers": False,
        "log_level": "info",
    }


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port (OSError when the port is taken)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def run_server(*, settings: Settings, reload: bool = False) -> None:
    """Serve until SIGINT/SIGTERM; the store is flushed before this returns.

    Raises ConfigError for a non-loopback host without a token, OSError when the port is
    taken, and StoreError (one line) when the database cannot be opened: before anything is
    announced, so "serving on" means the database is open and recovered.
    """
    check_bind(settings)
    import uvicorn

    from bassi.web.app import create_app

    if reload:
        os.environ[_SETTINGS_VARIABLE] = settings.model_dump_json()
        uvicorn.run(
            "bassi.web.server:app_from_environment",
            factory=True,
            reload=True,
            reload_dirs=[str(Path(__file__).resolve().parent.parent)],
            **uvicorn_options(settings),
        )
        return

    class Server(uvicorn.Server):
        """Opens the database before serving, ends open streams as soon as shutdown begins, and
        exits 0 after a clean shutdown."""

        app: FastAPI | None = None

        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            # The database opens before anything is announced: one that cannot be opened is
            # one line (raised from here), never "serving on" and uvicorn's startup traceback.
            # A SIGTERM meanwhile lets recovery finish, then stops before serving.
            with self.capture_signals():
                manager = await open_manager(settings)
                try:
                    if not self.should_exit:
                        self._announce(manager, sockets)
                except BaseException:
                    await manager.close()
                    raise
            try:
                if not self.should_exit:
                    await super().serve(sockets)
            finally:
                await manager.close()

        def _announce(self, manager: SessionManager, sockets: list[socket.socket] | None) -> None:
            self.app = create_app(settings, manager=manager)
            self.config.app = self.app
            if sockets:
                host, port = sockets[0].getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                print(f"bassi: serving on http://{shown}:{port}/", file=sys.stderr, flush=True)
            # Everything imported so far (FastAPI, pydantic, the SDKs: a few hundred thousand
            # objects) lives as long as the process. Out of the collector's sight, a full
            # collection no longer walks all of it in the middle of a streaming run.
            gc.collect()
            gc.freeze()

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            context = getattr(self.app.state, "web", None) if self.app else None
            if context is not None:
                context.drain()
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                # uvicorn re-raises the signal it caught once it has shut down, so the process
                # would die "by SIGTERM"; a requested, completed shutdown is a normal exit.
                captured = getattr(self, "_captured_signals", None)
                if isinstance(captured, list):
                    captured.clear()

    # The app is made once the database is open (in `Server.serve`); uvicorn only gets it then.
    server = Server(uvicorn.Config(create_app, **uvicorn_options(settings)))
    # Bind before the database is opened: a taken port must fail before recovery touches the
    # runs of whatever already serves there.
    listener = bind(settings.host, settings.port)
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()
    if not server.started and not server.should_exit:
        raise BassiError("the server did not start (see the log above)")


async def open_manager(settings: Settings) -> SessionManager:
    """The session manager on the configured database (migrated, runs recovered); a database
    that cannot be opened raises StoreError with one readable line."""
    from bassi.manager import SessionManager
    from bassi.store.dberror import describe

    try:
        return await SessionManager.connect(settings=settings)
    except BassiError:
        raise
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        raise StoreError(describe(exc) or f"cannot open the database: {reason}") from exc


def app_from_environment() -> FastAPI:
    """App factory for `--reload`: the settings come from the parent process."""
    from bassi.web.app import create_app

    raw = os.environ.get(_SETTINGS_VARIABLE)
    settings = Settings.model_validate_json(raw) if raw else Settings.load()
    return create_app(settings)


def main(argv: list[str] | None = None) -> int:
    """`python -m bassi.web.server`: serve, or print one line and exit 2 on a bad setting."""
    parser = argparse.ArgumentParser(prog="python -m bassi.web.server", description=__doc__)
    parser.add_argument("--db", help="database path or URL (default: $BASSI_HOME/bassi.db)")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default 8765)")
    parser.add_argument("--token", help="require this token (default: $BASSI_TOKEN)")
    parser.add_argument("--model", help="default model, provider:name")
    parser.add_argument("--workspace", help="directory the tools work in")
    parser.add_argument("--reload", action="store_true", help="restart when the code changes")
    args = parser.parse_args(argv)
    try:
        settings = Settings.load(
            {
                "database": args.db,
                "host": args.host,
                "port": args.port,
                "token": args.token,
                "default_model": args.model,
                "workspace": args.workspace,
            }
        )
        run_server(settings=settings, reload=args.reload)
    except ConfigError as exc:
        print(f"bassi: {exc}", file=sys.stderr)
        return 2
    except BassiError as exc:
        print(f"bassi: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"bassi: cannot serve on {args.host or '127.0.0.1'}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
