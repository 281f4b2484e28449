"""Migrations: numbered, idempotent, safe to run from two instances at once."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import trio

from callcontrol.db import Database, PoolOptions, open_database
from callcontrol.db.migrations import (
    Migration,
    MigrationError,
    load_migrations,
    migrate,
    run_migrate,
    sql_directory,
)
from callcontrol.testing.database import (
    FUSIONPBX_FIXTURE_SQL,
    add_domain,
    add_secretary,
    isolated_database_url,
)

EXPECTED_COLUMNS = {
    "transfer_destination_uuid", "domain_uuid", "secretary_uuid", "name", "aliases",
    "destination_type", "destination_number", "destination_context", "ring_timeout_seconds",
    "max_retries", "retry_delay_seconds", "fallback_action", "department", "role",
    "description", "working_hours", "priority", "is_default", "is_enabled", "created_at",
    "updated_at", "gateway",
}  # fmt: skip


ALL = [m.version for m in load_migrations()]


@pytest.fixture
def bare_url(database_url: str) -> Iterator[str]:
    """A fresh schema with no tables at all, like a database FusionPBX never touched."""
    with isolated_database_url(database_url, fusionpbx=False, migrated=False) as url:
        yield url


@pytest.fixture
def fusionpbx_url(database_url: str) -> Iterator[str]:
    """A fresh schema with the FusionPBX tables but no migration applied yet."""
    with isolated_database_url(database_url, migrated=False) as url:
        yield url


async def columns(db: Database, table: str) -> set[str]:
    rows = await db.fetch_all(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    )
    return {row["column_name"] for row in rows}


def test_migration_files_are_found_in_the_package_in_order() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations][:2] == [1, 2]
    assert migrations[0].name == "voice_transfer_destinations"
    assert (sql_directory() / "001_voice_transfer_destinations.sql").is_file()


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "001_b.sql").write_text("SELECT 2;")
    (tmp_path / "README.md").write_text("not a migration")
    with pytest.raises(MigrationError, match="two migrations with version 1"):
        load_migrations(tmp_path)


async def test_first_run_creates_tables_and_second_run_applies_nothing(fusionpbx_url: str) -> None:
    async with open_database(fusionpbx_url, PoolOptions(inline=True)) as db:
        assert await migrate(db) == ALL
        assert await migrate(db) == []
        assert await columns(db, "v_voice_transfer_destinations") == EXPECTED_COLUMNS
        assert {
            "transfer_enabled",
            "transfer_default_timeout",
            "transfer_announce_enabled",
        } <= await columns(db, "v_voice_secretaries")
        recorded = await db.fetch_all(
            "SELECT version, name FROM callcontrol_schema_migrations WHERE version <= 2"
            " ORDER BY version"
        )
        assert recorded == [
            {"version": 1, "name": "voice_transfer_destinations"},
            {"version": 2, "name": "voice_secretaries_transfer_fields"},
        ]


async def test_files_themselves_are_idempotent(fusionpbx_url: str) -> None:
    async with open_database(fusionpbx_url, PoolOptions(inline=True)) as db:
        domain = await add_domain(db)
        await add_secretary(db, domain)
        await migrate(db)
        # Forget the record, as if the table had been lost: every file runs again.
        await db.execute("DELETE FROM callcontrol_schema_migrations")
        assert await migrate(db) == ALL
        assert await db.fetch_value("SELECT count(*) FROM v_voice_transfer_destinations") == 2


async def test_seeds_one_default_ring_group_and_a_queue_per_secretary(fusionpbx_url: str) -> None:
    async with open_database(fusionpbx_url, PoolOptions(inline=True)) as db:
        domain = await add_domain(db)
        secretary = await add_secretary(db, domain)
        await migrate(db)
        rows = await db.fetch_all(
            "SELECT domain_uuid, secretary_uuid, name, destination_type, destination_number,"
            " is_default, is_enabled FROM v_voice_transfer_destinations ORDER BY name"
        )
        assert rows == [
            {
                "domain_uuid": domain,
                "secretary_uuid": secretary,
                "name": "Atendimento",
                "destination_type": "ring_group",
                "destination_number": "9000",
                "is_default": True,
                "is_enabled": True,
            },
            {
                "domain_uuid": domain,
                "secretary_uuid": secretary,
                "name": "Suporte",
                "destination_type": "queue",
                "destination_number": "5001",
                "is_default": False,
                "is_enabled": True,
            },
        ]


async def test_a_secretary_whose_seeds_were_removed_is_not_seeded_again(db: Database) -> None:
    domain = await add_domain(db)
    await add_secretary(db, domain)
    assert await db.fetch_value("SELECT callcontrol_seed_transfer_destinations()") == 2
    await db.execute("DELETE FROM v_voice_transfer_destinations WHERE name = 'Suporte'")
    assert await db.fetch_value("SELECT callcontrol_seed_transfer_destinations()") == 0
    assert await db.fetch_value("SELECT count(*) FROM v_voice_transfer_destinations") == 1


async def test_without_fusionpbx_tables_nothing_of_fusionpbx_is_created(bare_url: str) -> None:
    async with open_database(bare_url, PoolOptions(inline=True)) as db:
        assert await migrate(db) == ALL
        assert await db.fetch_value("SELECT to_regclass('v_voice_secretaries')::text") is None
        assert await db.fetch_value("SELECT to_regclass('v_domains')::text") is None
        assert await db.fetch_value("SELECT count(*) FROM v_voice_transfer_destinations") == 0


async def test_a_table_from_an_earlier_release_gains_the_missing_columns(bare_url: str) -> None:
    async with open_database(bare_url, PoolOptions(inline=True)) as db:
        await db.execute(
            "CREATE TABLE v_voice_transfer_destinations ("
            " transfer_destination_uuid uuid PRIMARY KEY, domain_uuid uuid NOT NULL,"
            " secretary_uuid uuid, name varchar(100) NOT NULL, destination_type varchar(20),"
            " destination_number varchar(50) NOT NULL, created_at timestamp)"
        )
        await migrate(db)
        assert await columns(db, "v_voice_transfer_destinations") >= EXPECTED_COLUMNS


async def test_two_instances_migrating_at_once_apply_each_file_once(fusionpbx_url: str) -> None:
    results: list[list[int]] = []

    async def instance() -> None:
        # Worker-thread mode: the two runs really overlap on the server.
        async with open_database(fusionpbx_url, PoolOptions(max_size=2)) as db:
            results.append(await migrate(db))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(instance)
        nursery.start_soon(instance)
    assert sorted(results) == [[], ALL]


async def test_a_failing_migration_leaves_the_database_unchanged(bare_url: str) -> None:
    broken = [
        Migration(1, "good", "CREATE TABLE callcontrol_good (id int);"),
        Migration(2, "bad", "CREATE TABLE callcontrol_bad (id int); SELECT 1/0;"),
    ]
    async with open_database(bare_url, PoolOptions(inline=True)) as db:
        with pytest.raises(Exception, match="division by zero"):
            await migrate(db, broken)
        assert await db.fetch_value("SELECT to_regclass('callcontrol_good')::text") is None
        assert (
            await db.fetch_value("SELECT to_regclass('callcontrol_schema_migrations')::text")
            is None
        )


def test_cli_migrate_applies_to_database_url(
    fusionpbx_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", fusionpbx_url)
    assert run_migrate(argparse.Namespace()) == 0
    assert run_migrate(argparse.Namespace()) == 0
    with psycopg.connect(fusionpbx_url) as conn:
        recorded = conn.execute("SELECT version FROM callcontrol_schema_migrations").fetchall()
    assert sorted(v for (v,) in recorded) == ALL


def test_cli_migrate_reports_an_unreachable_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/test")
    assert run_migrate(argparse.Namespace()) == 1


def test_fixture_schema_is_not_part_of_the_production_migrations() -> None:
    production_sql = "\n".join(m.sql for m in load_migrations())
    assert "CREATE TABLE IF NOT EXISTS v_domains" in FUSIONPBX_FIXTURE_SQL
    assert "v_domains (" not in production_sql
    assert "CREATE TABLE IF NOT EXISTS v_voice_secretaries" not in production_sql
