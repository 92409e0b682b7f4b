"""The schema as SQLAlchemy Core metadata (Alembic revisions spell it out with explicit `op.*`)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite makes `INTEGER PRIMARY KEY` an alias of the rowid (stable across VACUUM);
# PostgreSQL wants 64 bits.
PositionType = BigInteger().with_variant(Integer(), "sqlite")
PayloadType = JSON().with_variant(JSONB(), "postgresql")

events = Table(
    "events",
    metadata,
    Column("position", PositionType, primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("type", String(64), nullable=False),
    Column("v", Integer, nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("payload", PayloadType, nullable=False),
    UniqueConstraint("event_id"),
    UniqueConstraint("session_id", "seq"),
    Index(None, "run_id"),
    Index(None, "session_id", "type"),
)
"""The append-only log: one row per event, never updated or deleted."""

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("title", Text, nullable=False, server_default=""),
    Column("model", String(200), nullable=False, server_default=""),
    Column("status", String(32), nullable=False, server_default="idle"),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Column("last_seq", Integer, nullable=False, server_default="0"),
    Column("last_position", BigInteger, nullable=False, server_default="0"),
    Column("runs", Integer, nullable=False, server_default="0"),
    Column("current_run_id", String(64), nullable=True),
    Column("pending_approvals", Integer, nullable=False, server_default="0"),
    Column("input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("output_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_read_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_write_tokens", BigInteger, nullable=False, server_default="0"),
)
"""Read model: one summary row per session, written in the same transaction as its events."""
