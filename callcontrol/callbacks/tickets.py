"""A callback request's life as a ticket: its statuses, the moves allowed between them, and
the one function that moves it (``change_status``).

Statuses: ``pending`` (waiting for its agent), ``notified`` (the agent was told), ``ready_to_call``
(the agent said "call now"), ``in_progress`` (click-to-call rings or talks), ``completed``,
``expired``, ``canceled``, ``failed``, ``needs_review`` (a person must look: too many
notifications or attempts, an unknown status). A move not in ``ALLOWED`` is refused; every move
that happens is a row in ``callcontrol_callback_history`` (written by the database's trigger,
with who and why from this transaction's settings), so an agent can see what became of a call.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from callcontrol.db.database import Connection, Database
from callcontrol.destinations.dnd import dnd_sql


class TicketStatus(enum.Enum):
    PENDING = "pending"
    NOTIFIED = "notified"
    READY_TO_CALL = "ready_to_call"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    FAILED = "failed"
    NEEDS_REVIEW = "needs_review"

    @property
    def is_open(self) -> bool:
        return self in _OPEN


S = TicketStatus
_OPEN = frozenset({S.PENDING, S.NOTIFIED, S.READY_TO_CALL, S.IN_PROGRESS, S.NEEDS_REVIEW})

ALLOWED: Mapping[TicketStatus, frozenset[TicketStatus]] = {
    # notified → notified: told again after the minimum interval
    S.PENDING: frozenset({S.NOTIFIED, S.READY_TO_CALL, S.IN_PROGRESS, S.EXPIRED, S.CANCELED,
                          S.NEEDS_REVIEW}),
    S.NOTIFIED: frozenset({S.NOTIFIED, S.PENDING, S.READY_TO_CALL, S.IN_PROGRESS, S.EXPIRED,
                           S.CANCELED, S.NEEDS_REVIEW}),
    S.READY_TO_CALL: frozenset({S.IN_PROGRESS, S.PENDING, S.EXPIRED, S.CANCELED,
                                S.NEEDS_REVIEW}),
    # a customer who did not answer: back to pending with the attempt counted
    S.IN_PROGRESS: frozenset({S.COMPLETED, S.PENDING, S.FAILED, S.NEEDS_REVIEW}),
    S.NEEDS_REVIEW: frozenset({S.PENDING, S.CANCELED, S.COMPLETED}),
    # closed: only a person reopens one, and then through review
    S.COMPLETED: frozenset(),
    S.EXPIRED: frozenset({S.NEEDS_REVIEW}),
    S.CANCELED: frozenset({S.NEEDS_REVIEW}),
    S.FAILED: frozenset({S.NEEDS_REVIEW}),
}  # fmt: skip


class TicketNotFound(LookupError):
    pass


class MoveRefused(ValueError):
    """The ticket is not in a status this move can start from (raced, or a bug)."""

    def __init__(self, request_uuid: str, current: str, wanted: TicketStatus) -> None:
        super().__init__(f"ticket {request_uuid}: {current} → {wanted.value} is not allowed")
        self.current = current
        self.wanted = wanted


@attrs.frozen
class Moved:
    request_uuid: str
    from_status: TicketStatus
    to_status: TicketStatus


def may_move(current: TicketStatus, wanted: TicketStatus) -> bool:
    return wanted in ALLOWED[current]


_LOCK = "SELECT status FROM callcontrol_callback_requests WHERE request_uuid = %s FOR UPDATE"
_MOVE = """
UPDATE callcontrol_callback_requests
   SET status = %(to)s, updated_at = now(),
       completed_at = CASE WHEN %(to)s = 'completed' THEN now() ELSE completed_at END,
       attempts = attempts + %(attempt)s,
       notification_count = notification_count + %(notified)s,
       last_notified_at = CASE WHEN %(notified)s = 1 THEN now() ELSE last_notified_at END
 WHERE request_uuid = %(uuid)s
"""


# A ticket's agent, for the queries that read tickets as ``r``: the ticket's own extension,
# else its destination's when that is an extension; the domain's name; FusionPBX's DND flag of
# that extension (boolean in 5.5, text in 5.4).
AGENT_COLUMNS = f"""coalesce(r.extension, CASE WHEN t.destination_type = 'extension'
                                  THEN t.destination_number END) AS extension,
       d.domain_name,
       {dnd_sql("e")} AS dnd"""
AGENT_JOINS = """
  LEFT JOIN v_voice_transfer_destinations t ON t.transfer_destination_uuid = r.destination_uuid
  LEFT JOIN v_domains d ON d.domain_uuid = r.domain_uuid
  LEFT JOIN v_extensions e ON e.domain_uuid = r.domain_uuid
       AND e.extension = coalesce(r.extension, t.destination_number)"""


def record_who(conn: Connection, by: str, reason: str | None = None) -> None:
    """Who (and why) for the history rows migration 005's trigger writes in this transaction;
    harmless on a database without the trigger."""
    conn.execute("SELECT set_config('callcontrol.changed_by', %s, true),"
                 " set_config('callcontrol.change_reason', %s, true)",
                 (by, reason or ""))  # fmt: skip


async def change_status(
    db: Database,
    request_uuid: str,
    to: TicketStatus,
    *,
    by: str,
    reason: str | None = None,
    attempt: bool = False,
    also: Callable[[Connection], None] | None = None,
) -> Moved:
    """Move one ticket to ``to`` in one transaction (locked, checked, recorded with ``by`` and
    ``reason``). ``attempt``: this move ends a call-back attempt, count it. ``also``: more
    writes that must commit with the move or not at all (click-to-call's attempt rows)."""

    def work(conn: Connection) -> Moved:
        moved = move(conn, request_uuid, to, by=by, reason=reason, attempt=attempt)
        if also is not None:
            also(conn)
        return moved

    return await db.transaction(work)


def move(
    conn: Connection,
    request_uuid: str,
    to: TicketStatus,
    *,
    by: str,
    reason: str | None = None,
    attempt: bool = False,
) -> Moved:
    """``change_status`` inside the caller's transaction (with what else it writes). A refused
    move raises before anything is written, so the transaction stays usable."""
    row = conn.execute(_LOCK, (request_uuid,)).fetchone()
    if row is None:
        raise TicketNotFound(request_uuid)
    current = _status_of(row)
    known = _known(current)
    if known is None or not may_move(known, to):
        raise MoveRefused(request_uuid, current, to)
    record_who(conn, by, reason)
    conn.execute(_MOVE, {"to": to.value, "uuid": request_uuid, "attempt": int(attempt),
                         "notified": int(to is S.NOTIFIED)})  # fmt: skip
    return Moved(request_uuid, known, to)


# A snoozed ticket waits as pending until its new time, whatever it was waiting as before.
SNOOZABLE = frozenset({S.PENDING, S.NOTIFIED, S.READY_TO_CALL, S.NEEDS_REVIEW})

_LOCK_SNOOZE = ("SELECT status, expires_at FROM callcontrol_callback_requests"
                " WHERE request_uuid = %s FOR UPDATE")
_SNOOZE = """
UPDATE callcontrol_callback_requests
   SET status = 'pending', scheduled_at = %(until)s, updated_at = now()
 WHERE request_uuid = %(uuid)s
"""
# pending → pending is no status change, so the trigger writes nothing: the snooze is recorded
# here, so the ticket's history still shows who put it off and why.
_SNOOZE_HISTORY = """
INSERT INTO callcontrol_callback_history (request_uuid, from_status, to_status, changed_by, reason)
VALUES (%(uuid)s, 'pending', 'pending', %(by)s, %(reason)s)
"""


class SnoozePastExpiry(ValueError):
    """The ticket would expire before the snooze ends."""

    def __init__(self, request_uuid: str, expires_at: datetime) -> None:
        super().__init__(f"ticket {request_uuid} expires at {expires_at.isoformat()}, "
                         "before the snooze would end")  # fmt: skip
        self.expires_at = expires_at


async def snooze(
    db: Database, request_uuid: str, until: datetime, *, by: str, reason: str
) -> Moved:
    """Put an open ticket off until ``until`` (status ``pending``, ``scheduled_at`` = until),
    recorded in its history with ``by`` and ``reason``. A ticket in progress or closed is
    ``MoveRefused``; one that expires first is ``SnoozePastExpiry``."""
    return await db.transaction(lambda conn: snooze_in(conn, request_uuid, until, by=by,
                                                       reason=reason))  # fmt: skip


def snooze_in(
    conn: Connection, request_uuid: str, until: datetime, *, by: str, reason: str
) -> Moved:
    """``snooze`` inside the caller's transaction; refused before anything is written."""
    row = conn.execute(_LOCK_SNOOZE, (request_uuid,)).fetchone()
    if row is None:
        raise TicketNotFound(request_uuid)
    current = _status_of(row)
    known = _known(current)
    if known not in SNOOZABLE:
        raise MoveRefused(request_uuid, current, S.PENDING)
    if row["expires_at"] is not None and row["expires_at"] <= until:
        raise SnoozePastExpiry(request_uuid, row["expires_at"])
    record_who(conn, by, reason)
    conn.execute(_SNOOZE, {"until": until, "uuid": request_uuid})
    if known is S.PENDING:
        conn.execute(_SNOOZE_HISTORY, {"uuid": request_uuid, "by": by, "reason": reason})
    return Moved(request_uuid, known, S.PENDING)


async def history(db: Database, request_uuid: str) -> list[dict[str, Any]]:
    """What happened to a ticket, oldest first."""
    return await db.fetch_all(
        "SELECT from_status, to_status, changed_by, reason, changed_at"
        " FROM callcontrol_callback_history WHERE request_uuid = %s"
        " ORDER BY changed_at, history_id",
        (request_uuid,),
    )


def _status_of(row: Any) -> str:
    value = row["status"] if isinstance(row, Mapping) else row[0]
    return str(value)


def _known(text: str) -> TicketStatus | None:
    try:
        return TicketStatus(text)
    except ValueError:
        return None
