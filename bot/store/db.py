"""Engine creation and migrations.

SQLite gets WAL, a busy timeout and foreign keys on every connection, so several processes (a CLI next to the
service) share one file safely. PostgreSQL is reached with asyncpg. Alembic runs on start and from
`supportbot db upgrade`; on PostgreSQL an advisory lock makes concurrent replicas migrate one at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 15_000
_MIGRATION_LOCK_ID = 0x5B07  # arbitrary, constant: the advisory lock that serialises migrations on PostgreSQL


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    """An async engine for `url`; for SQLite the parent folder is created and pragmas set per connection."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
    # hide_parameters: an error message never carries bound values (a card number in a customer's text)
    engine = create_async_engine(url, hide_parameters=True, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


class Database:
    """The engine plus a session factory; one per process, built by the composition root."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except (SQLAlchemyError, OSError):
            return False

    async def upgrade(self) -> None:
        """Apply Alembic migrations up to head."""
        try:
            async with self.engine.begin() as conn:
                await _upgrade(conn)
        except (OSError, SQLAlchemyError) as exc:
            raise ConfigError(f"database not reachable at {safe_url(self.url)}: {type(exc).__name__}") from exc

    async def dispose(self) -> None:
        await self.engine.dispose()


async def _upgrade(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})"))
    await conn.run_sync(_run_alembic)


def _run_alembic(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def safe_url(url: str) -> str:
    """The URL with any password hidden, fit for logs and error lines."""
    return make_url(url).render_as_string(hide_password=True)
