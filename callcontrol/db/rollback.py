"""A database whose writes are all undone: ``callcontrol replay`` of a recorded call.

One connection, one outer transaction that is rolled back when it closes; each
``transaction(work)`` of the flow is a savepoint inside it, so a failing one is undone alone as
in production. Queries run on the trio thread (replay runs on an autojump MockClock, where a
worker thread would let the clock jump). The interface is the part of ``Database`` the call flow
uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
import trio
from psycopg.rows import dict_row

from callcontrol.db.database import DatabaseUnavailable, redact_url

T = TypeVar("T")
Connection = psycopg.Connection[dict[str, Any]]


class RollbackDatabase:
    def __init__(self, conn: Connection, description: str) -> None:
        self._conn = conn
        self.description = description

    async def transaction(self, work: Callable[[Connection], T]) -> T:
        await trio.lowlevel.checkpoint()
        with self._conn.transaction():  # a savepoint: the outer transaction is open
            return work(self._conn)

    async def fetch_all(self, query: Any, params: Any = None) -> list[dict[str, Any]]:
        return await self.transaction(lambda conn: conn.execute(query, params).fetchall())

    async def fetch_one(self, query: Any, params: Any = None) -> dict[str, Any] | None:
        return await self.transaction(lambda conn: conn.execute(query, params).fetchone())

    async def fetch_value(self, query: Any, params: Any = None) -> Any:
        row = await self.fetch_one(query, params)
        return None if row is None else next(iter(row.values()))

    async def execute(self, query: Any, params: Any = None) -> int:
        return await self.transaction(lambda conn: conn.execute(query, params).rowcount)

    async def close(self) -> None:
        self._conn.rollback()
        self._conn.close()


@asynccontextmanager
async def open_rollback_database(url: str) -> AsyncIterator[RollbackDatabase]:
    """Connect or raise ``DatabaseUnavailable``; everything written is rolled back on exit."""
    description = redact_url(url)
    try:
        conn: Connection = psycopg.connect(url, row_factory=dict_row, connect_timeout=5,
                                           application_name="callcontrol-replay")  # fmt: skip
        conn.execute("SELECT 1")  # opens the outer transaction the savepoints live in
    except psycopg.Error as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {description}: {str(exc).strip()}"
        ) from exc
    db = RollbackDatabase(conn, description)
    try:
        yield db
    finally:
        await db.close()
