"""Small dialect-aware SQL helpers shared by the repositories."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.schema import Table


def insert_ignore(dialect: str, table: Table, values: dict[str, Any]) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING, on PostgreSQL and SQLite alike."""
    if dialect == "postgresql":
        return postgresql.insert(table).values(**values).on_conflict_do_nothing()
    return sqlite.insert(table).values(**values).on_conflict_do_nothing()


def truncate(text: str, limit: int = 2000) -> str:
    """Error text for the database: bounded, so a huge traceback cannot bloat a row."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rowcount(result: Any) -> int:
    """Rows an UPDATE/DELETE touched (typed as `Result` by SQLAlchemy's async API, which hides `rowcount`).

    Compare-and-set transitions read it: 1 means this caller won the transition, 0 that someone else did first.
    """
    return int(getattr(result, "rowcount", 0) or 0)
