"""Click-to-call from the API: ``POST /api/callbacks/{id}/initiate`` and the original plan's
``POST /api/callback/originate {"ticketUuid"}``, one implementation.

The answer comes at once (202 with the agent leg's UUID); the call itself runs in the
background in ``serve``, in the click-to-call starter's nursery that owns the inbound Event
Socket connection (``callbacks.service.CallStarter``), as the scanner's hand-over does. Before
handing it over the ticket is checked (of this domain, a callback with an agent's extension,
in a status that may be called) and the agent's availability double-checked: busy, offline,
DND or FreeSWITCH not answering are typed refusals, and nothing is written or dialled. The 202
comes once the starter has claimed the ticket (``in_progress``), so a client that reads it
right after sees it being called, and a race lost meanwhile is a refusal, not a 202.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import trio
from psycopg import sql
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from callcontrol.api import params
from callcontrol.api.callback_filters import FROM, agent_only
from callcontrol.api.context import ApiContext
from callcontrol.api.errors import ApiError, bad_request, not_found
from callcontrol.callbacks.availability import Availability, availability
from callcontrol.callbacks.clicktocall import NoBox, NotCallable, Refused, Ticket, load_ticket
from callcontrol.callbacks.tickets import MoveRefused, TicketNotFound, TicketStatus, may_move
from callcontrol.esl import ConnectionClosed
from callcontrol.logs import get_logger

_log = get_logger("callcontrol.api")


class Initiator(Protocol):
    """Starts click-to-call in the background (``CallStarter.initiate``)."""

    async def initiate(self, request_uuid: str) -> str | None:
        """Once the ticket is claimed (in_progress): the agent leg's UUID; None when that
        ticket is being called already."""
        ...


_IN_DOMAIN = sql.SQL("SELECT 1") + FROM + sql.SQL(
    " WHERE r.request_uuid = %(id)s AND r.domain_uuid = %(d)s")


async def initiate_callback(request: Request) -> Response:
    ident = params.parse_uuid(request.path_params["id"], "id")
    return await _initiate(request, ident, params.domain_uuid(request))


async def originate(request: Request) -> Response:
    domain = params.domain_uuid(request)
    body = await params.json_object(request)
    ticket = body.get("ticketUuid")
    if not isinstance(ticket, str):
        raise bad_request("`ticketUuid` is required: the ticket's id, a UUID")
    return await _initiate(request, params.parse_uuid(ticket, "ticketUuid"), domain)


async def _initiate(request: Request, ident: uuid.UUID, domain: uuid.UUID) -> Response:
    ctx = ApiContext.of(request)
    db = ctx.database()
    mine, values = agent_only(request)  # an agent calls back only their own extensions' tickets
    if await db.fetch_one(_IN_DOMAIN + mine, {"id": ident, "d": domain, **values}) is None:
        raise not_found("no callback with that id in this domain")
    ticket = await load_ticket(db, str(ident))
    _check_callable(ticket)
    snapshot = await ctx.availability.snapshot() if ctx.availability else None
    now = availability(snapshot, str(ticket.extension), str(ticket.domain_name), dnd=ticket.dnd)
    if now is not Availability.AVAILABLE:
        _log.info("api.c2c_refused", request_uuid=str(ident), extension=ticket.extension,
                  availability=now.value, reason="double-checked before handing it over")
        raise _unavailable(now, ticket, ctx)
    if ctx.calls is None:
        raise ApiError(503, "click_to_call_unavailable",
                       "click-to-call is not running (CALLBACK_ENABLED off, or migrations "
                       "pending)")  # fmt: skip
    try:
        agent_leg = await _hand_over(ctx.calls, str(ident))
    except NoBox as exc:  # several boxes: the agent's went away since the check above
        raise _unavailable(exc.availability, ticket, ctx) from None
    if agent_leg is None:
        raise ApiError(409, "already_calling", "this callback is being called right now")
    _log.info("api.c2c_initiated", request_uuid=str(ident), agent_leg=agent_leg,
              extension=ticket.extension)  # fmt: skip
    return JSONResponse({"ticketUuid": str(ident), "agentLegUuid": agent_leg,
                         "status": TicketStatus.IN_PROGRESS.value}, status_code=202)  # fmt: skip


async def _hand_over(calls: Initiator, ticket: str) -> str | None:
    """The claim, made by the starter: a race lost meanwhile (the scanner took it, someone
    closed it) is the same refusal as if it had been seen before."""
    try:
        return await calls.initiate(ticket)
    except MoveRefused as exc:
        raise ApiError(409, "illegal_move",
                       f"a callback that is {exc.current} cannot be called") from None
    except NotCallable as exc:
        raise ApiError(409, "not_callable", f"this callback cannot be called: {exc.why}") from None
    except Refused as exc:
        raise ApiError(409, "not_dialable", f"{exc.error}; the callback was sent to "
                       "needs_review") from None  # fmt: skip
    except TicketNotFound:
        raise not_found("no callback with that id in this domain") from None
    except (ConnectionClosed, trio.TooSlowError):
        raise ApiError(503, "UNKNOWN", "FreeSWITCH's Event Socket is not connected; the call "
                       "was not started", {"shouldRetry": True}) from None  # fmt: skip


def _check_callable(ticket: Ticket) -> None:
    try:
        status = TicketStatus(ticket.status)
    except ValueError:
        status = None
    if status is not None and not may_move(status, TicketStatus.IN_PROGRESS):
        raise ApiError(409, "illegal_move",
                       f"a callback that is {status.value} cannot be called")  # fmt: skip
    why = ticket.why_not_callable()
    if why is not None:
        raise ApiError(409, "not_callable", f"this callback cannot be called: {why}")


def _unavailable(now: Availability, ticket: Ticket, ctx: ApiContext) -> ApiError:
    ext = ticket.extension
    if now in (Availability.IN_CALL, Availability.RINGING):
        delay = ctx.retry_delay_seconds
        return ApiError(409, "USER_BUSY", f"the agent's extension {ext} is "
                        f"{now.value.replace('_', ' ')}; try again in {delay} s",
                        {"shouldRetry": True, "retryAfterSeconds": delay,
                         "extensionState": now.value})  # fmt: skip
    if now is Availability.OFFLINE:
        return ApiError(409, "OFFLINE", f"no phone is signed in to extension {ext}",
                        {"shouldRetry": False})  # fmt: skip
    if now is Availability.DND:
        return ApiError(409, "DND", f"do not disturb is on for extension {ext} (FusionPBX)",
                        {"shouldRetry": False})  # fmt: skip
    return ApiError(503, "UNKNOWN", "FreeSWITCH could not be asked whether the agent is "
                    "free; never taken as available", {"shouldRetry": True})  # fmt: skip
