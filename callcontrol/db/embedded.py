"""The embedded PostgreSQL used when ``DATABASE_URL`` is unset (demo, tests, a fresh machine).

pgserver ships PostgreSQL binaries in a wheel and runs one server per data directory, shared by
every process that asks for the same directory and stopped when the last one exits.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
import psycopg

from callcontrol.logs import get_logger

_log = get_logger("callcontrol.db.embedded")

DATABASE_NAME = "callcontrol"


def default_data_dir() -> Path:
    """The user's data dir (``~/.local/share/callcontrol/pg`` on Linux)."""
    return Path(platformdirs.user_data_dir("callcontrol")) / "pg"


def start_embedded(data_dir: Path | None = None, *, cleanup: str | None = "stop") -> str:
    """Start (or join) the embedded server in ``data_dir``; returns the URI of its
    ``callcontrol`` database, created on first use. Blocking: call it from a worker thread."""
    # Imported here: importing pgserver creates lock files, which only this path should do.
    from pgserver.postgres_server import get_server  # noqa: PLC0415

    data_dir = data_dir or default_data_dir()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode=cleanup)
    admin_url: str = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
        ).fetchone()
        if exists is None:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')  # constant name, not input
    url: str = server.get_uri(DATABASE_NAME)
    _log.info("db.embedded_started", data_dir=str(data_dir))
    return url
