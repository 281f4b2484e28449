"""PostgreSQL access for a trio program: sync psycopg in worker threads.

psycopg's async connection and pool are asyncio-only (protocols.md §5), so every query runs in a
worker thread on a connection borrowed from a sync ``psycopg_pool.ConnectionPool``. A trio
``CapacityLimiter`` sized like the pool keeps threads from queueing inside the pool, where trio
could not see them.

Failure policy: a database that cannot be reached, or that drops a connection mid-query, raises
``DatabaseUnavailable`` (and logs ``db.unavailable``) within bounded time -- connect timeout, pool
checkout timeout and ``statement_timeout`` all bound the wait. Errors that are the query's own
fault (syntax, constraint violations, serialization failures) propagate unchanged, because the
caller can act on them.

Cancellation: a running query ignores trio cancellation, so on cancel the borrowed connection is
asked to cancel its query (``cancel_safe``) and the worker thread is left to finish on its own;
the limiter token comes back when that thread really ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, LiteralString, TypeVar

import attrs
import psycopg
import psycopg_pool
import trio
from psycopg import sql
from psycopg.abc import Params
from psycopg.rows import dict_row

from callcontrol.logs import get_logger

T = TypeVar("T")
Row = dict[str, Any]
Connection = psycopg.Connection[Row]
# Literal SQL or psycopg.sql compositions only: text built from input never reaches the server.
Query = LiteralString | bytes | sql.SQL | sql.Composed

_log = get_logger("callcontrol.db")

# SQLSTATE classes that mean "the server is not there for us", not "your query is wrong":
# 08 connection exception, 57P admin/crash shutdown or cannot connect now, 57014 statement timeout.
_UNAVAILABLE_SQLSTATES = ("08", "57P", "57014", "53300")


class DatabaseUnavailable(Exception):
    """The database could not be reached or dropped the connection; the operation did not run
    (or its transaction was rolled back)."""

    def for_the_admin(self) -> str:
        """The one line an admin command prints after its name: the reason and the fix."""
        reason = str(self).strip().splitlines()[0]
        return f"{reason} -- fix: check DATABASE_URL (callcontrol doctor)"


@attrs.frozen
class PoolOptions:
    """Sizes and time limits of the connection pool; the defaults suit one callcontrol instance."""

    min_size: int = 1
    max_size: int = 10
    connect_timeout: float = 5.0
    checkout_timeout: float = 10.0
    statement_timeout_ms: int = 30_000
    open_timeout: float = 10.0
    # Run queries on the trio thread itself, blocking it. Only for tests on an autojump
    # MockClock: while a worker thread runs, trio looks idle and the clock jumps to the next
    # deadline, so a ring timeout would fire during a lookup that takes milliseconds.
    inline: bool = False


def is_unavailable_error(exc: BaseException) -> bool:
    """True when ``exc`` says the server is unreachable rather than that the SQL is wrong."""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    sqlstate = exc.sqlstate
    return sqlstate is None or sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


def redact_url(url: str) -> str:
    """The DSN without its password, for logs and error messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    shown = {k: v for k, v in info.items() if k != "password" and v is not None}
    return psycopg.conninfo.make_conninfo("", **shown)


@attrs.define
class Database:
    """A pool of PostgreSQL connections used from trio; open it with :func:`open_database`."""

    _pool: psycopg_pool.ConnectionPool[Connection]
    _limiter: trio.CapacityLimiter
    _options: PoolOptions
    description: str

    @classmethod
    async def open(cls, url: str, options: PoolOptions | None = None) -> Database:
        """Connect (at least ``min_size`` connections) or raise ``DatabaseUnavailable``."""
        options = options or PoolOptions()
        description = redact_url(url)
        pool: psycopg_pool.ConnectionPool[Connection] = psycopg_pool.ConnectionPool(
            url,
            connection_class=psycopg.Connection,
            kwargs={
                "row_factory": dict_row,
                "connect_timeout": max(1, round(options.connect_timeout)),
                "options": _server_options(url, options),
                "application_name": "callcontrol",
            },
            min_size=options.min_size,
            max_size=options.max_size,
            open=False,
            check=psycopg_pool.ConnectionPool.check_connection,
            timeout=options.checkout_timeout,
            reconnect_failed=_log_reconnect_failed,
            name="callcontrol",
        )

        def connect() -> None:
            _probe(url, options)
            pool.open(wait=True, timeout=options.open_timeout)

        try:
            if options.inline:
                connect()
            else:
                await trio.to_thread.run_sync(connect)
        except psycopg.Error as exc:
            pool.close(timeout=0)
            reason = str(exc).strip()
            _log.error("db.unavailable", operation="open", database=description, error=reason)
            raise DatabaseUnavailable(
                f"cannot connect to PostgreSQL at {description}: {reason}"
            ) from exc
        _log.info("db.opened", database=description, max_size=options.max_size)
        return cls(pool, trio.CapacityLimiter(options.max_size), options, description)

    async def close(self) -> None:
        if self._options.inline:
            self._pool.close()
        else:
            await trio.to_thread.run_sync(self._pool.close)

    async def fetch_all(self, query: Query, params: Params | None = None) -> list[Row]:
        return await self.transaction(lambda conn: conn.execute(query, params).fetchall())

    async def fetch_one(self, query: Query, params: Params | None = None) -> Row | None:
        return await self.transaction(lambda conn: conn.execute(query, params).fetchone())

    async def fetch_value(self, query: Query, params: Params | None = None) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = await self.fetch_one(query, params)
        return None if row is None else next(iter(row.values()))

    async def execute(self, query: Query, params: Params | None = None) -> int:
        """Run one statement in its own transaction; returns the affected row count."""
        return await self.transaction(lambda conn: conn.execute(query, params).rowcount)

    async def transaction(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(conn)`` in a worker thread inside one transaction: committed when it
        returns, rolled back when it raises. ``work`` must not keep ``conn``."""
        borrowed: list[Connection] = []

        def run() -> T:
            with self._pool.connection() as conn:
                borrowed.append(conn)
                with conn.transaction():
                    return work(conn)

        try:
            if self._options.inline:
                await trio.lowlevel.checkpoint()
                return run()
            return await trio.to_thread.run_sync(run, limiter=self._limiter, abandon_on_cancel=True)
        except trio.Cancelled:
            if borrowed:
                await _cancel_query(borrowed[0])
            raise
        except psycopg.Error as exc:
            if is_unavailable_error(exc):
                _log.error(
                    "db.unavailable",
                    operation="query",
                    database=self.description,
                    error=str(exc).strip(),
                    sqlstate=exc.sqlstate,
                )
                raise DatabaseUnavailable(
                    f"PostgreSQL at {self.description} is unavailable: {str(exc).strip()}"
                ) from exc
            raise


def _probe(url: str, options: PoolOptions) -> None:
    # One direct attempt first: it fails fast with libpq's own reason ("connection refused",
    # "password authentication failed"), where the pool would retry until its timeout.
    with psycopg.connect(url, connect_timeout=max(1, round(options.connect_timeout))):
        pass


async def _cancel_query(conn: Connection) -> None:
    # Shielded and time-boxed: the caller is being cancelled, but leaving the query running
    # would hold a pooled connection (and perhaps locks) until statement_timeout.
    with trio.move_on_after(3) as scope:
        scope.shield = True
        try:
            await trio.to_thread.run_sync(
                lambda: conn.cancel_safe(timeout=2.0), abandon_on_cancel=True
            )
        except psycopg.Error as exc:
            _log.warning("db.cancel_failed", error=str(exc))


def _server_options(url: str, options: PoolOptions) -> str:
    # Keep the DSN's own ``options`` (a search_path, say): the pool's kwargs replace, not merge.
    existing = psycopg.conninfo.conninfo_to_dict(url).get("options") or ""
    return f"{existing} -c statement_timeout={options.statement_timeout_ms}".strip()


def _log_reconnect_failed(pool: psycopg_pool.ConnectionPool[Any]) -> None:
    _log.error("db.reconnect_failed", pool=pool.name)
