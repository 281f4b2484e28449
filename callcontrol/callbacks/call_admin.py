"""``callcontrol callback call TICKET [--once]``: call a callback ticket back now.

Opens its own inbound Event Socket connection (``ESL_HOST``/``ESL_PORT``/``ESL_PASSWORD``) and
runs click-to-call (``clicktocall``): the agent's phone rings first (or the customer's, with
``CALLBACK_CALL_ORDER=customer-first``), then the other, then they are bridged. It tells the
admin each step and what became of the ticket, and stays until the call ends, so the ticket is
``completed`` with its duration. An attempt that does not connect them is tried again after
``CALLBACK_RETRY_DELAY_SECONDS`` (``--once``: not here — the ticket waits, ``pending``, for its
new time). Ctrl-C before they are connected hangs up every leg; after, it leaves them talking.
Exit status 0 when agent and customer talked, 1 otherwise.

With several boxes in ``ESL_HOST`` every box is asked first who is registered, and the call
goes through the box the agent's extension is registered on (the first in ``ESL_HOST``'s
order when on two), both legs; registered on none that answers, nothing is dialled and the
command says so.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta

import attrs
import trio

from callcontrol.callbacks import clicktocall
from callcontrol.callbacks.availability import Snapshot, availability, merge
from callcontrol.callbacks.clicktocall import (
    AttemptReport,
    ClickToCall,
    NoBox,
    NotCallable,
    Refused,
)
from callcontrol.callbacks.tickets import MoveRefused, TicketNotFound, TicketStatus
from callcontrol.config import EslBox, Settings, load_settings
from callcontrol.db import DatabaseUnavailable, PoolOptions, open_database
from callcontrol.esl import CommandError, ConnectionClosed
from callcontrol.logs import configure_logging

PROG = "callcontrol callback call"
CONNECT_TIMEOUT_SECONDS = 5.0


def own_instance(settings: Settings, pid: int) -> Settings:
    """This command's legs carry an instance id of their own (``<instance>-cli-<pid>``): a
    ``serve`` of the same CALLCONTROL_INSTANCE_ID that restarts while the admin's call rings
    kills the legs its own earlier run left, and must not take these for them. Ctrl-C here
    hangs them up itself."""
    return attrs.evolve(settings, instance_id=f"{settings.instance_id}-cli-{pid}")


class _Unreachable(Exception):
    pass


def run_call(args: argparse.Namespace) -> int:
    settings = own_instance(load_settings(), os.getpid())
    configure_logging(settings.log_format, level=logging.CRITICAL)
    try:
        ticket = str(uuid.UUID(args.ticket))
    except ValueError:
        print(f"{PROG}: {args.ticket!r} is not a ticket id (a UUID, as `callcontrol_callback_"
              "requests.request_uuid` and the callbacks API show it)", file=sys.stderr)  # fmt: skip
        return 1
    try:
        return trio.run(_run, settings, ticket, args.once)
    except DatabaseUnavailable as exc:
        print(f"{PROG}: {exc.for_the_admin()}", file=sys.stderr)
    except _Unreachable as exc:
        print(f"{PROG}: {exc} -- fix: check ESL_HOST, ESL_PORT and ESL_PASSWORD "
              "(callcontrol doctor)", file=sys.stderr)  # fmt: skip
    except (NotCallable, Refused, NoBox, TicketNotFound, MoveRefused) as exc:
        print(f"{PROG}: {_refusal(ticket, exc)}", file=sys.stderr)
    return 1


def _refusal(ticket: str, exc: Exception) -> str:
    if isinstance(exc, TicketNotFound):
        return f"there is no callback ticket {ticket}"
    if isinstance(exc, MoveRefused):
        return f"ticket {ticket} is {exc.current} now: someone else is calling it, or closed it"
    return str(exc)


async def _run(settings: Settings, ticket: str, once: bool) -> int:
    async with open_database(settings.database_url, PoolOptions(min_size=1, max_size=2)) as db:
        # what is wrong with the ticket is said before FreeSWITCH is asked anything
        ticket_row = await clicktocall.load_ticket(db, ticket)
        why = ticket_row.why_not_callable()
        if why is not None:
            raise NotCallable(ticket, why)
        box = await _agents_box(settings, ticket_row)
        where = box.name
        try:
            with trio.fail_after(CONNECT_TIMEOUT_SECONDS):
                stream = await trio.open_tcp_stream(box.host, box.port)
        except (OSError, trio.TooSlowError) as exc:
            raise _Unreachable(f"cannot reach FreeSWITCH's Event Socket at {where}: "
                               f"{exc.strerror if isinstance(exc, OSError) else 'no answer'}"
                               ) from None  # fmt: skip
        try:
            async with clicktocall.session(stream, settings.esl_password) as conn:
                c2c = ClickToCall(db, conn, settings, on_attempt=_tell, on_step=_say)
                _say(_heading(ticket_row, settings))
                reports = [await c2c.attempt(ticket)] if once else await c2c.call(ticket)
                if once:
                    _tell(reports[0], retried_here=False)
        except CommandError as exc:
            raise _Unreachable(f"FreeSWITCH at {where} refused the Event Socket login "
                               f"({exc})") from None  # fmt: skip
        except ConnectionClosed as exc:
            raise _Unreachable(f"FreeSWITCH at {where} closed the Event Socket ({exc})"
                               ) from None  # fmt: skip
    last = reports[-1]
    print(f"ticket {ticket}: {_final(last)}")
    return 0 if last.decision.status is TicketStatus.COMPLETED else 1


async def _agents_box(settings: Settings, ticket: clicktocall.Ticket) -> EslBox:
    """The box to call through: the only one, or the one the agent is registered on."""
    boxes = settings.esl_boxes
    if len(boxes) == 1:
        return boxes[0]
    read: dict[EslBox, Snapshot | None] = {}

    async def ask(box: EslBox) -> None:
        read[box] = None
        with trio.move_on_after(CONNECT_TIMEOUT_SECONDS):
            try:
                stream = await trio.open_tcp_stream(box.host, box.port)
                async with clicktocall.session(stream, settings.esl_password) as conn:
                    read[box] = await clicktocall.read_snapshot(conn)
            except (OSError, CommandError, ConnectionClosed):
                pass  # that box's agents are UNKNOWN: said below if it matters

    async with trio.open_nursery() as nursery:
        for box in boxes:
            nursery.start_soon(ask, box)
    merged = merge([(box.name, read[box]) for box in boxes], {})
    extension, domain = str(ticket.extension), str(ticket.domain_name)
    name = merged.box_of(extension, domain) if merged is not None else None
    if name is None:
        raise NoBox(ticket.request_uuid, extension, availability(merged, extension, domain))
    _say(f"the agent's extension {extension} is registered on {name}: calling through it")
    return next(box for box in boxes if box.name == name)


def _say(text: str) -> None:
    print(text, flush=True)


def _heading(ticket: clicktocall.Ticket, settings: Settings) -> str:
    who = f"{ticket.caller_name} ({ticket.phone_number})" if ticket.caller_name \
        else ticket.phone_number  # fmt: skip
    agent = f"{ticket.destination_name} (ramal {ticket.extension})" if ticket.destination_name \
        else f"ramal {ticket.extension}"  # fmt: skip
    return (f"calling {who} back for {agent} at {ticket.domain_name}, "
            f"{settings.callback_call_order}")  # fmt: skip


def _tell(report: AttemptReport, *, retried_here: bool = True) -> None:
    plan = report.plan
    line = f"  attempt {plan.attempt} of {plan.attempts_allowed}: {report.words}"
    if report.decision.retry_in is not None:
        at = datetime.now(UTC) + timedelta(seconds=report.decision.retry_in)
        what = "trying again" if retried_here else "due again"
        line += f" -- {what} in {int(report.decision.retry_in)} s ({at:%H:%M:%S} UTC)"
    _say(line)


def _final(report: AttemptReport) -> str:
    status = report.decision.status
    if status is TicketStatus.COMPLETED:
        return "completed"
    if status is TicketStatus.PENDING:
        if report.decision.retry_in is not None:
            return ("pending, due again after the retry delay (serve's scanner tells the agent "
                    "then)")  # fmt: skip
        return "pending (not counted as an attempt)"
    if status is TicketStatus.FAILED:
        return "failed: the agent never answered; no attempt left"
    return "needs_review: the customer never answered; a person decides what next"
