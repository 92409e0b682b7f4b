"""`bassi serve`: the daemon hosting every session, with the web UI and the HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer

from bassi.cli.app import DbOption, ModelOption, WorkspaceOption, app, fail, load_settings
from bassi.errors import BassiError, ConfigError
from bassi.settings import Settings


@app.command("serve")
def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to bind (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to bind (default 8765).")] = None,
    model: ModelOption = None,
    workspace: WorkspaceOption = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Require this bearer token on every request.")
    ] = None,
    db: DbOption = None,
    reload: Annotated[
        bool, typer.Option("--reload", help="Restart when the code changes.")
    ] = False,
) -> None:
    """Start the service: recovers interrupted runs, then serves the UI and the API."""
    settings = load_settings(
        host=host,
        port=port,
        default_model=model,
        workspace=workspace,
        token=token,
        database=db,
    )
    from bassi.web.server import run_server

    try:
        _check_session_defaults(settings)
        run_server(settings=settings, reload=reload)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    except BassiError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # e.g. the port is taken
        raise fail(
            f"cannot serve on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None


def _check_session_defaults(settings: Settings) -> None:
    """Refuse a default model, workspace, rule or hook that every new session would fail
    on, rather than serve, report healthy, and answer each "New session" with a 422."""
    from bassi.manager import session_workspace
    from bassi.models.registry import get_model
    from bassi.tools.permissions import PermissionPolicy

    if settings.default_model:
        get_model(settings.default_model)  # ConfigError names what is wrong
    session_workspace(None, settings)
    PermissionPolicy.from_settings(settings)
