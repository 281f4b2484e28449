"""Writing what the caller gave: a callback request or a message.

The row is committed before the AI is told "anotado". If the database is down, the request
goes to a local spool file (JSON lines, fsync'd) and the error is logged; ``drain_spool``
loads it into the database later. Either way the caller's words are kept.

Saving a request again with the same ``request_uuid`` replaces what it says (the caller
corrected the number or the time after the read-back): one call, one callback request.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import trio

from callcontrol import generated
from callcontrol.callbacks import outbox
from callcontrol.callbacks.tickets import record_who
from callcontrol.db.database import Connection, Database, DatabaseUnavailable
from callcontrol.logs import get_logger

_INSERT = """
INSERT INTO callcontrol_callback_requests
    (request_uuid, kind, call_uuid, domain_uuid, secretary_uuid, destination_uuid,
     destination_name, caller_name, phone_number, preferred_time, scheduled_at,
     time_understood, expires_at, reason, message, min_interval_minutes, notify_via_whatsapp,
     max_attempts)
VALUES (%(request_uuid)s, %(kind)s, %(call_uuid)s, %(domain_uuid)s, %(secretary_uuid)s,
        %(destination_uuid)s, %(destination_name)s, %(caller_name)s, %(phone_number)s,
        %(preferred_time)s, %(scheduled_at)s, %(time_understood)s,
        COALESCE(%(expires_at)s::timestamptz, now() + interval '24 hours'), %(reason)s,
        %(message)s, COALESCE(%(min_interval_minutes)s::integer, 10), %(notify_via_whatsapp)s,
        COALESCE(%(max_attempts)s::integer, 3))
ON CONFLICT (request_uuid) DO UPDATE SET
    caller_name = EXCLUDED.caller_name, phone_number = EXCLUDED.phone_number,
    preferred_time = EXCLUDED.preferred_time, scheduled_at = EXCLUDED.scheduled_at,
    time_understood = EXCLUDED.time_understood, reason = EXCLUDED.reason,
    message = EXCLUDED.message, notify_via_whatsapp = EXCLUDED.notify_via_whatsapp,
    updated_at = now()
RETURNING (xmax = 0) AS inserted
"""

_SPOOLED_DEFAULTS = {"scheduled_at": None, "time_understood": None, "expires_at": None,
                     "min_interval_minutes": None, "notify_via_whatsapp": False,
                     "max_attempts": None}

_log = get_logger("callcontrol.callbacks")


@attrs.frozen
class CallbackRequest:
    kind: str  # callback | message
    phone_number: str  # E.164, validated by the tool parser
    caller_name: str | None = None
    preferred_time: str | None = None  # the caller's words
    scheduled_at: datetime | None = None  # what they were understood as (aware)
    time_understood: bool | None = None
    expires_at: datetime | None = None  # None: the table's default (24 hours)
    reason: str | None = None
    message: str | None = None
    call_uuid: str | None = None
    domain_uuid: str | None = None
    secretary_uuid: str | None = None
    destination_uuid: str | None = None
    destination_name: str | None = None
    # CALLBACK_MIN_INTERVAL_MINUTES as it was for the ticket's domain when it was taken
    min_interval_minutes: int | None = None
    notify_via_whatsapp: bool = False  # the caller asked to be told on WhatsApp (a mobile)
    # click-to-call's attempts, 1 + CALLBACK_RETRY_ATTEMPTS as it was for the domain
    max_attempts: int | None = None
    request_uuid: str = attrs.field(factory=generated.uuid4_text)

    def row(self) -> dict[str, Any]:
        """The row, JSON-ready (the spool's line): ``scheduled_at`` in ISO 8601."""
        row = attrs.asdict(self)
        for key in ("scheduled_at", "expires_at"):
            if row[key] is not None:
                row[key] = row[key].isoformat()
        return row


@attrs.frozen
class Saved:
    request_uuid: str
    stored_in: str  # database | spool


def default_spool() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "callcontrol" / "spool" / "callback_requests.jsonl"


async def save_request(
    db: Database, request: CallbackRequest, *, spool: Path | None = None, helpdesk: bool = False
) -> Saved:
    """``helpdesk``: OMNIPLAY_API_URL is set, the helpdesk is told in the same transaction."""
    try:
        await _insert(db, request.row(), by="secretary", helpdesk=helpdesk)
    except DatabaseUnavailable as exc:
        target = spool or default_spool()
        _log.error("callbacks.spooled", request_uuid=request.request_uuid, error=str(exc),
                   spool=str(target))  # fmt: skip
        await trio.to_thread.run_sync(_append, target, request.row())
        return Saved(request.request_uuid, "spool")
    _log.info("callbacks.saved", request_uuid=request.request_uuid, kind=request.kind)
    return Saved(request.request_uuid, "database")


async def _insert(db: Database, row: dict[str, Any], *, by: str, helpdesk: bool) -> None:
    """The insert, with who wrote it for the ticket's history (migration 005's trigger; the
    setting is harmless on a database that does not have the trigger yet)."""

    def work(conn: Connection) -> None:
        record_who(conn, by)
        found = conn.execute(_INSERT, row).fetchone()
        if helpdesk and row["kind"] == "callback":
            # a second save of one request is the caller's correction after the read-back
            event = "callback.created" if found and found["inserted"] else "callback.updated"
            outbox.enqueue_helpdesk(conn, event, [row["request_uuid"]])

    await db.transaction(work)


def _append(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


async def drain_spool(db: Database, spool: Path | None = None, *, helpdesk: bool = False) -> int:
    """Load spooled requests into the database (idempotent); returns how many were loaded."""
    path = spool or default_spool()
    if not path.exists():
        return 0
    lines = (await trio.to_thread.run_sync(path.read_text, "utf-8")).splitlines()
    for line in lines:
        if line.strip():
            # a line spooled by an earlier release lacks the newer columns
            await _insert(db, {**_SPOOLED_DEFAULTS, **json.loads(line)}, by="spool",
                          helpdesk=helpdesk)
    await trio.to_thread.run_sync(path.unlink)
    _log.info("callbacks.spool_drained", count=len(lines))
    return len(lines)
