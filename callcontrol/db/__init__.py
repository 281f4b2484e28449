"""Database access: a psycopg connection pool driven from trio, the embedded PostgreSQL used
when no DSN is configured, and the SQL migrations in ``sql/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from callcontrol.db.database import (
    Connection,
    Database,
    DatabaseUnavailable,
    PoolOptions,
    Row,
    is_unavailable_error,
    redact_url,
)
from callcontrol.db.embedded import start_embedded

__all__ = [
    "Connection",
    "Database",
    "DatabaseUnavailable",
    "PoolOptions",
    "Row",
    "is_unavailable_error",
    "open_database",
    "redact_url",
    "resolve_database_url",
]


async def resolve_database_url(url: str | None) -> str:
    """``url`` itself, or the embedded server's URI when it is unset (``DATABASE_URL``)."""
    if url:
        return url
    return await trio.to_thread.run_sync(start_embedded)


@asynccontextmanager
async def open_database(
    url: str | None, options: PoolOptions | None = None
) -> AsyncIterator[Database]:
    """Open a :class:`Database` on ``url`` (embedded PostgreSQL when None) and close it after."""
    db = await Database.open(await resolve_database_url(url), options)
    try:
        yield db
    finally:
        with trio.CancelScope(shield=True):
            await db.close()
