"""The outbox (migration 007): rows written with the ticket change that causes them, claimed
by one deliverer, retried until delivered, never dropped.

Writing: ``enqueue_helpdesk`` runs INSIDE the caller's transaction (the scanner's notification,
the capture of a request), so the helpdesk hears of a change exactly when the change is
committed. The payload is the OmniPlay ``POST /api/voice/callback`` body, built by the database
from the ticket as it is at that moment.

Delivering (sans-HTTP here, see ``helpdesk``): ``claim`` takes due rows with ``FOR UPDATE SKIP
LOCKED`` and marks them ``sending`` under a lease, so several ``serve`` instances never send one
row twice; an instance killed mid-send leaves a lease that runs out, and the row is sent again
(same idempotency key: the receiver sees one delivery). ``delivered`` / ``failed`` record the
outcome; ``backlog`` is what is waiting and for how long.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import attrs

from callcontrol.db.database import Connection, Database

HELPDESK = "helpdesk_webhook"
WHATSAPP = "whatsapp"  # whatsapp_delivery
# after this many tries without a 2xx a row is ``failing`` (still retried, and shown as such)
FAILING_AFTER_ATTEMPTS = 3
LEASE_SECONDS = 120.0  # longer than one send can take (the HTTP timeout): a live claim holds

# The agent's extension as the scanner finds it: the ticket's own, else its destination's.
_ENQUEUE_HELPDESK = """
INSERT INTO callcontrol_outbox (kind, event, request_uuid, payload, next_attempt_at)
SELECT 'helpdesk_webhook', %(event)s::text, r.request_uuid, jsonb_build_object(
        'event', %(event)s::text,
        'ticketUuid', r.request_uuid,
        'status', r.status,
        'callUuid', r.call_uuid,
        'callerNumber', r.phone_number,
        'callerName', r.caller_name,
        'destinationExtension', coalesce(r.extension, CASE WHEN t.destination_type = 'extension'
                                                      THEN t.destination_number END),
        'destinationName', coalesce(r.destination_name, t.name),
        'destinationDepartment', coalesce(r.department, t.department),
        'reason', r.reason,
        'scheduledAt', r.scheduled_at,
        'notifyViaWhatsApp', r.notify_via_whatsapp,
        'transcript', r.transcript,
        'summary', r.summary,
        'durationSeconds', r.call_duration_seconds,
        'secretaryUuid', r.secretary_uuid,
        'domainUuid', r.domain_uuid),
       coalesce(%(now)s::timestamptz, now())
  FROM callcontrol_callback_requests r
  LEFT JOIN v_voice_transfer_destinations t ON t.transfer_destination_uuid = r.destination_uuid
 WHERE r.request_uuid = ANY(%(uuids)s::uuid[]) AND r.kind = 'callback'
RETURNING outbox_id
"""

_CLAIM = """
UPDATE callcontrol_outbox o
   SET status = 'sending', attempts = o.attempts + 1, last_attempt_at = %(now)s,
       lease_until = %(now)s + make_interval(secs => %(lease)s)
 WHERE o.outbox_id IN (
        SELECT outbox_id FROM callcontrol_outbox
         WHERE kind = %(kind)s AND status <> 'delivered'
           AND ((status IN ('pending', 'failing') AND next_attempt_at <= %(now)s)
                OR (status = 'sending' AND lease_until <= %(now)s))
         ORDER BY next_attempt_at, outbox_id
         LIMIT %(limit)s
           FOR UPDATE SKIP LOCKED)
RETURNING o.outbox_id, o.idempotency_key::text AS idempotency_key, o.event, o.payload,
          o.attempts, o.request_uuid::text AS request_uuid, o.last_error
"""

# Only the holder of the lease records the outcome (a row whose lease ran out and was claimed
# again by another instance belongs to that one now).
_DELIVERED = """
UPDATE callcontrol_outbox
   SET status = 'delivered', delivered_at = %(now)s, response_status = %(http)s,
       lease_until = NULL, last_error = NULL, external_id = %(external_id)s
 WHERE outbox_id = %(id)s AND status = 'sending' AND attempts = %(attempts)s
"""

_FAILED = """
UPDATE callcontrol_outbox
   SET status = %(status)s, next_attempt_at = %(next)s, response_status = %(http)s,
       last_error = %(error)s, lease_until = NULL
 WHERE outbox_id = %(id)s AND status = 'sending' AND attempts = %(attempts)s
"""

_BACKLOG = """
SELECT count(*) AS rows, min(created_at) AS oldest,
       count(*) FILTER (WHERE status = 'failing') AS failing
  FROM callcontrol_outbox WHERE kind = %(kind)s AND status NOT IN ('delivered', 'failed')
"""


@attrs.frozen
class Claimed:
    outbox_id: int
    idempotency_key: str
    event: str
    payload: dict[str, Any]
    attempts: int  # this try included
    request_uuid: str | None
    last_error: str | None = None  # the previous try's, if any


@attrs.frozen
class Backlog:
    rows: int
    failing: int
    oldest_age_seconds: float


def enqueue_helpdesk(
    conn: Connection, event: str, request_uuids: list[str], now: datetime | None = None
) -> int:
    """Inside the caller's transaction: one helpdesk row per callback ticket; how many."""
    if not request_uuids:
        return 0
    rows = conn.execute(_ENQUEUE_HELPDESK, {"event": event, "uuids": request_uuids, "now": now})
    return len(rows.fetchall())


async def claim(
    db: Database, now: datetime, *, kind: str = HELPDESK, limit: int = 20,
    lease: float = LEASE_SECONDS,
) -> list[Claimed]:  # fmt: skip
    def work(conn: Connection) -> list[Claimed]:
        params = {"now": now, "kind": kind, "limit": limit, "lease": lease}
        return [Claimed(**row) for row in conn.execute(_CLAIM, params).fetchall()]

    return await db.transaction(work)


async def delivered(
    db: Database,
    row: Claimed,
    now: datetime,
    http_status: int,
    *,
    external_id: str | None = None,
    also: Callable[[Connection], object] | None = None,
) -> bool:
    """Record the delivery (with the receiver's ``external_id`` for it) and, in the same
    transaction, ``also`` (what the delivery changes elsewhere); False when the lease was lost."""

    def work(conn: Connection) -> bool:
        done = conn.execute(_DELIVERED, {"id": row.outbox_id, "attempts": row.attempts,
                                         "now": now, "http": http_status,
                                         "external_id": external_id}).rowcount  # fmt: skip
        if done and also is not None:
            also(conn)
        return bool(done)

    return await db.transaction(work)


async def failed(
    db: Database,
    row: Claimed,
    retry_at: datetime,
    error: str,
    http_status: int | None,
    *,
    permanent: bool = False,
    also: Callable[[Connection], object] | None = None,
) -> str:
    """Back to the queue for ``retry_at``; the status it now has (pending or failing). A
    ``permanent`` failure is ``failed``, never tried again; ``also`` runs in its transaction."""
    status = "failing" if row.attempts >= FAILING_AFTER_ATTEMPTS else "pending"
    if permanent:
        status = "failed"
    params = {"id": row.outbox_id, "attempts": row.attempts, "status": status,
              "next": retry_at, "error": error[:500], "http": http_status}  # fmt: skip

    def work(conn: Connection) -> None:
        if conn.execute(_FAILED, params).rowcount and also is not None:
            also(conn)

    await db.transaction(work)
    return status


async def backlog(db: Database, now: datetime, kind: str = HELPDESK) -> Backlog:
    row = (await db.fetch_all(_BACKLOG, {"kind": kind}))[0]
    oldest: datetime | None = row["oldest"]
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return Backlog(int(row["rows"]), int(row["failing"]), age)


@attrs.frozen
class RetryPolicy:
    """``base * 2**(attempts-1)`` capped at ``cap``, then "equal jitter": between half and all
    of it, so instances restarted together do not retry in step, and never at once."""

    base: float = 5.0
    cap: float = 900.0

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        full = min(self.cap, self.base * 2 ** min(max(attempts - 1, 0), 20))
        return timedelta(seconds=full / 2 + rng.uniform(0, full / 2))
