"""`bassi audit "SQL"` and the canned reports, on a read-only connection."""

from __future__ import annotations

import csv
import json
import math
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bassi.cli.app import DbOption, app, existing_db, fail, run
from bassi.cli.lookup import find_session, reading
from bassi.cli.render import console, visible
from bassi.store.audit import REPORTS, AuditResult, run_query, run_report


@app.command("audit")
def audit(
    query: Annotated[
        str,
        typer.Argument(
            help=f"A SQL statement, or a report: {', '.join(REPORTS)}.",
            metavar="SQL|REPORT",
        ),
    ],
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Reports only: one session.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Rows as a JSON array.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Rows as CSV with a header.")] = False,
    db: DbOption = None,
) -> None:
    """Query the event log with SQL (read-only), or print a canned report.

    Views: audit_tool_calls, audit_runs, audit_permissions, audit_usage, audit_messages;
    tables: events, sessions.
    """
    if as_json and as_csv:
        raise fail("choose one of --json and --csv", 2)
    url = existing_db(db)
    name = query.strip().lower()
    if name in REPORTS:

        async def report() -> AuditResult:
            session_id = None
            if session is not None:  # an id or a unique prefix, as everywhere else
                async with reading(url) as log:
                    session_id = (await find_session(log, session)).session_id
            return await run_report(url, name, session_id=session_id)

        result = run(report)
    elif session is not None:
        raise fail("--session applies to the reports only; filter in your SQL", 2)
    else:
        result = run(lambda: run_query(url, query))
    if as_json:
        rows = [
            {c: _json_value(v) for c, v in zip(result.columns, row, strict=True)}
            for row in result.rows
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str, allow_nan=False))
    elif as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    else:
        _table(result)


def _json_value(value: Any) -> Any:
    """`value` as JSON can hold it: a float JSON has no number for (inf, -inf, nan) becomes the
    string PostgreSQL and JavaScript's Number() spell it with, "Infinity", "-Infinity" or "NaN",
    so it stays itself and apart from SQL NULL (null) while the output stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _cell(value: Any) -> str:
    """A value on one line of at most 60 characters (--json and --csv give it whole)."""
    if value is None:
        return ""
    text = visible(" ".join(str(value).split()))
    return text if len(text) <= 60 else text[:59] + "…"


def _table(result: AuditResult) -> None:
    out = console()
    table = Table(*(escape(visible(c)) for c in result.columns), header_style="bold")
    for row in result.rows:
        table.add_row(*(Text(_cell(v)) for v in row))
    out.print(table)
    out.print(f"{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}", style="dim")
