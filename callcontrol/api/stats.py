"""``GET /api/stats``: how the secretary and the team did over a period, for one domain.

Read from what callcontrol already writes, nothing kept on the side: ``callcontrol_calls`` (one
row per call the secretary answered, with the call's outcome and its *last* handoff's result and
destination) and ``callcontrol_callback_requests`` (the tickets). Calls count by ``started_at``,
tickets by ``created_at``, both in ``[from, to)`` as the callbacks list reads them, and both
scoped by ``domain_uuid`` the same way: a row of another domain, or of none, is never counted.
For a supervisor (their own domain) and the service; an agent is refused (403).

A handoff is counted once per call, with the outcome it ended on (retries inside one handoff are
not separate handoffs: the table keeps the last result only). Replies that rang nobody
(``ambiguous``, ``closed``, ``no_destination``, ``disabled``) are ``not_attempted``, outside the
outcomes and the answer rates.

``handoffs_over_time`` counts the same handoffs per hour (a period of two days or less) or per
day, in CALLCONTROL_TIMEZONE, every bucket of the period present (zeros included) so a chart
draws gaps as gaps; a period without ``from`` starts at the first handoff, without ``to`` ends
now.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, tzinfo
from typing import Any

from psycopg import sql
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from callcontrol.api import params
from callcontrol.api.context import ApiContext
from callcontrol.api.errors import ApiError
from callcontrol.api.principal import Principal
from callcontrol.callbacks.tickets import TicketStatus
from callcontrol.handoff.outcomes import Outcome
from callcontrol.logs import get_logger

_log = get_logger("callcontrol.api")

# Outcome value -> the name a supervisor reads; every key is always in the answer (0 if none).
HANDOFF_OUTCOMES = {
    Outcome.SUCCESS.value: "answered",
    Outcome.BUSY.value: "busy",
    Outcome.NO_ANSWER.value: "no_answer",
    Outcome.OFFLINE.value: "offline",
    Outcome.DND.value: "dnd",
    Outcome.REJECTED.value: "rejected",
    Outcome.UNAVAILABLE.value: "unavailable",
    Outcome.CANCELLED.value: "caller_hung_up",  # the caller hung up while it rang
    Outcome.FAILED.value: "failed",
}
ATTEMPTED = sorted(HANDOFF_OUTCOMES)
CLOSED = tuple(s.value for s in TicketStatus if not s.is_open)


def _window(column: str, since: datetime | None, until: datetime | None) -> sql.Composable:
    parts: list[sql.Composable] = []
    if since:
        parts.append(sql.SQL(" AND {} >= %(since)s").format(sql.Identifier(*column.split("."))))
    if until:
        parts.append(sql.SQL(" AND {} < %(until)s").format(sql.Identifier(*column.split("."))))
    return sql.Composed(parts)


_CALLS = """
SELECT c.outcome, c.handoff_status, count(*) AS n
  FROM callcontrol_calls c
 WHERE c.domain_uuid = %(domain)s {window}
 GROUP BY 1, 2
"""

# The destination as the directory names it, with its type and number, when the name the call
# recorded is still there (whatever its case); else the name as recorded.
_DESTINATIONS = """
SELECT coalesce(d.name, c.handoff_destination) AS name, d.destination_type, d.destination_number,
       c.handoff_status, count(*) AS n
  FROM callcontrol_calls c
  LEFT JOIN LATERAL (
        SELECT t.name, t.destination_type, t.destination_number
          FROM v_voice_transfer_destinations t
         WHERE t.domain_uuid = c.domain_uuid AND lower(t.name) = lower(c.handoff_destination)
         ORDER BY t.is_enabled DESC, t.priority, t.transfer_destination_uuid
         LIMIT 1) d ON true
 WHERE c.domain_uuid = %(domain)s AND c.handoff_status = ANY(%(attempted)s)
       AND c.handoff_destination IS NOT NULL {window}
 GROUP BY 1, 2, 3, 4
"""

_TICKETS = """
SELECT r.status, count(*) AS n
  FROM callcontrol_callback_requests r
 WHERE r.domain_uuid = %(domain)s {window}
 GROUP BY 1
"""

# Time to callback: from the caller's request to the ticket's completion (completed_at, or the
# history's completion row for a ticket completed by hand in SQL). Callbacks only: a message is
# read, not called back.
_TIMES = """
SELECT count(*) AS n, avg(s) AS mean,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY s) AS p90
  FROM (SELECT extract(epoch FROM coalesce(r.completed_at, (
                   SELECT min(h.changed_at) FROM callcontrol_callback_history h
                    WHERE h.request_uuid = r.request_uuid AND h.to_status = 'completed'))
               - r.created_at) AS s
          FROM callcontrol_callback_requests r
         WHERE r.domain_uuid = %(domain)s AND r.status = 'completed' AND r.kind = 'callback'
               {window}) done
 WHERE s IS NOT NULL
"""

_WAITING = """
SELECT count(*) AS n, avg(extract(epoch FROM now() - r.created_at)) AS mean,
       max(extract(epoch FROM now() - r.created_at)) AS longest
  FROM callcontrol_callback_requests r
 WHERE r.domain_uuid = %(domain)s AND NOT (r.status = ANY(%(closed)s)) {window}
"""


# naive local timestamps (the bucket's start as a clock in the zone reads it)
_SERIES = """
SELECT date_trunc(%(bucket)s, c.started_at AT TIME ZONE %(zone)s) AS at, c.handoff_status,
       count(*) AS n
  FROM callcontrol_calls c
 WHERE c.domain_uuid = %(domain)s AND c.handoff_status = ANY(%(attempted)s)
       AND c.started_at IS NOT NULL {window}
 GROUP BY 1, 2
 ORDER BY 1
"""
MAX_BUCKETS = 800  # a longer series is the buckets with handoffs only


def _bucket(since: datetime | None, until: datetime | None) -> str:
    return "hour" if since and until and until - since <= timedelta(days=2) else "day"


def _truncate(moment: datetime, bucket: str, zone: tzinfo) -> datetime:
    local = moment.astimezone(zone).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    return local if bucket == "hour" else local.replace(hour=0)


def _series(rows: list[dict[str, Any]], bucket: str, zone: tzinfo, since: datetime | None,
            until: datetime | None, now: datetime) -> dict[str, Any]:  # fmt: skip
    found: dict[datetime, list[tuple[str, int]]] = {}
    for row in rows:
        found.setdefault(row["at"], []).append((row["handoff_status"], row["n"]))
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    starts = sorted(found)
    if since is not None or starts:
        first = _truncate(since, bucket, zone) if since else starts[0]
        last = _truncate((until - timedelta(microseconds=1)) if until else now, bucket, zone)
        if starts:
            last = max(last, starts[-1])
        if (last - first) / step < MAX_BUCKETS:
            starts = [first + i * step for i in range(int((last - first) / step) + 1)]
    points = [{"at": at.replace(tzinfo=zone).isoformat(),
               "by_outcome": _outcomes(found.get(at, ()))} for at in starts]  # fmt: skip
    return {"bucket": bucket, "points": points}


def _q(text: str, window: sql.Composable) -> sql.Composed:
    return sql.SQL(text).format(window=window)


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _outcomes(rows: Iterable[tuple[str | None, int]]) -> dict[str, int]:
    counts = dict.fromkeys(HANDOFF_OUTCOMES.values(), 0)
    for status, n in rows:
        if status in HANDOFF_OUTCOMES:
            counts[HANDOFF_OUTCOMES[status]] += n
    return counts


async def stats(request: Request) -> Response:
    ctx = ApiContext.of(request)
    if not Principal.of(request).sees_every_extension:
        # the team's figures: a supervisor's (the dashboard), not an agent's
        raise ApiError(403, "forbidden", "the figures are for supervisors (a FusionPBX admin)")
    domain = params.domain_uuid(request)
    since, until = params.period(request.query_params, ctx.timezone)
    db = ctx.database()
    values = {"domain": domain, "since": since, "until": until, "attempted": ATTEMPTED,
              "closed": list(CLOSED)}  # fmt: skip
    calls = await db.fetch_all(_q(_CALLS, _window("c.started_at", since, until)), values)
    destinations = await db.fetch_all(
        _q(_DESTINATIONS, _window("c.started_at", since, until)), values
    )
    tickets = await db.fetch_all(_q(_TICKETS, _window("r.created_at", since, until)), values)
    times = await db.fetch_one(_q(_TIMES, _window("r.created_at", since, until)), values) or {}
    waiting = await db.fetch_one(_q(_WAITING, _window("r.created_at", since, until)), values)
    bucket = _bucket(since, until)
    zone_name = getattr(ctx.timezone, "key", "UTC")
    series = await db.fetch_all(_q(_SERIES, _window("c.started_at", since, until)),
                                {**values, "bucket": bucket, "zone": zone_name})  # fmt: skip
    now = await db.fetch_value("SELECT now()")
    body: dict[str, Any] = {
        "domain_uuid": str(domain),
        "period": {"from": since.isoformat() if since else None,
                   "to": until.isoformat() if until else None},
        "calls": _calls(calls),
        "handoffs": _handoffs(calls),
        "callbacks": _callbacks(tickets, times, waiting or {}),
        "destinations": _destinations(destinations),
        "handoffs_over_time": _series(series, bucket, ctx.timezone, since, until, now),
    }  # fmt: skip
    _log.info("api.stats", domain_uuid=str(domain), calls=body["calls"]["total"],
              since=body["period"]["from"], until=body["period"]["to"])  # fmt: skip
    return JSONResponse(body)


def _calls(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_outcome: dict[str, int] = {}
    for row in rows:
        key = row["outcome"] or "unknown"
        by_outcome[key] = by_outcome.get(key, 0) + row["n"]
    return {"total": sum(by_outcome.values()), "by_outcome": dict(sorted(by_outcome.items()))}


def _handoffs(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_outcome = _outcomes((row["handoff_status"], row["n"]) for row in rows)
    not_attempted: dict[str, int] = {}
    for row in rows:
        status = row["handoff_status"]
        if status is not None and status not in HANDOFF_OUTCOMES:
            not_attempted[status] = not_attempted.get(status, 0) + row["n"]
    total = sum(by_outcome.values())
    return {"total": total, "by_outcome": by_outcome,
            "answer_rate": _rate(by_outcome["answered"], total),
            "not_attempted": dict(sorted(not_attempted.items()))}  # fmt: skip


def _callbacks(
    rows: list[dict[str, Any]], times: dict[str, Any], waiting: dict[str, Any]
) -> dict[str, Any]:
    by_status = {s.value: 0 for s in TicketStatus}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
    closed = sum(by_status[s] for s in CLOSED)
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "open": sum(by_status.values()) - closed,
        # of the tickets that are closed, the share that ended in a callback made
        "completion_rate": _rate(by_status[TicketStatus.COMPLETED.value], closed),
        "time_to_callback_seconds": {"count": times.get("n") or 0,
                                     "mean": _seconds(times.get("mean")),
                                     "median": _seconds(times.get("median")),
                                     "p90": _seconds(times.get("p90"))},
        "open_waiting_seconds": {"mean": _seconds(waiting.get("mean")),
                                 "longest": _seconds(waiting.get("longest"))},
    }  # fmt: skip


def _destinations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: dict[tuple[str, str | None, str | None], list[tuple[str, int]]] = {}
    for row in rows:
        key = (row["name"], row["destination_type"], row["destination_number"])
        found.setdefault(key, []).append((row["handoff_status"], row["n"]))
    out = []
    for (name, kind, number), counts in found.items():
        by_outcome = _outcomes(counts)
        total = sum(by_outcome.values())
        out.append({"destination": name, "destination_type": kind, "destination_number": number,
                    "handoffs": total, "by_outcome": by_outcome,
                    "answer_rate": _rate(by_outcome["answered"], total)})  # fmt: skip
    # the busiest first: where a supervisor looks
    return sorted(out, key=lambda d: (-d["handoffs"], d["destination"]))
