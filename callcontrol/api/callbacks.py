"""The callback tickets of one domain: list, one ticket in full, snooze and cancel.

Every status change goes through ``callbacks.tickets`` (locked, checked against the allowed
moves, recorded in the ticket's history), so a ticket cancelled here shows "canceled by api"
(the service token; a signed-in person's username instead) with the reason given; a move the
ticket's status does not allow is a 409 naming both. A ticket of another domain is a 404, as if
it did not exist; so is, for an agent, a ticket of an extension that is not theirs.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from psycopg import sql
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from callcontrol.api import params
from callcontrol.api.callback_filters import (
    AGENT_EXTENSION,
    FROM,
    CallbackFilters,
    agent_only,
    decode_cursor,
    encode_cursor,
)
from callcontrol.api.context import ApiContext
from callcontrol.api.errors import ApiError, bad_request, not_found
from callcontrol.api.principal import Principal
from callcontrol.callbacks import recordings, tickets
from callcontrol.db.database import Database, Row
from callcontrol.logs import get_logger

_log = get_logger("callcontrol.api")

MAX_LIMIT = 200
MAX_SNOOZE_MINUTES = 24 * 60
CHANGED_BY = "api"


def changed_by(request: Request) -> str:
    """Who the ticket's history says made a change: a person's FusionPBX username, else "api"
    (the service token)."""
    principal = Principal.of(request)
    return principal.username if principal.is_person and principal.username else CHANGED_BY

COLUMNS = sql.SQL(
    "SELECT r.request_uuid::text AS id, r.kind, r.status, r.phone_number, r.caller_name,"
    " r.reason, r.message, r.preferred_time, r.scheduled_at, r.time_understood, r.expires_at,"
    " {extension} AS extension, r.destination_uuid::text AS destination_uuid,"
    " r.destination_name, r.intended_for, r.department, r.attempts, r.max_attempts,"
    " r.notification_count, r.last_notified_at, r.notify_via_whatsapp,"
    " r.whatsapp_sent_at, r.whatsapp_response, r.whatsapp_response_at,"
    " r.call_uuid::text AS call_uuid, r.created_at, r.updated_at, r.completed_at,"
    " CASE WHEN r.status = 'completed' THEN"
    "   extract(epoch FROM r.completed_at - r.created_at)::bigint"
    "  WHEN r.status IN ('pending', 'notified', 'ready_to_call', 'in_progress', 'needs_review')"
    "   THEN extract(epoch FROM now() - r.created_at)::bigint END AS waited_seconds"
).format(extension=AGENT_EXTENSION)

NEWEST_FIRST = sql.SQL(" ORDER BY r.created_at DESC, r.request_uuid DESC")


def jsonable(row: Row) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


async def list_callbacks(request: Request) -> Response:
    ctx = ApiContext.of(request)
    filters = CallbackFilters.from_request(request, ctx.timezone)
    q = request.query_params
    limit = params.integer(q, "limit", default=50, low=1, high=MAX_LIMIT)
    offset = params.integer(q, "offset", default=0, low=0, high=10_000_000)
    where, values = filters.where()
    total = await ctx.database().fetch_value(sql.SQL("SELECT count(*)") + FROM + where, values)
    if q.get("cursor"):
        if offset:
            raise bad_request("give `offset` or `cursor`, not both")
        at, ident = decode_cursor(q["cursor"])
        where = where + sql.SQL(" AND (r.created_at, r.request_uuid) < (%(c_at)s, %(c_id)s)")
        values = {**values, "c_at": at, "c_id": ident}
    page = sql.SQL(" LIMIT %(limit)s OFFSET %(offset)s")
    rows = await ctx.database().fetch_all(
        COLUMNS + FROM + where + NEWEST_FIRST + page, {**values, "limit": limit, "offset": offset}
    )
    last = rows[-1] if len(rows) == limit else None
    return JSONResponse({
        "items": [jsonable(row) for row in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_cursor": encode_cursor(last["created_at"], last["id"]) if last else None,
    })  # fmt: skip


async def _ticket(db: Database, request: Request) -> tuple[uuid.UUID, Row]:
    """The ticket named by the path, in the request's domain (404 otherwise)."""
    ident = params.parse_uuid(request.path_params["id"], "id")
    domain = params.domain_uuid(request)
    mine, values = agent_only(request)
    query = COLUMNS + FROM + sql.SQL(" WHERE r.request_uuid = %(id)s AND r.domain_uuid = %(d)s")
    row = await db.fetch_one(query + mine, {"id": ident, "d": domain, **values})
    if row is None:
        raise not_found("no callback with that id in this domain")
    return ident, row


_DETAIL = """
SELECT r.recording_path, r.call_uuid, r.domain_uuid, r.summary, r.call_started_at,
       r.call_duration_seconds,
       coalesce(r.transcript, c.transcript) AS transcript,
       c.started_at AS call_started, c.ended_at AS call_ended, c.outcome AS call_outcome,
       c.handoff_status, c.handoff_destination, c.hangup_cause
  FROM callcontrol_callback_requests r
  LEFT JOIN callcontrol_calls c ON c.call_uuid = r.call_uuid AND c.domain_uuid = r.domain_uuid
 WHERE r.request_uuid = %s
"""


async def get_callback(request: Request) -> Response:
    db = ApiContext.of(request).database()
    ident, row = await _ticket(db, request)
    more = await db.fetch_one(_DETAIL, (ident,)) or {}
    history = await tickets.history(db, str(ident))
    body = jsonable(row)
    body["transcript"] = _by_role(more.get("transcript"))
    body["history"] = [jsonable(h) for h in history]
    body["recording"] = await _recording(ApiContext.of(request), db, ident, more)
    body["summary"] = more.get("summary")
    body["call"] = jsonable({
        "started_at": more.get("call_started") or more.get("call_started_at"),
        "ended_at": more.get("call_ended"),
        "duration_seconds": more.get("call_duration_seconds"),
        "outcome": more.get("call_outcome"),
        "handoff_status": more.get("handoff_status"),
        "handoff_destination": more.get("handoff_destination"),
        "hangup_cause": more.get("hangup_cause"),
    }) if row["call_uuid"] else None  # fmt: skip
    return JSONResponse(body)


# FusionPBX's CDR of the call, where its recording is; none on a database without FusionPBX
_CDR = """
SELECT record_path, record_name FROM v_xml_cdr
 WHERE xml_cdr_uuid = %s AND domain_uuid = %s
"""
_HAS_CDR = "SELECT to_regclass('v_xml_cdr') IS NOT NULL"


async def _recording_path(db: Database, more: Row) -> str | None:
    cdr: Row = {}
    if not more.get("recording_path") and more.get("call_uuid") \
            and await db.fetch_value(_HAS_CDR):  # fmt: skip
        cdr = await db.fetch_one(_CDR, (more["call_uuid"], more["domain_uuid"])) or {}
    return recordings.stored_path(more.get("recording_path"), cdr.get("record_path"),
                                  cdr.get("record_name"))  # fmt: skip


async def _recording(ctx: ApiContext, db: Database, ident: uuid.UUID,
                     more: Row) -> dict[str, Any] | None:  # fmt: skip
    """Where the recording is, and ``url`` when this host can play it (else None there)."""
    path = await _recording_path(db, more)
    if path is None:
        return None
    here = recordings.servable(path, ctx.recordings_dir) is not None
    return {"path": path, "url": f"/api/callbacks/{ident}/recording" if here else None}


async def get_recording(request: Request) -> Response:
    """The recording of the ticket's call, from CALLCONTROL_RECORDINGS_DIR (Range works: the
    page's player seeks)."""
    ctx = ApiContext.of(request)
    db = ctx.database()
    ident, _ = await _ticket(db, request)
    more = await db.fetch_one(_DETAIL, (ident,)) or {}
    path = await _recording_path(db, more)
    found = recordings.servable(path, ctx.recordings_dir)
    if found is None:
        why = "this callback's call has no recording" if path is None else \
            "its recording is not in CALLCONTROL_RECORDINGS_DIR on this host"  # fmt: skip
        raise not_found(why)
    _log.info("api.recording_sent", request_uuid=str(ident), file=found.name)
    return FileResponse(found, media_type=recordings.media_type(found))


def _by_role(transcript: Any) -> list[dict[str, Any]]:
    """The conversation, each line with who said it (caller, assistant; tool calls too)."""
    if not isinstance(transcript, list):
        return []
    return [
        {"t": entry.get("t"), "role": entry["role"], "text": entry.get("text", "")}
        for entry in transcript
        if isinstance(entry, dict) and isinstance(entry.get("role"), str)
    ]


async def snooze_callback(request: Request) -> Response:
    db = ApiContext.of(request).database()
    ident, _ = await _ticket(db, request)
    body = await params.json_object(request)
    minutes = body.get("minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int) \
            or not 1 <= minutes <= MAX_SNOOZE_MINUTES:  # fmt: skip
        raise bad_request(f"`minutes` must be a whole number from 1 to {MAX_SNOOZE_MINUTES}")
    now = await db.fetch_value("SELECT now()")
    until = now + timedelta(minutes=minutes)
    try:
        await tickets.snooze(db, str(ident), until, by=changed_by(request),
                             reason=f"snoozed {minutes} min")  # fmt: skip
    except tickets.MoveRefused as exc:
        raise _conflict(exc, "snoozed") from None
    except tickets.SnoozePastExpiry as exc:
        raise ApiError(409, "expires_first", f"the callback expires at "
                       f"{exc.expires_at.isoformat()}, before the snooze would end") from None
    _log.info("api.callback_snoozed", request_uuid=str(ident), minutes=minutes)
    return await _current(db, request)


async def cancel_callback(request: Request) -> Response:
    db = ApiContext.of(request).database()
    ident, _ = await _ticket(db, request)
    body = await params.json_object(request)
    reason = body.get("reason")
    reason = None if reason is None else params.text(reason, "reason", max_length=500)
    try:
        await tickets.change_status(db, str(ident), tickets.TicketStatus.CANCELED,
                                    by=changed_by(request), reason=reason)  # fmt: skip
    except tickets.MoveRefused as exc:
        raise _conflict(exc, "canceled") from None
    _log.info("api.callback_canceled", request_uuid=str(ident))
    return await _current(db, request)


async def _current(db: Database, request: Request) -> Response:
    _, row = await _ticket(db, request)
    return JSONResponse(jsonable(row))


def _conflict(exc: tickets.MoveRefused, what: str) -> ApiError:
    return ApiError(409, "illegal_move",
                    f"a callback that is {exc.current} cannot be {what}")  # fmt: skip
