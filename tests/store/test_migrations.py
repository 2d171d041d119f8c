"""The Alembic migrations build exactly the schema the models describe (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from bot.store.db import Database
from bot.store.tables import Base

# APScheduler's job store creates its own table at run time; it is not one of our models.
NOT_OURS = {"apscheduler_jobs"}


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return [
        d
        for d in compare_metadata(context, Base.metadata)
        if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name in NOT_OURS)
    ]


async def test_migrations_match_the_models(db: Database) -> None:
    async with db.engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == [], f"models and migrations disagree; write a migration: {diff}"
