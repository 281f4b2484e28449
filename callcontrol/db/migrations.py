"""Numbered SQL migrations from ``sql/`` (``NNN_name.sql``), applied by ``callcontrol migrate``.

Every file is written to be idempotent on its own; the ``callcontrol_schema_migrations`` table
only saves re-running them and records what ran when. A file already applied in the field is
only ever edited to do less (a superseded step); it then lists the checksum of its earlier text
(``-- replaces checksum <sha256>``), so a database that ran that text is recorded as up to date
with the new one instead of warned about. All pending files run in one transaction
under an advisory lock keyed by the current schema, so several instances starting at once
apply each file exactly once and a failing file leaves the database as it was.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

import attrs
import psycopg
import trio

from callcontrol.config import load_settings
from callcontrol.db import open_database
from callcontrol.db.database import Connection, Database, DatabaseUnavailable
from callcontrol.logs import configure_logging, get_logger

_log = get_logger("callcontrol.db.migrations")

_FILE_NAME = re.compile(r"^(?P<version>\d{3,})_(?P<name>[a-z0-9_]+)\.sql$")
_REPLACES = re.compile(r"^-- replaces checksum ([0-9a-f]{64})\s*$", re.MULTILINE)
_REPO_SQL_DIR = Path(__file__).resolve().parents[2] / "sql"

_CREATE_TABLE = b"""
CREATE TABLE IF NOT EXISTS callcontrol_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """The migration files themselves are wrong (duplicate versions, unreadable directory)."""


@attrs.frozen
class Migration:
    version: int
    name: str
    sql: str = attrs.field(repr=False)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def replaces(self) -> frozenset[str]:
        """Checksums of earlier texts of this file that a database may have applied."""
        return frozenset(_REPLACES.findall(self.sql))


def sql_directory() -> Traversable:
    """Where the migration files are: inside the installed package (``callcontrol/sql``, a
    symlink to the top-level ``sql/`` in a checkout), else the checkout's ``sql/``."""
    packaged = resources.files("callcontrol") / "sql"
    if packaged.is_dir():
        return packaged
    if _REPO_SQL_DIR.is_dir():
        return _REPO_SQL_DIR
    raise MigrationError("no sql/ directory in the callcontrol package or its checkout")


def load_migrations(directory: Traversable | None = None) -> list[Migration]:
    """The migration files in version order; other files are ignored."""
    directory = directory or sql_directory()
    found: dict[int, Migration] = {}
    for entry in directory.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        migration = Migration(
            int(match["version"]), match["name"], entry.read_text(encoding="utf-8")
        )
        if migration.version in found:
            raise MigrationError(
                f"two migrations with version {migration.version}: "
                f"{found[migration.version].name} and {migration.name}"
            )
        found[migration.version] = migration
    return [found[v] for v in sorted(found)]


async def migrate(db: Database, migrations: list[Migration] | None = None) -> list[int]:
    """Apply the pending migrations; returns the versions applied by this call."""
    pending = load_migrations() if migrations is None else migrations
    applied = await db.transaction(lambda conn: apply_pending(conn, pending))
    _log.info("db.migrated", applied=applied, known=[m.version for m in pending])
    return applied


def apply_pending(conn: Connection, migrations: list[Migration]) -> list[int]:
    """The body of :func:`migrate` for a sync connection already inside a transaction."""
    # Two-key advisory lock: one migration run per schema at a time, other schemas unaffected.
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('callcontrol.migrate'), hashtext(current_schema()))"
    )
    conn.execute(_CREATE_TABLE)
    done = {
        row["version"]: row["checksum"]
        for row in conn.execute("SELECT version, checksum FROM callcontrol_schema_migrations")
    }
    applied: list[int] = []
    for migration in migrations:
        if migration.version in done:
            if done[migration.version] in migration.replaces:
                conn.execute(
                    "UPDATE callcontrol_schema_migrations SET checksum = %s WHERE version = %s",
                    (migration.checksum, migration.version),
                )
                _log.info(
                    "db.migration_superseded_text",
                    version=migration.version,
                    name=migration.name,
                )
            elif done[migration.version] != migration.checksum:
                _log.warning(
                    "db.migration_changed_after_apply",
                    version=migration.version,
                    name=migration.name,
                )
            continue
        conn.execute(migration.sql.encode())
        conn.execute(
            "INSERT INTO callcontrol_schema_migrations (version, name, checksum)"
            " VALUES (%s, %s, %s)",
            (migration.version, migration.name, migration.checksum),
        )
        _log.info("db.migration_applied", version=migration.version, name=migration.name)
        applied.append(migration.version)
    return applied


def run_migrate(args: argparse.Namespace) -> int:
    """``callcontrol migrate``: apply the migrations to ``DATABASE_URL`` (or the embedded db)."""
    settings = load_settings()
    configure_logging(settings.log_format)
    try:
        applied = trio.run(_migrate_url, settings.database_url)
    except DatabaseUnavailable as exc:
        _log.error("db.migrate_failed", error=str(exc))
        print(f"migrate: the database did not answer: {' '.join(str(exc).split())}",
              file=sys.stderr)  # fmt: skip
        return 1
    except psycopg.Error as exc:
        _log.error("db.migrate_failed", error=str(exc).strip(), sqlstate=exc.sqlstate)
        print(f"migrate: nothing was changed, the database refused: {' '.join(str(exc).split())}",
              file=sys.stderr)  # fmt: skip
        return 1
    _log.info("db.migrate_done", applied=applied)
    print(migrate_summary(applied, load_migrations()))
    return 0


def migrate_summary(applied: list[int], known: list[Migration]) -> str:
    """What ``callcontrol migrate`` did, for the admin at the terminal (the logs are JSON)."""
    if not applied:
        return f"callcontrol's tables are up to date: all {len(known)} migrations already applied"
    names = {m.version: m.name for m in known}
    lines = [f"applied {len(applied)} migration(s); callcontrol's tables are up to date:"]
    lines += [f"  {v:03d} {names.get(v, '')}".rstrip() for v in applied]
    return "\n".join(lines)


async def _migrate_url(url: str | None) -> list[int]:
    async with open_database(url) as db:
        return await migrate(db)
