"""The scanner: turns open callback tickets into agents who are told, as soon as they are free.

One scan (``scan_once``), every ``CALLBACK_CHECK_INTERVAL_MS`` and at once when FreeSWITCH says
an extension may have become free:

1. an ``in_progress`` ticket whose click-to-call was never bridged and is older than two rings
   was left by a killed process: it is ``pending`` again; tickets past ``expires_at`` become
   ``expired``; tickets told ``CALLBACK_MAX_NOTIFICATIONS``
   times (their domain's own value, else the environment's: ``domain_settings``) without being
   called become ``needs_review`` (a person must look);
2. the due tickets (``scheduled_at`` reached, the minimum interval since the last notification
   passed) are read with their agent's extension, domain and DND;
3. ONE availability snapshot answers for all of them (``availability``);
4. each ticket whose agent is AVAILABLE moves to ``notified`` by a conditional UPDATE that
   re-checks the interval: with several ``serve`` instances on one database, the second one's
   UPDATE finds the row already notified and changes nothing, so a ticket is notified once per
   interval whatever the number of scanners; an instance killed mid-scan leaves the tickets as
   they were;
5. in the same transaction, the outbox rows for what leaves the process: the helpdesk webhook
   (``OMNIPLAY_API_URL``) and, for a ticket that asks for it, the WhatsApp template to the
   customer (``whatsapp_delivery``);
6. ``notify`` is called for each ticket that moved, after the commit;
7. with ``start_call`` (serve), each ``ready_to_call`` ticket whose agent is AVAILABLE in the
   same snapshot is handed to it: click-to-call (``clicktocall``) rings the agent, then the
   customer, in a task of its own; its claim (``in_progress``) keeps two instances from calling
   one ticket twice.

UNKNOWN availability (FreeSWITCH cannot be asked) notifies nobody; three scans in a row without
a box raise an alert for that box (``callbacks.availability_alert``, with several boxes in
``ESL_HOST`` one per box: the agents of the boxes that answer are told meanwhile), and the
scanner goes on. A scan that
fails for any other reason (the database is down, a bug) is logged as ``callbacks.scan_failed``
and the next one runs at the next interval: the scanner never takes ``serve`` down.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import attrs
import trio

from callcontrol.callbacks import outbox, whatsapp_delivery
from callcontrol.callbacks.availability import Availability, Snapshot, availability
from callcontrol.callbacks.clicktocall import JOB_GRACE_SECONDS
from callcontrol.callbacks.tickets import AGENT_COLUMNS, AGENT_JOINS, record_who
from callcontrol.config import Settings
from callcontrol.db.database import Connection, Database, DatabaseUnavailable
from callcontrol.logs import get_logger
from callcontrol.metrics import Metrics

ALERT_AFTER_FAILURES = 3
# However many phones register or hang up, at most one scan per second: a burst of events on a
# busy PBX is one scan, and the events that come during a scan are answered by the next one.
MIN_SECONDS_BETWEEN_SCANS = 1.0

_log = get_logger("callcontrol.callbacks.scanner")

_EXPIRE = """
UPDATE callcontrol_callback_requests SET status = 'expired', updated_at = now()
 WHERE status IN ('pending', 'notified', 'ready_to_call') AND expires_at <= %(now)s
RETURNING request_uuid::text
"""

_TOO_MANY = """
UPDATE callcontrol_callback_requests r SET status = 'needs_review', updated_at = now()
  FROM (SELECT r2.request_uuid FROM callcontrol_callback_requests r2
          LEFT JOIN callcontrol_callback_settings s ON s.domain_uuid = r2.domain_uuid
         WHERE r2.status IN ('pending', 'notified')
           AND r2.notification_count >= coalesce(s.max_notifications, %(max)s)) over
 WHERE r.request_uuid = over.request_uuid
RETURNING r.request_uuid::text
"""

# Due tickets with their agent (tickets.AGENT_COLUMNS, constants: no input reaches this text)
# and the domain's callback settings.
_TICKETS = f"""
SELECT r.request_uuid::text AS request_uuid, r.phone_number, r.caller_name, r.reason,
       r.notification_count,
       {AGENT_COLUMNS}
  FROM callcontrol_callback_requests r{AGENT_JOINS}
  LEFT JOIN callcontrol_callback_settings s ON s.domain_uuid = r.domain_uuid
"""  # noqa: S608
_DUE = _TICKETS + """
 WHERE r.kind = 'callback' AND r.status IN ('pending', 'notified')
   AND (r.scheduled_at IS NULL OR r.scheduled_at <= %(now)s)
   AND (r.last_notified_at IS NULL
        OR r.last_notified_at <= %(now)s
           - make_interval(mins => coalesce(s.min_interval_minutes, r.min_interval_minutes)))
 ORDER BY coalesce(r.scheduled_at, r.created_at)
 LIMIT %(limit)s
"""

# Asked to be called now (the agent, or the customer's WhatsApp "sim"): click-to-call.
_READY = _TICKETS + """
 WHERE r.kind = 'callback' AND r.status = 'ready_to_call'
   AND (r.scheduled_at IS NULL OR r.scheduled_at <= %(now)s)
 ORDER BY coalesce(r.scheduled_at, r.created_at)
 LIMIT %(limit)s
"""

_NOTIFY = """
UPDATE callcontrol_callback_requests r
   SET status = 'notified', updated_at = now(), notification_count = r.notification_count + 1,
       last_notified_at = %(now)s
 WHERE r.request_uuid = ANY(%(uuids)s::uuid[]) AND r.status IN ('pending', 'notified')
   AND (r.last_notified_at IS NULL
        OR r.last_notified_at <= %(now)s - make_interval(mins => coalesce(
            (SELECT s.min_interval_minutes FROM callcontrol_callback_settings s
              WHERE s.domain_uuid = r.domain_uuid), r.min_interval_minutes)))
RETURNING r.request_uuid::text
"""


@attrs.frozen
class DueTicket:
    request_uuid: str
    phone_number: str
    caller_name: str | None
    reason: str | None
    extension: str | None
    domain_name: str | None
    dnd: bool
    notification_count: int


@attrs.frozen
class ScanResult:
    expired: tuple[str, ...] = ()
    to_review: tuple[str, ...] = ()
    due: int = 0
    notified: tuple[DueTicket, ...] = ()
    availability_known: bool = True
    called: tuple[DueTicket, ...] = ()  # ready_to_call, agent free: click-to-call started
    reclaimed: tuple[str, ...] = ()  # in_progress, its click-to-call gone: pending again
    boxes_down: tuple[str, ...] = ()  # of ESL_HOST's, those the snapshot could not read


SnapshotSource = Callable[[], Awaitable[Snapshot | None]]
Notify = Callable[[DueTicket], Awaitable[None]]
# Starts click-to-call for a ticket without waiting for the call (service.CallStarter).
StartCall = Callable[[DueTicket], Awaitable[None]]


async def scan_once(
    db: Database,
    snapshot_of: SnapshotSource,
    settings: Settings,
    now: datetime,
    *,
    notify: Notify | None = None,
    start_call: StartCall | None = None,
    limit: int = 10_000,
) -> ScanResult:
    reclaimed = await db.transaction(lambda conn: _reclaim_lost_calls(conn, settings))
    expired, to_review = await db.transaction(lambda conn: _close_out(conn, settings, now))
    rows = await db.fetch_all(_DUE, {"now": now, "limit": limit})
    due = [DueTicket(**row) for row in rows]
    ready = [] if start_call is None else [
        DueTicket(**row) for row in await db.fetch_all(_READY, {"now": now, "limit": limit})]
    if not due and not ready:
        return ScanResult(expired, to_review, reclaimed=reclaimed)
    snapshot = await snapshot_of()
    if snapshot is None:
        return ScanResult(expired, to_review, len(due), availability_known=False,
                          reclaimed=reclaimed)  # fmt: skip
    boxes_down = tuple(sorted(snapshot.down))
    called = tuple(t for t in ready if _is_free(snapshot, t))
    for ticket in called:
        _log.info("callbacks.c2c_due", request_uuid=ticket.request_uuid,
                  extension=ticket.extension, domain=ticket.domain_name,
                  reason="ready_to_call and the agent's extension is available")  # fmt: skip
        if start_call is not None:
            await start_call(ticket)
    free = [t for t in due if _is_free(snapshot, t)]
    moved: set[str] = set()
    if free:
        moved = await db.transaction(lambda conn: _mark_notified(conn, free, now, settings))
    notified = tuple(t for t in free if t.request_uuid in moved)
    for ticket in notified:
        _log.info("callbacks.agent_notified", request_uuid=ticket.request_uuid,
                  extension=ticket.extension, domain=ticket.domain_name,
                  times=ticket.notification_count + 1,
                  reason="the agent's extension is available")  # fmt: skip
        if notify is not None:
            await notify(ticket)
    return ScanResult(expired, to_review, len(due), notified, called=called,
                      reclaimed=reclaimed, boxes_down=boxes_down)  # fmt: skip


def _is_free(snapshot: Snapshot, ticket: DueTicket) -> bool:
    if not ticket.extension or not ticket.domain_name:
        return False  # a ring group's or a queue's ticket: nobody in particular to tell yet
    found = availability(snapshot, ticket.extension, ticket.domain_name, dnd=ticket.dnd)
    return found is Availability.AVAILABLE


# A click-to-call that is not bridged ends within its two rings (and the job's grace); one whose
# attempt is older than that and not bridged was killed with its process (SIGKILL, a crash):
# its ticket goes back to pending, the attempt closed as cancelled and not counted. Times are
# the database's own on both sides (the attempt's started_at is its now()).
_RECLAIM = """
WITH lost AS (
    UPDATE callcontrol_callback_attempts a
       SET outcome = 'cancelled', hangup_cause = 'CALLCONTROL_STOPPED', ended_at = now()
     WHERE a.ended_at IS NULL AND a.bridged_at IS NULL
       AND a.started_at <= now() - make_interval(secs => %(seconds)s)
    RETURNING a.request_uuid
)
UPDATE callcontrol_callback_requests r SET status = 'pending', updated_at = now()
  FROM lost WHERE r.request_uuid = lost.request_uuid AND r.status = 'in_progress'
RETURNING r.request_uuid::text
"""


def _reclaim_lost_calls(conn: Connection, settings: Settings) -> tuple[str, ...]:
    record_who(conn, "scanner", "its click-to-call stopped without a word (killed): "
               "not counted, called again when asked")  # fmt: skip
    seconds = unbridged_attempt_limit_seconds(settings)
    found = tuple(r["request_uuid"] for r in conn.execute(_RECLAIM, {"seconds": seconds}))
    for uuid in found:
        _log.warning("callbacks.c2c_lost", request_uuid=uuid, older_than_seconds=seconds,
                     reason="in_progress, never bridged, longer than two rings",
                     effect="back to pending")  # fmt: skip
    return found


def unbridged_attempt_limit_seconds(settings: Settings) -> float:
    """The longest a live click-to-call attempt can go unbridged (two rings, each with the
    job's grace, and a minute for the rest)."""
    return 2 * (settings.callback_ring_timeout_seconds + JOB_GRACE_SECONDS) + 60


def _close_out(conn: Connection, settings: Settings, now: datetime) -> tuple[tuple[str, ...],
                                                                              tuple[str, ...]]:
    record_who(conn, "scanner", "expires_at passed")
    expired = tuple(r["request_uuid"] for r in conn.execute(_EXPIRE, {"now": now}).fetchall())
    record_who(conn, "scanner", "notified as many times as its domain allows")
    to_review = tuple(r["request_uuid"] for r in conn.execute(
        _TOO_MANY, {"max": settings.callback_max_notifications}).fetchall())
    return expired, to_review


def _mark_notified(
    conn: Connection, free: list[DueTicket], now: datetime, settings: Settings
) -> set[str]:
    record_who(conn, "scanner", "the agent's extension is available")
    rows = conn.execute(_NOTIFY, {"now": now, "uuids": [t.request_uuid for t in free]})
    moved = {r["request_uuid"] for r in rows.fetchall()}
    # in this transaction: the helpdesk and the customers hear of exactly the committed moves
    if settings.omniplay_api_url:
        outbox.enqueue_helpdesk(conn, "callback.notified", sorted(moved), now)
    if whatsapp_delivery.sending_configured(settings):
        whatsapp_delivery.enqueue_template(conn, settings, sorted(moved), now)
    return moved


class Scanner:
    """The scanner's loop (``run``), with its alert state."""

    def __init__(
        self,
        db: Database,
        snapshot_of: SnapshotSource,
        settings: Settings,
        *,
        clock: Callable[[], datetime],
        notify: Notify | None = None,
        start_call: StartCall | None = None,
        wake: Callable[[], trio.Event] | None = None,
        metrics: Metrics | None = None,
        boxes: tuple[str, ...] | None = None,
    ) -> None:
        self.db = db
        # whose outages are counted, each for its own alert: ESL_HOST's boxes by default
        self.boxes = boxes or tuple(box.name for box in settings.esl_boxes)
        self.down_in_a_row = dict.fromkeys(self.boxes, 0)
        self.snapshot_of = snapshot_of
        self.settings = settings
        self.clock = clock
        self.notify = notify
        self.start_call = start_call
        self.wake = wake  # an event set when an extension may have become free
        self.metrics = metrics
        self.scans = 0
        self.failed_scans = 0
        self.alerts = 0
        self.scanned = trio.Event()  # set (and replaced) after each scan, done or failed

    async def run(self) -> None:
        interval = self.settings.callback_check_interval_ms / 1000
        while True:
            # taken before the scan: an event during the scan is not lost, it scans again
            woken = self.wake() if self.wake is not None else None
            started = trio.current_time()
            await self.scan()
            with trio.move_on_after(interval):
                if woken is not None:
                    await woken.wait()
                else:
                    await trio.sleep_forever()
            await trio.sleep_until(started + MIN_SECONDS_BETWEEN_SCANS)

    async def scan(self) -> ScanResult | None:
        try:
            return await self._scan()
        finally:
            self.scanned.set()
            self.scanned = trio.Event()

    async def _scan(self) -> ScanResult | None:
        started = trio.current_time()
        try:
            result = await scan_once(self.db, self.snapshot_of, self.settings, self.clock(),
                                     notify=self.notify,
                                     start_call=self.start_call)  # fmt: skip
        except DatabaseUnavailable as exc:
            self._failed(error=str(exc))
            return None
        except Exception as exc:  # a bug must not stop the callbacks, nor serve
            self._failed(error=repr(exc), exc_info=True)
            return None
        self.scans += 1
        self._count(result, trio.current_time() - started)
        down = set(result.boxes_down) if result.availability_known else set(self.boxes)
        for box in self.boxes:
            self.down_in_a_row[box] = self.down_in_a_row[box] + 1 if box in down else 0
            if self.down_in_a_row[box] == ALERT_AFTER_FAILURES:
                self._alert(box, result)
        return result

    @property
    def unknown_in_a_row(self) -> int:
        """The longest run of scans without one of the boxes."""
        return max(self.down_in_a_row.values(), default=0)

    def _alert(self, box: str, result: ScanResult) -> None:
        self.alerts += 1
        if self.metrics is not None:
            self.metrics.callback_alerts.labels(box=box).inc()
        several = len(self.boxes) > 1
        effect = ("no agent whose phone could be on this box is told of a callback until it "
                  "answers; the other boxes' agents are" if several
                  else "no agent is told of a callback until FreeSWITCH answers")  # fmt: skip
        _log.error("callbacks.availability_alert", box=box, scans=self.down_in_a_row[box],
                   due=result.due, effect=effect,
                   fix=f"check FreeSWITCH at {box} and ESL_HOST/ESL_PORT/ESL_PASSWORD"
                   )  # fmt: skip

    def _failed(self, **fields: object) -> None:
        self.failed_scans += 1
        if self.metrics is not None:
            self.metrics.callback_scans.labels(result="failed").inc()
        _log.error("callbacks.scan_failed", next="the next interval", **fields)

    def _count(self, result: ScanResult, seconds: float) -> None:
        if self.metrics is None:
            return
        m = self.metrics
        m.callback_scans.labels(result="done").inc()
        m.callback_scan_seconds.observe(seconds)
        for status, tickets in (("expired", len(result.expired)),
                                ("needs_review", len(result.to_review)),
                                ("notified", len(result.notified))):  # fmt: skip
            if tickets:
                m.callbacks.labels(status=status).inc(tickets)
