"""Real PostgreSQL for tests and the demo: an isolated, migrated schema per test.

Tests never mock the database. They use the server named by ``CALLCONTROL_TEST_DATABASE_URL``
(default: the local ``postgres@127.0.0.1:5432/test``) and, when none answers, an embedded
pgserver in a temporary directory. Each test gets its own schema, reached through the URL's
``search_path``, holding the FusionPBX fixture tables and every migration: creating one costs a
few milliseconds where ``CREATE DATABASE`` costs hundreds, and parallel runs cannot see each
other's rows.

The FusionPBX fixture schema is the minimum of the FusionPBX tables callcontrol reads, with
FusionPBX's own conventions (no defaults, no NOT NULL, no foreign keys). Production migrations
never create it: production has FusionPBX's real tables.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, LiteralString
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from callcontrol.db.database import Database
from callcontrol.db.migrations import apply_pending, load_migrations

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA_PREFIX = "cctest_"

FUSIONPBX_FIXTURE_SQL: LiteralString = """
CREATE TABLE IF NOT EXISTS v_domains (
    domain_uuid uuid PRIMARY KEY,
    domain_parent_uuid uuid,
    domain_name text,
    domain_enabled boolean,
    domain_description text,
    insert_date timestamptz,
    update_date timestamptz
);
CREATE TABLE IF NOT EXISTS v_extensions (
    extension_uuid uuid PRIMARY KEY,
    domain_uuid uuid,
    extension text,
    number_alias text,
    effective_caller_id_name text,
    effective_caller_id_number text,
    user_context text,
    dial_string text,
    do_not_disturb boolean,
    forward_all_enabled boolean,
    enabled boolean,
    description text,
    insert_date timestamptz,
    update_date timestamptz
);
CREATE TABLE IF NOT EXISTS v_voice_secretaries (
    voice_secretary_uuid uuid PRIMARY KEY,
    domain_uuid uuid,
    secretary_name text,
    company_name text,
    extension text,
    enabled boolean,
    insert_date timestamptz,
    update_date timestamptz
);
"""

# FusionPBX up to 5.4 kept these flags as text 'true'/'false'; 5.5 made them boolean.
TEXT_BOOLEANS_SQL: LiteralString = """
ALTER TABLE v_extensions
    ALTER COLUMN do_not_disturb TYPE text USING do_not_disturb::text,
    ALTER COLUMN forward_all_enabled TYPE text USING forward_all_enabled::text,
    ALTER COLUMN enabled TYPE text USING enabled::text
"""


def server_answers(url: str, timeout: int = 2) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=timeout):
            return True
    except psycopg.OperationalError:
        return False


@contextlib.contextmanager
def server_url_for_tests() -> Iterator[str]:
    """A PostgreSQL server for tests: the configured one, else a throw-away embedded one."""
    url = os.environ.get("CALLCONTROL_TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL
    if server_answers(url):
        prune_abandoned_schemas(url)
        yield url
        return
    from callcontrol.db.embedded import start_embedded  # noqa: PLC0415 - only when needed

    with tempfile.TemporaryDirectory(prefix="callcontrol-pg-") as tmp:
        yield start_embedded(Path(tmp) / "pg", cleanup="delete")


def with_search_path(url: str, schema: str) -> str:
    """``url`` with its connections' search_path set to ``schema`` (libpq ``options``)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def new_schema_name() -> str:
    return f"{SCHEMA_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"


def create_schema(server_url: str, *, fusionpbx: bool = True, migrated: bool = True) -> str:
    """Create a fresh schema (with the FusionPBX fixture tables, then the migrations applied,
    unless told otherwise); returns its name."""
    schema = new_schema_name()
    with psycopg.connect(server_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        with conn.transaction():
            if fusionpbx:
                conn.execute(FUSIONPBX_FIXTURE_SQL)
            if migrated:
                apply_pending(conn, load_migrations())
    return schema


def drop_schema(server_url: str, schema: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextlib.contextmanager
def isolated_database_url(
    server_url: str, *, fusionpbx: bool = True, migrated: bool = True
) -> Iterator[str]:
    """A URL whose connections see only a fresh schema, dropped afterwards."""
    schema = create_schema(server_url, fusionpbx=fusionpbx, migrated=migrated)
    try:
        yield with_search_path(server_url, schema)
    finally:
        drop_schema(server_url, schema)


def prune_abandoned_schemas(server_url: str) -> None:
    """Drop test schemas left by processes that died before their teardown ran."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                (SCHEMA_PREFIX.replace("_", r"\_") + "%",),
            )
        ]
        for name in names:
            pid = name.removeprefix(SCHEMA_PREFIX).partition("_")[0]
            if pid.isdigit() and not _process_alive(int(pid)):
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- FusionPBX rows for tests and the demo -------------------------------------------------


async def use_text_booleans(db: Database) -> None:
    """Make v_extensions look like FusionPBX 5.4 (boolean flags stored as text)."""
    await db.execute(TEXT_BOOLEANS_SQL)


async def add_domain(db: Database, name: str = "example.com", *, enabled: bool = True) -> uuid.UUID:
    domain_uuid = uuid.uuid4()
    await db.execute(
        "INSERT INTO v_domains (domain_uuid, domain_name, domain_enabled, insert_date)"
        " VALUES (%s, %s, %s, now())",
        (domain_uuid, name, enabled),
    )
    return domain_uuid


async def add_extension(
    db: Database,
    domain_uuid: uuid.UUID,
    extension: str,
    *,
    do_not_disturb: bool | None = False,
    enabled: bool = True,
    name: str | None = None,
    dial_string: str | None = None,
) -> uuid.UUID:
    """Insert an extension; flags are written as text literals so the same call works whether
    the columns are boolean (5.5) or text (5.4, after :func:`use_text_booleans`)."""
    extension_uuid = uuid.uuid4()
    await db.execute(
        "INSERT INTO v_extensions (extension_uuid, domain_uuid, extension,"
        " effective_caller_id_name, user_context, dial_string, do_not_disturb, enabled,"
        " insert_date)"
        " SELECT %s, %s, %s, %s, d.domain_name, %s, %s, %s, now()"
        " FROM v_domains d WHERE d.domain_uuid = %s",
        (
            extension_uuid,
            domain_uuid,
            extension,
            name,
            dial_string,
            _flag(do_not_disturb),
            _flag(enabled),
            domain_uuid,
        ),
    )
    return extension_uuid


async def set_do_not_disturb(
    db: Database, domain_uuid: uuid.UUID, extension: str, on: bool | None
) -> None:
    await db.execute(
        "UPDATE v_extensions SET do_not_disturb = %s WHERE domain_uuid = %s AND extension = %s",
        (_flag(on), domain_uuid, extension),
    )


async def add_secretary(
    db: Database, domain_uuid: uuid.UUID, name: str = "Secretária virtual"
) -> uuid.UUID:
    secretary_uuid = uuid.uuid4()
    await db.execute(
        "INSERT INTO v_voice_secretaries (voice_secretary_uuid, domain_uuid, secretary_name,"
        " enabled, insert_date) VALUES (%s, %s, %s, true, now())",
        (secretary_uuid, domain_uuid, name),
    )
    return secretary_uuid


async def seed_transfer_destinations(db: Database) -> int:
    """Give every secretary without destinations the seed rows; returns how many were added."""
    return int(await db.fetch_value("SELECT callcontrol_seed_transfer_destinations()"))


async def add_destination(
    db: Database,
    domain_uuid: uuid.UUID,
    name: str,
    destination_type: str = "extension",
    destination_number: str = "1001",
    *,
    secretary_uuid: uuid.UUID | None = None,
    **columns: Any,
) -> uuid.UUID:
    """Insert a v_voice_transfer_destinations row; ``columns`` sets any other column
    (``aliases`` and ``working_hours`` as Python lists/dicts)."""
    destination_uuid = uuid.uuid4()
    values: dict[str, Any] = {
        "transfer_destination_uuid": destination_uuid,
        "domain_uuid": domain_uuid,
        "secretary_uuid": secretary_uuid,
        "name": name,
        "destination_type": destination_type,
        "destination_number": destination_number,
        **columns,
    }
    for key in ("aliases", "working_hours"):
        if key in values and values[key] is not None:
            values[key] = Jsonb(values[key])
    query = sql.SQL("INSERT INTO v_voice_transfer_destinations ({}) VALUES ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    await db.execute(query, tuple(values.values()))
    return destination_uuid


def _flag(value: bool | None) -> str | None:
    # An untyped text literal is accepted by both a boolean and a text column.
    return None if value is None else ("true" if value else "false")
