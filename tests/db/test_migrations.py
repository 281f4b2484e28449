"""Migrations: numbered, idempotent, safe to run from two instances at once."""

from __future__ import annotations

import argparse
import uuid
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
    EVERY_PBX,
    STOCK,
    StockPBX,
    add_domain,
    add_secretary,
    add_voice_secretary_app_row,
    isolated_database_url,
    stock_schema_sql,
)

EXPECTED_COLUMNS = {
    "transfer_destination_uuid", "domain_uuid", "secretary_uuid", "name", "aliases",
    "destination_type", "destination_number", "destination_context", "ring_timeout_seconds",
    "max_retries", "retry_delay_seconds", "fallback_action", "department", "role",
    "description", "working_hours", "priority", "is_default", "is_enabled", "created_at",
    "updated_at", "gateway",
}  # fmt: skip


ALL = [m.version for m in load_migrations()]
RELEASE_0_1 = Path(__file__).parent.parent / "data" / "migrations-0.1"


@pytest.fixture
def bare_url(database_url: str) -> Iterator[str]:
    """A fresh schema with no tables at all, like a database FusionPBX never touched."""
    with isolated_database_url(database_url, fusionpbx=None, migrated=False) as url:
        yield url


@pytest.fixture
def fusionpbx_schema() -> StockPBX:
    return STOCK


@pytest.fixture
def fusionpbx_url(database_url: str, fusionpbx_schema: StockPBX) -> Iterator[str]:
    """A fresh schema with a stock FusionPBX's tables but no migration applied yet."""
    with isolated_database_url(database_url, fusionpbx=fusionpbx_schema, migrated=False) as url:
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


@pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)
async def test_first_run_creates_tables_and_second_run_applies_nothing(
    fusionpbx_url: str, fusionpbx_schema: StockPBX
) -> None:
    async with open_database(fusionpbx_url, PoolOptions(inline=True)) as db:
        other_app = await columns(db, "v_voice_secretaries")
        assert bool(other_app) is fusionpbx_schema.secretary_app
        assert await migrate(db) == ALL
        assert await migrate(db) == []
        assert await columns(db, "v_voice_transfer_destinations") == EXPECTED_COLUMNS
        assert "company_name" in await columns(db, "callcontrol_secretaries")
        # Another app's table is left exactly as it was (or absent, as on a stock PBX).
        assert await columns(db, "v_voice_secretaries") == other_app
        recorded = await db.fetch_all(
            "SELECT version, name FROM callcontrol_schema_migrations WHERE version <= 2"
            " ORDER BY version"
        )
        assert recorded == [
            {"version": 1, "name": "voice_transfer_destinations"},
            {"version": 2, "name": "voice_secretaries_transfer_fields"},
        ]


@pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)
async def test_migrate_adds_no_destination_the_domain_does_not_have(fusionpbx_url: str) -> None:
    async with open_database(fusionpbx_url, PoolOptions(inline=True)) as db:
        domain = await add_domain(db)
        await migrate(db)
        await add_secretary(db, domain)
        # Forget the record, as if the table had been lost: every file runs again, harmlessly.
        await db.execute("DELETE FROM callcontrol_schema_migrations")
        assert await migrate(db) == ALL
        assert await db.fetch_value("SELECT count(*) FROM v_voice_transfer_destinations") == 0
        assert await db.fetch_value(
            "SELECT to_regproc('callcontrol_seed_transfer_destinations')::text"
        ) is None


def release_0_1() -> list[Migration]:
    return load_migrations(RELEASE_0_1)


@pytest.mark.parametrize("fusionpbx_schema", [StockPBX("5.4.4", secretary_app=True)], ids=str)
async def test_an_install_of_release_0_1_upgrades_without_warnings_and_keeps_its_settings(
    fusionpbx_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with open_database(fusionpbx_url, PoolOptions(inline=True)) as db:
        domain = await add_domain(db)
        secretary = uuid.uuid4()
        await add_voice_secretary_app_row(db, domain, secretary, company_name="Clínica")
        assert await migrate(db, release_0_1()) == [1, 2, 3]  # 0.1 seeded two rows, added columns
        await db.execute("UPDATE v_voice_secretaries SET transfer_default_timeout = 45")
        capsys.readouterr()
        assert await migrate(db) == [v for v in ALL if v > 3]
        assert "migration_changed_after_apply" not in capsys.readouterr().out
        stored = await db.fetch_all("SELECT checksum FROM callcontrol_schema_migrations"
                                    " ORDER BY version")  # fmt: skip
        assert [row["checksum"] for row in stored] == [m.checksum for m in load_migrations()]
        settings = await db.fetch_one(
            "SELECT secretary_uuid, transfer_default_timeout FROM callcontrol_secretaries"
        )
        assert settings == {"secretary_uuid": secretary, "transfer_default_timeout": 45}
        # What 0.1 seeded stays (the admin may use it); nothing seeds again.
        assert await db.fetch_value("SELECT count(*) FROM v_voice_transfer_destinations") == 2
        assert await migrate(db) == []


async def test_a_file_changed_after_it_was_applied_is_still_warned_about(
    bare_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with open_database(bare_url, PoolOptions(inline=True)) as db:
        await migrate(db, [Migration(1, "a", "SELECT 1;")])
        capsys.readouterr()
        assert await migrate(db, [Migration(1, "a", "SELECT 2;")]) == []
        assert "migration_changed_after_apply" in capsys.readouterr().out


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


async def test_a_database_that_ran_009_before_008_existed_gets_008_and_keeps_its_tickets(
    fusionpbx_url: str,
) -> None:
    # main shipped 001-007 and 009 first: a database migrated then gets 008 on the next run
    async with open_database(fusionpbx_url, PoolOptions(inline=True)) as db:
        without_008 = [m for m in load_migrations() if m.version != 8]
        assert await migrate(db, without_008) == [v for v in ALL if v != 8]
        await db.execute("INSERT INTO callcontrol_callback_requests (kind, phone_number)"
                         " VALUES ('callback', '+5511988887777')")  # fmt: skip
        assert await migrate(db) == [8]
        assert await migrate(db) == []
        assert {"attempt", "agent_uuid", "customer_uuid", "outcome", "duration_seconds"} <= (
            await columns(db, "callcontrol_callback_attempts"))
        assert await db.fetch_value("SELECT count(*) FROM callcontrol_callback_requests") == 1


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
    fusionpbx_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", fusionpbx_url)
    assert run_migrate(argparse.Namespace()) == 0
    first = capsys.readouterr().out
    assert first.startswith(f"applied {len(ALL)} migration(s)")
    assert "  001 voice_transfer_destinations\n" in first
    assert run_migrate(argparse.Namespace()) == 0
    assert capsys.readouterr().out == (
        f"callcontrol's tables are up to date: all {len(ALL)} migrations already applied\n"
    )
    with psycopg.connect(fusionpbx_url) as conn:
        recorded = conn.execute("SELECT version FROM callcontrol_schema_migrations").fetchall()
    assert sorted(v for (v,) in recorded) == ALL


def test_cli_migrate_reports_an_unreachable_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/test")
    assert run_migrate(argparse.Namespace()) == 1
    said = capsys.readouterr().err.splitlines()[-1]
    assert said.startswith("migrate: the database did not answer: ")
    assert "Connection refused" in said


def test_fixture_schema_is_not_part_of_the_production_migrations() -> None:
    production_sql = "\n".join(m.sql for m in load_migrations())
    assert "CREATE TABLE IF NOT EXISTS v_domains" in stock_schema_sql()
    assert "v_domains (" not in production_sql
    assert "CREATE TABLE IF NOT EXISTS v_voice_secretaries" not in production_sql


@pytest.mark.parametrize(("fusionpbx_schema", "flag_type"),
                         [(StockPBX("5.5.7"), "boolean"), (StockPBX("5.4.4"), "text")],
                         ids=str)  # fmt: skip
async def test_the_test_schema_is_the_stock_fusionpbx_one(db: Database, flag_type: str) -> None:
    types = {
        row["column_name"]: row["data_type"]
        for row in await db.fetch_all(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'v_extensions'"
        )
    }
    assert types["enabled"] == types["do_not_disturb"] == flag_type
    assert {"forward_all_destination", "follow_me_enabled", "dial_string"} <= set(types)
    assert await db.fetch_value("SELECT to_regclass('v_voice_secretaries')::text") is None


async def test_every_stock_table_can_be_loaded(database_url: str) -> None:
    with isolated_database_url(database_url, fusionpbx=StockPBX(all_tables=True)) as url:
        async with open_database(url, PoolOptions(inline=True)) as db:
            count = await db.fetch_value(
                "SELECT count(*) FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_name LIKE 'v\\_%%'"
            )
    assert count == stock_schema_sql().count("CREATE TABLE") + 1  # + our destinations table
