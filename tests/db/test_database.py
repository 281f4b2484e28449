"""Database: queries from trio on a real PostgreSQL, and failures that are clear, never hangs."""

from __future__ import annotations

import time

import psycopg
import pytest
import trio

from callcontrol.db import Database, DatabaseUnavailable, PoolOptions, open_database, redact_url


async def test_rows_come_back_as_dicts(db: Database) -> None:
    await db.execute("CREATE TABLE t (id int, name text)")
    assert await db.execute("INSERT INTO t VALUES (1, 'João'), (2, 'Ana')") == 2

    assert await db.fetch_all("SELECT * FROM t ORDER BY id") == [
        {"id": 1, "name": "João"},
        {"id": 2, "name": "Ana"},
    ]
    assert await db.fetch_one("SELECT name FROM t WHERE id = %s", (2,)) == {"name": "Ana"}
    assert await db.fetch_one("SELECT name FROM t WHERE id = %s", (3,)) is None
    assert await db.fetch_value("SELECT count(*) FROM t") == 2


async def test_transaction_commits_or_rolls_back_as_a_whole(db: Database) -> None:
    await db.execute("CREATE TABLE t (id int PRIMARY KEY)")

    def two_inserts(conn: psycopg.Connection[dict[str, object]]) -> None:
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("INSERT INTO t VALUES (1)")  # duplicate: the first insert must vanish too

    with pytest.raises(psycopg.errors.UniqueViolation):
        await db.transaction(two_inserts)
    assert await db.fetch_value("SELECT count(*) FROM t") == 0

    await db.transaction(lambda conn: conn.execute("INSERT INTO t VALUES (7)"))
    assert await db.fetch_value("SELECT id FROM t") == 7


async def test_worker_thread_mode_runs_concurrent_queries(db_url: str) -> None:
    async with open_database(db_url, PoolOptions(max_size=3)) as db:
        results: list[int] = []

        async def one(i: int) -> None:
            results.append(await db.fetch_value("SELECT %s::int FROM pg_sleep(0.05)", (i,)))

        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(one, i)
        assert sorted(results) == [0, 1, 2]
        assert time.monotonic() - started < 0.14  # the three sleeps overlapped


async def test_sql_mistakes_are_not_reported_as_an_outage(db: Database) -> None:
    with pytest.raises(psycopg.errors.UndefinedTable):
        await db.fetch_all("SELECT * FROM no_such_table")


async def test_unreachable_server_fails_fast_with_database_unavailable() -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match="port=1"):
        await Database.open("postgresql://postgres@127.0.0.1:1/test")
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("inline", [True, False])
async def test_connection_dropped_mid_query_is_unavailable_then_recovers(
    db_url: str, inline: bool
) -> None:
    async with open_database(db_url, PoolOptions(max_size=2, inline=inline)) as db:
        with pytest.raises(DatabaseUnavailable, match="unavailable"):
            await db.fetch_all("SELECT pg_terminate_backend(pg_backend_pid())")
        # The pool threw the dead connection away; the next query gets a fresh one.
        assert await db.fetch_value("SELECT 1") == 1


async def test_statement_timeout_bounds_a_stuck_query(db_url: str) -> None:
    options = PoolOptions(statement_timeout_ms=50, inline=True)
    async with open_database(db_url, options) as db:
        with pytest.raises(DatabaseUnavailable):
            await db.fetch_all("SELECT pg_sleep(5)")


async def test_cancelling_a_query_stops_it_on_the_server(db_url: str) -> None:
    async with open_database(db_url, PoolOptions(max_size=1)) as db:
        started = time.monotonic()
        with trio.move_on_after(0.1):
            await db.fetch_all("SELECT pg_sleep(10)")
        # With max_size=1 this query waits for the cancelled one's connection to come back.
        assert await db.fetch_value("SELECT 1") == 1
        assert time.monotonic() - started < 3


def test_redacted_url_hides_the_password() -> None:
    shown = redact_url("postgresql://fusionpbx:s3cret@db.example.com:5432/fusionpbx")
    assert "s3cret" not in shown
    assert "db.example.com" in shown
