"""Events log, sessions read model, append-only triggers and audit views.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TERMINAL = "('run_completed', 'run_cancelled', 'run_failed', 'run_interrupted')"


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _text(alias: str, *path: str) -> str:
    """A JSON payload field as text."""
    if _pg():
        return f"({alias}.payload #>> '{{{','.join(path)}}}')"
    return f"json_extract({alias}.payload, '$.{'.'.join(path)}')"


def _int(alias: str, *path: str) -> str:
    return f"CAST({_text(alias, *path)} AS BIGINT)" if _pg() else _text(alias, *path)


def _bool(alias: str, *path: str) -> str:
    return f"CAST({_text(alias, *path)} AS BOOLEAN)" if _pg() else _text(alias, *path)


def _json(alias: str, *path: str) -> str:
    """A JSON payload field as JSON (an object stays an object)."""
    if _pg():
        return f"({alias}.payload #> '{{{','.join(path)}}}')"
    return f"json_extract({alias}.payload, '$.{'.'.join(path)}')"


def _views() -> dict[str, str]:
    call = _text("d", "tool_call_id")
    interrupted = _bool("f", "interrupted")
    true = "true" if _pg() else "1"
    return {
        "audit_tool_calls": f"""
            SELECT d.session_id, d.run_id, {call} AS tool_call_id,
                   {_text("d", "tool_name")} AS tool_name,
                   COALESCE({_json("s", "input")}, {_json("r", "input")}) AS input,
                   {_text("d", "decision")} AS decision,
                   {_text("d", "decided_by")} AS decided_by,
                   {_text("d", "reason")} AS decision_reason,
                   CASE WHEN c.event_id IS NOT NULL THEN 'completed'
                        WHEN f.event_id IS NOT NULL AND {interrupted} = {true} THEN 'interrupted'
                        WHEN f.event_id IS NOT NULL THEN 'failed'
                        WHEN {_text("d", "decision")} = 'deny' THEN 'denied'
                        ELSE 'pending' END AS outcome,
                   {_text("c", "output")} AS output,
                   LENGTH({_text("c", "output")}) AS output_size,
                   {_bool("c", "is_error")} AS is_error,
                   {_bool("c", "truncated")} AS truncated,
                   {_text("f", "error")} AS error,
                   COALESCE({_int("c", "duration_ms")}, {_int("f", "duration_ms")}) AS duration_ms,
                   d.recorded_at AS decided_at,
                   s.recorded_at AS started_at,
                   COALESCE(c.recorded_at, f.recorded_at) AS finished_at
            FROM events d
            LEFT JOIN events r ON r.session_id = d.session_id AND r.type = 'permission_requested'
                 AND {_text("r", "tool_call_id")} = {call}
            LEFT JOIN events s ON s.session_id = d.session_id AND s.type = 'tool_call_started'
                 AND {_text("s", "tool_call_id")} = {call}
            LEFT JOIN events c ON c.session_id = d.session_id AND c.type = 'tool_call_completed'
                 AND {_text("c", "tool_call_id")} = {call}
            LEFT JOIN events f ON f.session_id = d.session_id AND f.type = 'tool_call_failed'
                 AND {_text("f", "tool_call_id")} = {call}
            WHERE d.type = 'permission_decided'
        """,
        "audit_runs": f"""
            SELECT p.session_id, p.run_id, {_text("p", "content")} AS prompt,
                   p.recorded_at AS started_at,
                   COALESCE(t.type, 'active') AS outcome,
                   t.recorded_at AS ended_at,
                   {_text("t", "stop_reason")} AS stop_reason,
                   {_int("t", "turns")} AS turns,
                   {_int("t", "duration_ms")} AS duration_ms,
                   {_int("t", "usage", "input_tokens")} AS input_tokens,
                   {_int("t", "usage", "output_tokens")} AS output_tokens,
                   COALESCE({_text("t", "message")}, {_text("t", "reason")}) AS detail
            FROM events p
            LEFT JOIN events t ON t.session_id = p.session_id AND t.run_id = p.run_id
                 AND t.type IN {TERMINAL}
            WHERE p.type = 'prompt_received'
        """,
        "audit_permissions": f"""
            SELECT d.session_id, d.run_id, {_text("d", "tool_call_id")} AS tool_call_id,
                   {_text("d", "tool_name")} AS tool_name,
                   {_text("d", "decision")} AS decision,
                   {_text("d", "decided_by")} AS decided_by,
                   {_text("d", "reason")} AS reason,
                   {_json("d", "updated_input")} AS updated_input,
                   r.event_id IS NOT NULL AS asked,
                   r.recorded_at AS requested_at,
                   d.recorded_at AS decided_at
            FROM events d
            LEFT JOIN events r ON r.session_id = d.session_id AND r.type = 'permission_requested'
                 AND {_text("r", "tool_call_id")} = {_text("d", "tool_call_id")}
            WHERE d.type = 'permission_decided'
        """,
        "audit_usage": f"""
            SELECT m.session_id, {_text("m", "provider")} AS provider,
                   {_text("m", "model")} AS model,
                   COUNT(*) AS model_calls,
                   SUM({_int("m", "usage", "input_tokens")}) AS input_tokens,
                   SUM({_int("m", "usage", "output_tokens")}) AS output_tokens,
                   SUM({_int("m", "usage", "cache_read_tokens")}) AS cache_read_tokens,
                   SUM({_int("m", "usage", "cache_write_tokens")}) AS cache_write_tokens
            FROM events m
            WHERE m.type = 'message_completed'
            GROUP BY m.session_id, {_text("m", "provider")}, {_text("m", "model")}
        """,
        "audit_messages": f"""
            SELECT e.session_id, e.run_id, e.seq,
                   CASE WHEN e.type = 'prompt_received' THEN 'user' ELSE 'assistant' END AS role,
                   CASE WHEN e.type = 'prompt_received' THEN {_text("e", "content")}
                        ELSE NULL END AS text,
                   {_json("e", "content")} AS content,
                   {_text("e", "stop_reason")} AS stop_reason,
                   e.recorded_at
            FROM events e
            WHERE e.type IN ('prompt_received', 'message_completed')
        """,
    }


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "position",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=False,
        ),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("v", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("position", name="pk_events"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
        sa.UniqueConstraint("session_id", "seq", name="uq_events_session_id_seq"),
    )
    op.create_index("ix_events_run_id", "events", ["run_id"])
    op.create_index("ix_events_session_id_type", "events", ["session_id", "type"])
    op.create_table(
        "sessions",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False, server_default=""),
        sa.Column("model", sa.String(200), nullable=False, server_default=""),
        sa.Column("status", sa.String(32), nullable=False, server_default="idle"),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_position", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("runs", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("current_run_id", sa.String(64), nullable=True),
        sa.Column("pending_approvals", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("session_id", name="pk_sessions"),
    )
    if _pg():
        op.execute(
            """
            CREATE FUNCTION bassi_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'events are append-only: % refused', TG_OP;
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION bassi_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
            "FOR EACH STATEMENT EXECUTE FUNCTION bassi_events_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
            "BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END"
        )
        op.execute(
            "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
            "BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused'); END"
        )
    for name, sql in _views().items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def downgrade() -> None:
    for name in reversed(list(_views())):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    if _pg():
        op.execute("DROP TRIGGER IF EXISTS events_no_truncate ON events")
        op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
        op.execute("DROP FUNCTION IF EXISTS bassi_events_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS events_no_delete")
        op.execute("DROP TRIGGER IF EXISTS events_no_update")
    op.drop_table("sessions")
    op.drop_index("ix_events_session_id_type", table_name="events")
    op.drop_index("ix_events_run_id", table_name="events")
    op.drop_table("events")
