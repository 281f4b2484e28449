"""Real PostgreSQL for tests and the demo: an isolated, migrated schema per test.

Tests never mock the database. They use the server named by ``CALLCONTROL_TEST_DATABASE_URL``
(default: the local ``postgres@127.0.0.1:5432/test``) and, when none answers, an embedded
pgserver in a temporary directory. Each test gets its own schema, reached through the URL's
``search_path``, holding a stock FusionPBX's tables and every migration: creating one costs a
few milliseconds where ``CREATE DATABASE`` costs hundreds, and parallel runs cannot see each
other's rows.

The FusionPBX tables are FusionPBX's own: ``data/fusionpbx/schema-<version>.sql`` is generated
from the table definitions of FusionPBX 5.5.7 (boolean flags) and 5.4.4 (text flags), so a test
sees exactly the columns and types a real PBX has, and nothing a stock PBX lacks (no
``v_voice_secretaries``: that table belongs to a separate app, see :class:`StockPBX`).
Production migrations never create them: production has FusionPBX's real tables.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from callcontrol import generated
from callcontrol.db.database import Database
from callcontrol.db.migrations import apply_pending, load_migrations

# What the shipped dialplan sets voice_secretary_uuid to: "the domain's secretary".
NIL_SECRETARY = uuid.UUID(int=0)
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA_PREFIX = "cctest_"

FUSIONPBX_VERSIONS = ("5.5.7", "5.4.4")
DEFAULT_FUSIONPBX_VERSION = "5.5.7"
_SCHEMA_FILES = resources.files("callcontrol.testing") / "data" / "fusionpbx"

# The stock tables a test schema gets by default: every FusionPBX table callcontrol, its doctor
# and its installers read, copied verbatim from the stock schema. Loading all 116 tables costs
# ~150 ms per test (catalog writes), these ~20 ms; ``StockPBX(all_tables=True)`` loads them all.
READ_TABLES = frozenset({
    "v_domains", "v_domain_settings", "v_default_settings", "v_software", "v_users",
    "v_user_groups", "v_groups", "v_extensions", "v_extension_users", "v_voicemails",
    "v_ring_groups", "v_ring_group_destinations", "v_call_center_queues", "v_call_center_agents",
    "v_call_center_tiers", "v_follow_me", "v_follow_me_destinations", "v_dialplans",
    "v_dialplan_details", "v_destinations", "v_music_on_hold", "v_gateways", "v_xml_cdr",
})  # fmt: skip

_CREATE_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+) \(")


@attrs.frozen
class StockPBX:
    """What a test database holds before callcontrol's migrations run: the stock tables of one
    FusionPBX release and, with ``secretary_app``, the table of the separately installed
    voice-secretary app (``v_voice_secretaries``: NOT part of FusionPBX, absent from a stock
    PBX; only for the "that other app is installed too" case)."""

    version: str = DEFAULT_FUSIONPBX_VERSION
    secretary_app: bool = False
    all_tables: bool = False

    def __attrs_post_init__(self) -> None:
        if self.version not in FUSIONPBX_VERSIONS:
            raise ValueError(f"no stock schema for FusionPBX {self.version}")

    @property
    def text_flags(self) -> bool:
        """FusionPBX up to 5.4 stores enabled/do_not_disturb/... as text 'true'/'false'."""
        return self.version < "5.5"

    def __str__(self) -> str:
        return f"fusionpbx-{self.version}" + ("+secretary-app" if self.secretary_app else "")

    def sql(self) -> str:
        tables = stock_tables(self.version)
        chosen = [ddl for name, ddl in tables.items() if self.all_tables or name in READ_TABLES]
        if self.secretary_app:
            chosen.append(voice_secretary_app_sql(text_flags=self.text_flags))
        return ";\n".join(chosen) + ";\n"


STOCK = StockPBX()
# Every shape of database a call flow must work on: 5.5 (boolean flags), 5.4 (text flags),
# each with and without the other app's v_voice_secretaries.
EVERY_PBX = (
    StockPBX("5.5.7"), StockPBX("5.4.4"),
    StockPBX("5.5.7", secretary_app=True), StockPBX("5.4.4", secretary_app=True),
)  # fmt: skip


@functools.cache
def stock_schema_sql(version: str = DEFAULT_FUSIONPBX_VERSION) -> str:
    """The whole stock schema of FusionPBX ``version`` (generated from its app_config.php)."""
    return (_SCHEMA_FILES / f"schema-{version}.sql").read_text(encoding="utf-8")


@functools.cache
def stock_tables(version: str = DEFAULT_FUSIONPBX_VERSION) -> dict[str, str]:
    """Table name → its CREATE TABLE statement, as in the stock schema."""
    found: dict[str, str] = {}
    for statement in stock_schema_sql(version).split(";\n"):
        match = _CREATE_TABLE.search(statement)
        if match is not None:
            found[match[1]] = statement[match.start() :]
    return found


def voice_secretary_app_sql(*, text_flags: bool = False) -> str:
    """The OTHER app's table (the separate FusionPBX voice-secretary app), for tests of a PBX
    that has it installed besides callcontrol. Its flag follows the FusionPBX release's type."""
    flag = "text" if text_flags else "boolean"
    return f"""CREATE TABLE IF NOT EXISTS v_voice_secretaries (
    voice_secretary_uuid uuid PRIMARY KEY,
    domain_uuid uuid,
    secretary_name text,
    company_name text,
    personality_prompt text,
    extension text,
    enabled {flag},
    insert_date timestamptz,
    update_date timestamptz
)"""


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


def create_schema(
    server_url: str, *, fusionpbx: StockPBX | None = STOCK, migrated: bool = True
) -> str:
    """Create a fresh schema (with a stock FusionPBX's tables, then the migrations applied,
    unless told otherwise: ``fusionpbx=None`` for a database FusionPBX never touched); returns
    its name."""
    schema = new_schema_name()
    with psycopg.connect(server_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        with conn.transaction():
            if fusionpbx is not None:
                conn.execute(fusionpbx.sql().encode())
            if migrated:
                apply_pending(conn, load_migrations())
    return schema


def drop_schema(server_url: str, schema: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextlib.contextmanager
def isolated_database_url(
    server_url: str, *, fusionpbx: StockPBX | None = STOCK, migrated: bool = True
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


async def add_domain(db: Database, name: str = "example.com", *, enabled: bool = True) -> uuid.UUID:
    domain_uuid = generated.uuid4()
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
    description: str | None = None,
    forward_all: str | None = None,
    follow_me: bool = False,
) -> uuid.UUID:
    """Insert an extension; flags are written as text literals so the same call works whether
    the columns are boolean (5.5) or text (5.4). ``forward_all`` turns FusionPBX's forward-all
    on to that destination."""
    extension_uuid = generated.uuid4()
    await db.execute(
        "INSERT INTO v_extensions (extension_uuid, domain_uuid, extension,"
        " effective_caller_id_name, user_context, dial_string, do_not_disturb, enabled,"
        " description, forward_all_enabled, forward_all_destination, follow_me_enabled,"
        " insert_date)"
        " SELECT %s, %s, %s, %s, d.domain_name, %s, %s, %s, %s, %s, %s, %s, now()"
        " FROM v_domains d WHERE d.domain_uuid = %s",
        (
            extension_uuid,
            domain_uuid,
            extension,
            name,
            dial_string,
            _flag(do_not_disturb),
            _flag(enabled),
            description,
            _flag(forward_all is not None),
            forward_all,
            _flag(follow_me),
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


async def set_secretary(
    db: Database,
    domain_uuid: uuid.UUID,
    secretary_uuid: uuid.UUID | None = None,
    **settings: Any,
) -> uuid.UUID | None:
    """Write callcontrol's own settings row (``callcontrol_secretaries``) for the domain's
    secretary (``secretary_uuid`` None) or for one secretary; returns ``secretary_uuid``."""
    values: dict[str, Any] = {"domain_uuid": domain_uuid, "secretary_uuid": secretary_uuid,
                              **settings}  # fmt: skip
    query = sql.SQL("INSERT INTO callcontrol_secretaries ({}) VALUES ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    await db.execute(query, tuple(values.values()))
    return secretary_uuid


async def voice_secretary_app_installed(db: Database) -> bool:
    return bool(await db.fetch_value("SELECT to_regclass('v_voice_secretaries') IS NOT NULL"))


async def add_secretary(
    db: Database,
    domain_uuid: uuid.UUID,
    name: str = "Secretária virtual",
    *,
    company_name: str | None = None,
    enabled: bool = True,
) -> uuid.UUID:
    """A secretary the dialplan can name with ``voice_secretary_uuid``, as each kind of PBX has
    it: a callcontrol row holding ``company_name`` and, where the other voice-secretary app is
    installed (``StockPBX(secretary_app=True)``), that app's row too, with the company name
    there instead (so a test shows callcontrol reading it)."""
    secretary_uuid = generated.uuid4()
    if await voice_secretary_app_installed(db):
        await add_voice_secretary_app_row(db, domain_uuid, secretary_uuid, name,
                                          company_name=company_name,
                                          enabled=enabled)  # fmt: skip
        await set_secretary(db, domain_uuid, secretary_uuid)
    else:
        await set_secretary(db, domain_uuid, secretary_uuid, company_name=company_name)
    return secretary_uuid


async def add_voice_secretary_app_row(
    db: Database,
    domain_uuid: uuid.UUID,
    secretary_uuid: uuid.UUID,
    name: str = "Secretária virtual",
    *,
    company_name: str | None = None,
    personality_prompt: str | None = None,
    enabled: bool = True,
) -> None:
    """A row of the OTHER app's ``v_voice_secretaries`` (only on ``secretary_app`` schemas)."""
    await db.execute(
        "INSERT INTO v_voice_secretaries (voice_secretary_uuid, domain_uuid, secretary_name,"
        " company_name, personality_prompt, enabled, insert_date)"
        " VALUES (%s, %s, %s, %s, %s, %s, now())",
        (secretary_uuid, domain_uuid, name, company_name, personality_prompt, _flag(enabled)),
    )


async def add_voicemail(
    db: Database, domain_uuid: uuid.UUID, voicemail_id: str, *, enabled: bool = True
) -> uuid.UUID:
    """A voicemail box (``v_voicemails``) as FusionPBX creates one for an extension."""
    voicemail_uuid = generated.uuid4()
    await db.execute(
        "INSERT INTO v_voicemails (domain_uuid, voicemail_uuid, voicemail_id, voicemail_enabled,"
        " insert_date) VALUES (%s, %s, %s, %s, now())",
        (domain_uuid, voicemail_uuid, voicemail_id, _flag(enabled)),
    )
    return voicemail_uuid


async def add_ring_group(
    db: Database,
    domain_uuid: uuid.UUID,
    extension: str,
    name: str,
    *,
    description: str | None = None,
    enabled: bool = True,
) -> uuid.UUID:
    ring_group_uuid = generated.uuid4()
    await db.execute(
        "INSERT INTO v_ring_groups (domain_uuid, ring_group_uuid, ring_group_name,"
        " ring_group_extension, ring_group_context, ring_group_enabled, ring_group_description,"
        " insert_date)"
        " SELECT %s, %s, %s, %s, d.domain_name, %s, %s, now()"
        " FROM v_domains d WHERE d.domain_uuid = %s",
        (domain_uuid, ring_group_uuid, name, extension, _flag(enabled), description, domain_uuid),
    )
    return ring_group_uuid


async def add_queue(
    db: Database,
    domain_uuid: uuid.UUID,
    extension: str,
    name: str,
    *,
    description: str | None = None,
) -> uuid.UUID:
    """A call-center queue (``v_call_center_queues``; FusionPBX has no enabled flag on them)."""
    queue_uuid = generated.uuid4()
    await db.execute(
        "INSERT INTO v_call_center_queues (call_center_queue_uuid, domain_uuid, queue_name,"
        " queue_extension, queue_context, queue_description, insert_date)"
        " SELECT %s, %s, %s, %s, d.domain_name, %s, now()"
        " FROM v_domains d WHERE d.domain_uuid = %s",
        (queue_uuid, domain_uuid, name, extension, description, domain_uuid),
    )
    return queue_uuid


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
    destination_uuid = generated.uuid4()
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


async def add_dialplan(
    db: Database,
    domain_uuid: uuid.UUID | None,
    name: str,
    number: str,
    socket_data: str,
    *,
    enabled: bool = True,
    details: bool = True,
    xml: bool = True,
) -> uuid.UUID:
    """A Dialplan Manager entry whose action is ``socket <socket_data>``, as FusionPBX stores
    one: a ``v_dialplans`` row (with its ``dialplan_xml`` unless ``xml`` is False) and, unless
    ``details`` is False, its condition and action rows in ``v_dialplan_details``."""
    dialplan_uuid = generated.uuid4()
    body = (f'<extension name="{name}" continue="false" uuid="{dialplan_uuid}">\n'
            f'  <condition field="destination_number" expression="^{number}$">\n'
            f'    <action application="socket" data="{socket_data}"/>\n'
            "  </condition>\n</extension>\n")  # fmt: skip
    await db.execute(
        "INSERT INTO v_dialplans (domain_uuid, dialplan_uuid, dialplan_context, dialplan_name,"
        " dialplan_number, dialplan_continue, dialplan_xml, dialplan_order, dialplan_enabled,"
        " insert_date)"
        " SELECT %s, %s, coalesce((SELECT domain_name FROM v_domains WHERE domain_uuid = %s),"
        " 'public'), %s, %s, 'false', %s, 300, %s, now()",
        (domain_uuid, dialplan_uuid, domain_uuid, name, number, body if xml else None,
         _flag(enabled)),
    )  # fmt: skip
    if details:
        rows = [("condition", "destination_number", f"^{number}$", 0),
                ("action", "socket", socket_data, 10)]  # fmt: skip
        for tag, kind, data, order in rows:
            await db.execute(
                "INSERT INTO v_dialplan_details (domain_uuid, dialplan_uuid, dialplan_detail_uuid,"
                " dialplan_detail_tag, dialplan_detail_type, dialplan_detail_data,"
                " dialplan_detail_group, dialplan_detail_order, dialplan_detail_enabled)"
                " VALUES (%s, %s, %s, %s, %s, %s, 0, %s, true)",
                (domain_uuid, dialplan_uuid, generated.uuid4(), tag, kind, data, order),
            )
    return dialplan_uuid


async def add_default_setting(
    db: Database, category: str, subcategory: str, value: str, *, enabled: bool = True
) -> uuid.UUID:
    """A FusionPBX Default Setting (Advanced > Default Settings), e.g. ``cache`` ``method``."""
    setting_uuid = generated.uuid4()
    await db.execute(
        "INSERT INTO v_default_settings (default_setting_uuid, default_setting_category,"
        " default_setting_subcategory, default_setting_name, default_setting_value,"
        " default_setting_enabled, insert_date) VALUES (%s, %s, %s, 'text', %s, %s, now())",
        (setting_uuid, category, subcategory, value, _flag(enabled)),
    )
    return setting_uuid


def _flag(value: bool | None) -> str | None:
    # An untyped text literal is accepted by both a boolean and a text column.
    return None if value is None else ("true" if value else "false")
