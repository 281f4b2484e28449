"""Click-to-call: a callback ticket made into a real call between the agent and the customer.

One attempt, agent first (``CALLBACK_CALL_ORDER=agent-first``, the default):

1. the ticket is read with its agent's extension and domain; every value that goes into a dial
   string is checked first (``handoff.dialstring``): a number or an extension that could not
   be dialled safely sends the ticket to ``needs_review`` before any command reaches
   FreeSWITCH;
2. availability is checked again (the scanner's answer may be a minute old): an agent who is
   not AVAILABLE now is not rung;
3. the ticket moves to ``in_progress`` (which also claims it: a second caller of the same ticket
   is refused by ``tickets.change_status``), with its attempt row (migration 008);
4. ``bgapi originate {origination_uuid=<a>,originate_timeout=N,ignore_early_media=true,
   origination_caller_id_number=<customer>,origination_caller_id_name='Retorno - <reason>',
   callcontrol_ticket=<id>,callcontrol_leg=agent,callcontrol_instance=<id>}
   user/<ext>@<domain> &park()``; its BACKGROUND_JOB (``+OK`` / ``-ERR <cause>``) says whether
   the agent answered;
5. the customer's leg the same way, parked: ``loopback/<number>/<domain>`` (into the domain's
   dialplan context, so its outbound routes dial it, as external destinations are today) or,
   with ``CALLBACK_GATEWAY``, ``sofia/gateway/<gateway>/<number>``. The number is dialled as
   the ticket stores it (E.164, ``+5511…``);
6. ``uuid_bridge <agent> <customer>``; the ticket stays ``in_progress`` while they talk and is
   ``completed`` at the first hangup, with the duration in the attempt row.

``customer-first`` swaps 4 and 5 (the customer waits in silence while the agent rings).

Nothing leaks: a second leg that fails, a first leg that hangs up while the second rings, a
bridge FreeSWITCH refuses, or this task being cancelled (Ctrl-C, SIGTERM) kills every leg not
yet bridged (``uuid_kill``). A bridged call is a conversation and is left alone.

After an attempt that did not connect them (agent busy / no answer / unavailable, customer busy
/ no answer, …) the ticket goes back to ``pending`` with the attempt counted and
``scheduled_at`` = now + the domain's ``CALLBACK_RETRY_DELAY_SECONDS``, and ``call`` tries
again after that delay, up to the ticket's ``max_attempts`` in all (1 + the domain's
``CALLBACK_RETRY_ATTEMPTS`` when the ticket was taken: changing the setting later does not
change what a waiting caller was promised). Then: ``failed`` when it was the agent's side
that never answered, ``needs_review`` when the customer never did (a person decides). A task
stopped during the wait leaves the ticket ``pending`` at its new time: nothing is lost.

Every decision is one log line (``callbacks.c2c_*``).
"""

from __future__ import annotations

import enum
import uuid as uuid_module
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import trio

from callcontrol.callbacks.availability import Availability, Snapshot, availability
from callcontrol.callbacks.domain_settings import for_domain
from callcontrol.callbacks.tickets import (
    AGENT_COLUMNS,
    AGENT_JOINS,
    MoveRefused,
    TicketNotFound,
    TicketStatus,
    change_status,
    may_move,
)
from callcontrol.config import Settings
from callcontrol.db.database import Connection, Database
from callcontrol.destinations.model import DestinationType
from callcontrol.esl import ConnectionClosed, ProtocolError, commands
from callcontrol.esl.connection import EslConnection, Subscription
from callcontrol.handoff.dialstring import (
    UnsafeDialStringValue,
    callback_dial_string,
    endpoint,
    originate_argument,
    usable_caller_id_number,
)
from callcontrol.handoff.outcomes import Outcome, outcome_for_cause
from callcontrol.logs import get_logger
from callcontrol.metrics import Metrics

BY = "click-to-call"
# The BACKGROUND_JOB of a leg comes at originate_timeout at the latest; past this much more,
# it was lost (the connection dropped and came back): the leg is killed, the attempt failed.
JOB_GRACE_SECONDS = 15.0
KILL_TIMEOUT_SECONDS = 5.0
# What the inbound connection must be subscribed to for click-to-call.
EVENTS = ("BACKGROUND_JOB", "CHANNEL_HANGUP_COMPLETE")

_log = get_logger("callcontrol.callbacks.clicktocall")
S = TicketStatus
T = TypeVar("T")


class CallOrder(enum.StrEnum):
    AGENT_FIRST = "agent-first"
    CUSTOMER_FIRST = "customer-first"


class Result(enum.StrEnum):
    """What one attempt came to (``callcontrol_callback_attempts.outcome``)."""

    BRIDGED = "bridged"
    AGENT_UNAVAILABLE = "agent_unavailable"
    AGENT_BUSY = "agent_busy"
    AGENT_NO_ANSWER = "agent_no_answer"
    AGENT_FAILED = "agent_failed"
    AGENT_HUNG_UP = "agent_hung_up"
    CUSTOMER_BUSY = "customer_busy"
    CUSTOMER_NO_ANSWER = "customer_no_answer"
    CUSTOMER_FAILED = "customer_failed"
    CUSTOMER_HUNG_UP = "customer_hung_up"
    BRIDGE_FAILED = "bridge_failed"
    CANCELLED = "cancelled"

    @property
    def agent_side(self) -> bool:
        return self.value.startswith("agent_") or self is Result.BRIDGE_FAILED


_WORDS = {
    Result.BRIDGED: "agent and customer were connected",
    Result.AGENT_UNAVAILABLE: "the agent's extension {ext} was not free ({why})",
    Result.AGENT_BUSY: "the agent's extension {ext} was busy",
    Result.AGENT_NO_ANSWER: "the agent's extension {ext} did not answer",
    Result.AGENT_FAILED: "the agent's extension {ext} could not be rung ({cause})",
    Result.AGENT_HUNG_UP: "the agent hung up before the customer answered",
    Result.CUSTOMER_BUSY: "the customer's number {number} was busy",
    Result.CUSTOMER_NO_ANSWER: "the customer's number {number} did not answer",
    Result.CUSTOMER_FAILED: "the customer's number {number} could not be called ({cause})",
    Result.CUSTOMER_HUNG_UP: "the customer hung up before the agent answered",
    Result.BRIDGE_FAILED: "FreeSWITCH refused to connect the two calls ({cause})",
    Result.CANCELLED: "the call was stopped before agent and customer were connected ({cause})",
}


class NotCallable(Exception):
    """The ticket is not one click-to-call may call now (its status, its kind, no agent)."""

    def __init__(self, request_uuid: str, why: str) -> None:
        super().__init__(f"ticket {request_uuid} cannot be called: {why}")
        self.why = why


class Refused(Exception):
    """A value of the ticket cannot go into a dial string; it went to needs_review."""

    def __init__(self, request_uuid: str, error: UnsafeDialStringValue) -> None:
        super().__init__(f"ticket {request_uuid}: {error}; it was sent to needs_review")
        self.error = error


class NoBox(Exception):
    """No FreeSWITCH box of ``ESL_HOST`` has the agent's extension registered: there is
    nowhere to ring it. ``availability`` says why: OFFLINE (registered nowhere), or UNKNOWN
    (a box it could be on cannot be asked). Nothing was claimed or dialled."""

    def __init__(self, request_uuid: str, extension: str, availability: Availability) -> None:
        where = ("a FreeSWITCH box it could be on cannot be asked"
                 if availability is Availability.UNKNOWN
                 else "no FreeSWITCH box has it registered")  # fmt: skip
        super().__init__(f"ticket {request_uuid}: the agent's extension {extension} cannot "
                         f"be rung: {where}")  # fmt: skip
        self.availability = availability


# -- the ticket and the plan (sans-IO) -----------------------------------------------------

# the fragments are constants of tickets.py: no input reaches this text
_TICKET = f"""
SELECT r.request_uuid::text AS request_uuid, r.kind, r.status, r.phone_number, r.caller_name,
       r.reason, r.attempts, r.max_attempts, r.destination_name,
       r.domain_uuid::text AS domain_uuid,
       e.outbound_caller_id_number AS agent_outbound_number,
       e.outbound_caller_id_name AS agent_outbound_name,
       {AGENT_COLUMNS}
  FROM callcontrol_callback_requests r{AGENT_JOINS}
 WHERE r.request_uuid = %s
"""  # noqa: S608


@attrs.frozen
class Ticket:
    request_uuid: str
    kind: str
    status: str
    phone_number: str
    caller_name: str | None
    reason: str | None
    attempts: int
    max_attempts: int  # its attempts in all, fixed when it was taken
    destination_name: str | None
    domain_uuid: str | None
    extension: str | None
    domain_name: str | None
    dnd: bool
    # what FusionPBX shows when this agent dials out (v_extensions.outbound_caller_id_*)
    agent_outbound_number: str | None = None
    agent_outbound_name: str | None = None

    def why_not_callable(self) -> str | None:
        if self.kind != "callback":
            return "it is a message, not a callback request"
        try:
            status = TicketStatus(self.status)
        except ValueError:
            return f"its status {self.status!r} is unknown"
        if not may_move(status, S.IN_PROGRESS):
            return f"it is {status.value}"
        if not self.extension or not self.domain_name:
            return "it has no agent's extension (a ring group's or a queue's ticket)"
        return None


async def load_ticket(db: Database, request_uuid: str) -> Ticket:
    row = await db.fetch_one(_TICKET, (request_uuid,))
    if row is None:
        raise TicketNotFound(request_uuid)
    return Ticket(**row)


@attrs.frozen
class Leg:
    role: str  # agent | customer
    uuid: str
    endpoint: str
    dial_string: str


@attrs.frozen
class Plan:
    ticket: Ticket
    order: CallOrder
    attempt: int  # 1-based
    attempts_allowed: int
    agent: Leg
    customer: Leg
    retry_delay_seconds: int = 60  # the domain's CALLBACK_RETRY_DELAY_SECONDS

    @property
    def first(self) -> Leg:
        return self.agent if self.order is CallOrder.AGENT_FIRST else self.customer

    @property
    def second(self) -> Leg:
        return self.customer if self.order is CallOrder.AGENT_FIRST else self.agent


def caller_id_name(ticket: Ticket) -> str:
    """What the agent's phone shows: ``Retorno - <reason>`` (dialstring keeps it safe)."""
    about = ticket.reason or ticket.caller_name
    return f"Retorno - {about}" if about else "Retorno"


def customer_caller_id_number(ticket: Ticket, settings: Settings) -> str | None:
    """What the customer's phone shows: CALLBACK_CALLER_ID_NUMBER, else what it would show if
    the agent dialled them from their own phone (their extension's outbound caller ID), else
    nothing (the gateway's or the route's own)."""
    return settings.callback_caller_id_number or usable_caller_id_number(
        ticket.agent_outbound_number)


def plan_call(
    ticket: Ticket, settings: Settings, *, new_uuid: Callable[[], str] = lambda: str(
        uuid_module.uuid4())
) -> Plan:
    """The two legs' dial strings; ``UnsafeDialStringValue`` when a value of the ticket (its
    number, extension or domain) or of the settings cannot be dialled as it is."""
    domain = str(ticket.domain_name)
    extension = str(ticket.extension)
    agent_uuid, customer_uuid = new_uuid(), new_uuid()
    common: dict[str, Any] = {
        "timeout_seconds": settings.callback_ring_timeout_seconds,
        "ticket_uuid": ticket.request_uuid,
        "instance": settings.instance_id,
    }
    agent = Leg("agent", agent_uuid, endpoint(DestinationType.EXTENSION, extension, domain),
                callback_dial_string(
                    DestinationType.EXTENSION, extension, domain, leg="agent",
                    origination_uuid=agent_uuid, caller_id_number=ticket.phone_number,
                    caller_id_name=caller_id_name(ticket), **common))  # fmt: skip
    gateway = settings.callback_gateway
    customer = Leg("customer", customer_uuid,
                   endpoint(DestinationType.EXTERNAL, ticket.phone_number, domain,
                            gateway=gateway),
                   callback_dial_string(
                       DestinationType.EXTERNAL, ticket.phone_number, domain, leg="customer",
                       origination_uuid=customer_uuid, gateway=gateway,
                       caller_id_number=customer_caller_id_number(ticket, settings),
                       caller_id_name=settings.callback_caller_id_name
                       or ticket.agent_outbound_name, **common))  # fmt: skip
    return Plan(ticket, CallOrder(settings.callback_call_order), ticket.attempts + 1,
                ticket.max_attempts, agent, customer,
                settings.callback_retry_delay_seconds)  # fmt: skip


def result_for_cause(role: str, cause: str) -> Result:
    """A leg that did not answer, by its hangup cause."""
    outcome = outcome_for_cause(cause)
    if outcome is Outcome.BUSY or outcome is Outcome.DND:
        kind = "busy"
    elif outcome is Outcome.NO_ANSWER:
        kind = "no_answer"
    else:
        kind = "failed"
    return Result(f"{role}_{kind}")


@attrs.frozen
class Decision:
    status: TicketStatus
    retry_in: float | None  # seconds until the next attempt; None: no more attempts
    counts: bool  # the attempt is counted in the ticket's attempts
    reason: str


def decide(result: Result, plan: Plan, words: str) -> Decision:
    """Where the ticket goes after an attempt (sans-IO)."""
    of = f"attempt {plan.attempt} of {plan.attempts_allowed}"
    if result is Result.BRIDGED:
        return Decision(S.COMPLETED, None, True, f"{words} ({of})")
    if result is Result.CANCELLED:
        return Decision(S.PENDING, None, False, f"{words}; not counted as an attempt")
    if plan.attempt < plan.attempts_allowed:
        delay = plan.retry_delay_seconds
        return Decision(S.PENDING, float(delay), True,
                        f"{words} ({of}); trying again in {delay} s")  # fmt: skip
    final = S.FAILED if result.agent_side else S.NEEDS_REVIEW
    return Decision(final, None, True, f"{words} ({of}); no attempt left")


# -- the attempt's rows -----------------------------------------------------------------------

_INSERT_ATTEMPT = """
INSERT INTO callcontrol_callback_attempts
    (request_uuid, attempt, call_order, agent_endpoint, customer_endpoint, agent_uuid,
     customer_uuid, instance)
VALUES (%(ticket)s, %(attempt)s, %(order)s, %(agent_endpoint)s, %(customer_endpoint)s,
        %(agent_uuid)s, %(customer_uuid)s, %(instance)s)
"""
_BRIDGED = """
UPDATE callcontrol_callback_attempts SET outcome = 'bridged', bridged_at = now()
 WHERE request_uuid = %s AND attempt = %s
"""
_END_ATTEMPT = """
UPDATE callcontrol_callback_attempts
   SET outcome = %(outcome)s, hangup_cause = %(cause)s, ended_at = now(),
       duration_seconds = %(duration)s
 WHERE request_uuid = %(ticket)s AND attempt = %(attempt)s
"""
_RETRY_AT = """
UPDATE callcontrol_callback_requests
   SET scheduled_at = now() + make_interval(secs => %(delay)s)
 WHERE request_uuid = %(ticket)s
"""


def _insert_attempt(plan: Plan, settings: Settings) -> Callable[[Connection], None]:
    def write(conn: Connection) -> None:
        conn.execute(_INSERT_ATTEMPT, {
            "ticket": plan.ticket.request_uuid, "attempt": plan.attempt,
            "order": plan.order.value, "agent_endpoint": plan.agent.endpoint,
            "customer_endpoint": plan.customer.endpoint, "agent_uuid": plan.agent.uuid,
            "customer_uuid": plan.customer.uuid, "instance": settings.instance_id})  # fmt: skip

    return write


# -- one attempt over the Event Socket ------------------------------------------------------


@attrs.frozen
class AttemptReport:
    plan: Plan
    result: Result
    cause: str | None
    duration_seconds: int | None
    decision: Decision
    words: str


@attrs.define
class _Call:
    """What one attempt learnt while it ran."""

    result: Result = Result.CANCELLED
    cause: str | None = None
    why_unavailable: str | None = None
    bridged_at: float | None = None
    duration: int | None = None


SnapshotOf = Callable[[], Awaitable[Snapshot | None]]


@asynccontextmanager
async def session(stream: trio.abc.Stream, password: str) -> AsyncIterator[EslConnection]:
    """An inbound Event Socket session on ``stream`` for click-to-call (``callcontrol callback
    call``): authenticated and subscribed to ``EVENTS``; closed when the block ends."""
    conn = EslConnection(stream, log=_log)
    error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        try:
            await conn.wait_greeting()
            await conn.send_ok(commands.auth(password))
            await conn.send_ok(commands.event("plain", EVENTS))
            yield conn
        except BaseException as exc:  # raised below, as it is: not in an exception group
            error = exc
        finally:
            with trio.CancelScope(shield=True):
                await conn.aclose()
            nursery.cancel_scope.cancel()
    if error is not None:
        raise error


async def read_snapshot(esl: EslConnection) -> Snapshot | None:
    """One availability snapshot over ``esl`` (None: FreeSWITCH could not say)."""
    try:
        registrations = await esl.api("show", "registrations", "as", "json")
        channels = await esl.api("show", "channels", "as", "json")
        return Snapshot.parse(registrations, channels)
    except (ConnectionClosed, ProtocolError, ValueError) as exc:
        _log.warning("callbacks.c2c_availability_unknown", error=repr(exc))
        return None


class ClickToCall:
    """Calls tickets back over one Event Socket connection subscribed to ``EVENTS``."""

    def __init__(
        self,
        db: Database,
        esl: EslConnection,
        settings: Settings,
        *,
        snapshot_of: SnapshotOf | None = None,
        on_attempt: Callable[[AttemptReport], None] | None = None,
        on_step: Callable[[str], None] | None = None,
        on_claimed: Callable[[Plan], None] | None = None,
        metrics: Metrics | None = None,
        connection_for_retry: Callable[[], Awaitable[EslConnection]] | None = None,
    ) -> None:
        self.db = db
        self.esl = esl
        self.settings = settings
        self.snapshot_of = snapshot_of or (lambda: read_snapshot(self.esl))
        # several boxes: a retry rings the agent where they are registered by then
        self.connection_for_retry = connection_for_retry
        self.on_attempt = on_attempt
        self.on_step = on_step  # each step in an admin's words (the CLI prints them)
        self.on_claimed = on_claimed  # each attempt, once its ticket is in_progress
        self.metrics = metrics
        self._live: set[str] = set()  # legs originated and not known to be gone or bridged

    async def call(self, request_uuid: str, *, agent_uuid: str | None = None
                   ) -> list[AttemptReport]:  # fmt: skip
        """Attempts until one connects them or none is left (waiting the retry delay between
        two); the reports in order. ``agent_uuid``: the first attempt's agent leg UUID, when
        it was promised beforehand (the API answers with it before the call starts)."""
        reports: list[AttemptReport] = []
        while True:
            report = await self.attempt(request_uuid, agent_uuid=agent_uuid)
            agent_uuid = None  # a retry is a new call: new legs
            reports.append(report)
            if self.on_attempt is not None:
                self.on_attempt(report)
            if report.decision.retry_in is None:
                return reports
            _log.info("callbacks.c2c_retry_wait", request_uuid=request_uuid,
                      seconds=report.decision.retry_in, next_attempt=report.plan.attempt + 1,
                      reason=report.words)  # fmt: skip
            await trio.sleep(report.decision.retry_in)
            if self.connection_for_retry is not None:
                self.esl = await self.connection_for_retry()

    async def attempt(self, request_uuid: str, *, agent_uuid: str | None = None
                      ) -> AttemptReport:  # fmt: skip
        """One attempt (module docstring); ``NotCallable``, ``Refused``, ``MoveRefused`` and
        ``TicketNotFound`` before any leg is rung."""
        ticket = await load_ticket(self.db, request_uuid)
        why = ticket.why_not_callable()
        if why is not None:
            _log.info("callbacks.c2c_not_callable", request_uuid=request_uuid, reason=why)
            raise NotCallable(request_uuid, why)
        own = await for_domain(self.db, self.settings, ticket.domain_uuid)
        try:
            plan = plan_call(ticket, own, new_uuid=_uuids(agent_uuid))
        except UnsafeDialStringValue as exc:
            await change_status(self.db, request_uuid, S.NEEDS_REVIEW, by=BY,
                                reason=f"cannot be dialled safely: {exc}")  # fmt: skip
            _log.warning("callbacks.c2c_refused", request_uuid=request_uuid, field=exc.field,
                         reason="a value of the ticket cannot go into a dial string",
                         effect="needs_review, nothing sent to FreeSWITCH")  # fmt: skip
            raise Refused(request_uuid, exc) from exc
        await change_status(self.db, request_uuid, S.IN_PROGRESS, by=BY,
                            reason=f"calling, {plan.order.value} (attempt {plan.attempt} of "
                                   f"{plan.attempts_allowed})",
                            also=_insert_attempt(plan, self.settings))  # fmt: skip
        self._count(S.IN_PROGRESS)
        if self.on_claimed is not None:
            self.on_claimed(plan)
        _log.info("callbacks.c2c_started", request_uuid=request_uuid, attempt=plan.attempt,
                  of=plan.attempts_allowed, order=plan.order.value, agent=plan.agent.endpoint,
                  customer=plan.customer.endpoint, agent_leg=plan.agent.uuid,
                  customer_leg=plan.customer.uuid, reason="the ticket may be called")  # fmt: skip
        call = _Call()
        try:
            await self._run(plan, call)
        except ConnectionClosed as exc:  # FreeSWITCH went away mid-attempt: no more to learn
            await self._stopped(plan, call, exc)
            return self._report(plan, call)
        except BaseException as exc:  # cancelled (Ctrl-C, SIGTERM): the legs first
            await self._stopped(plan, call, exc)
            raise
        return await self._finish(plan, call)

    async def _stopped(self, plan: Plan, call: _Call, exc: BaseException) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(4 * KILL_TIMEOUT_SECONDS):
            await self._kill_live("ORIGINATOR_CANCEL")
            # bridged: they talk on without us, and the ticket has done its job
            call.result = Result.BRIDGED if call.bridged_at is not None else Result.CANCELLED
            call.cause = _short(exc)
            await self._finish(plan, call)

    async def _run(self, plan: Plan, call: _Call) -> None:
        ticket = plan.ticket
        now = availability(await self.snapshot_of(), str(ticket.extension),
                           str(ticket.domain_name), dnd=ticket.dnd)  # fmt: skip
        if now is not Availability.AVAILABLE:
            call.result, call.why_unavailable = Result.AGENT_UNAVAILABLE, now.value
            _log.info("callbacks.c2c_agent_unavailable", request_uuid=ticket.request_uuid,
                      extension=ticket.extension, availability=now.value,
                      reason="double-checked before ringing anyone")  # fmt: skip
            return
        first, second = plan.first, plan.second
        async with self.esl.subscribe(first.uuid) as first_events, \
                self.esl.subscribe(second.uuid) as second_events:  # fmt: skip
            cause = await self._ring(plan, first)
            if cause is not None:
                call.result, call.cause = result_for_cause(first.role, cause), cause
                return
            hung_up, cause = await self._ring_while_up(plan, second, first, first_events)
            if hung_up is not None:  # the first leg hung up while the second rang
                call.result, call.cause = Result(f"{first.role}_hung_up"), hung_up
                await self._kill_live("ORIGINATOR_CANCEL")
                return
            if cause is not None:
                call.result, call.cause = result_for_cause(second.role, cause), cause
                await self._kill_live("NORMAL_CLEARING")
                return
            await self._bridge(plan, call, first_events, second_events)

    def _count(self, status: TicketStatus) -> None:
        if self.metrics is not None:
            self.metrics.callbacks.labels(status=status.value).inc()

    def _step(self, text: str) -> None:
        if self.on_step is not None:
            self.on_step(text)

    def _who(self, plan: Plan, leg: Leg) -> str:
        if leg.role == "agent":
            return f"the agent (ramal {plan.ticket.extension})"
        return f"the customer ({plan.ticket.phone_number})"

    async def _ring(self, plan: Plan, leg: Leg) -> str | None:
        """Originate ``leg`` and wait for its job: None when answered, else the cause."""
        self._live.add(leg.uuid)  # before sending: a cancel mid-send still kills it
        job = await self.esl.bgapi("originate", originate_argument(leg.dial_string))
        _log.info("callbacks.c2c_ringing", request_uuid=plan.ticket.request_uuid,
                  leg=leg.role, uuid=leg.uuid, endpoint=leg.endpoint,
                  timeout_seconds=self.settings.callback_ring_timeout_seconds)  # fmt: skip
        self._step(f"  ringing {self._who(plan, leg)}...")
        with trio.move_on_after(self.settings.callback_ring_timeout_seconds
                                + JOB_GRACE_SECONDS):  # fmt: skip
            text = (await job.result()).body_text.strip()
            if text.startswith("+OK"):
                _log.info("callbacks.c2c_answered", request_uuid=plan.ticket.request_uuid,
                          leg=leg.role, uuid=leg.uuid)  # fmt: skip
                self._step(f"  {self._who(plan, leg)} answered")
                return None
            self._live.discard(leg.uuid)
            cause = text.removeprefix("-ERR").strip() or "NORMAL_UNSPECIFIED"
            _log.info("callbacks.c2c_not_answered", request_uuid=plan.ticket.request_uuid,
                      leg=leg.role, uuid=leg.uuid, cause=cause)  # fmt: skip
            return cause
        _log.warning("callbacks.c2c_job_lost", request_uuid=plan.ticket.request_uuid,
                     leg=leg.role, uuid=leg.uuid, effect="the leg is killed")  # fmt: skip
        await self._kill_live("ORIGINATOR_CANCEL")
        return "JOB_LOST"

    async def _ring_while_up(
        self, plan: Plan, second: Leg, first: Leg, first_events: Subscription
    ) -> tuple[str | None, str | None]:
        """Ring ``second`` while watching ``first`` (answered, parked): (the first leg's hangup
        cause if it hung up meanwhile, cutting the ring short; the second leg's cause, None
        when it answered)."""
        async def watch() -> str | None:
            cause = await _hangup_cause(first_events)
            self._live.discard(first.uuid)
            _log.info("callbacks.c2c_hung_up", request_uuid=plan.ticket.request_uuid,
                      leg=first.role, uuid=first.uuid, cause=cause,
                      reason=f"while the {second.role} rang")  # fmt: skip
            return cause

        which, cause = await _first(lambda: self._ring(plan, second), watch)
        return (cause, None) if which == 1 else (None, cause)

    async def _bridge(self, plan: Plan, call: _Call, first_events: Subscription,
                      second_events: Subscription) -> None:  # fmt: skip
        ticket = plan.ticket.request_uuid
        reply = (await self.esl.api("uuid_bridge", plan.agent.uuid, plan.customer.uuid)).strip()
        if not reply.startswith("+OK"):
            call.result, call.cause = Result.BRIDGE_FAILED, reply[:120]
            _log.error("callbacks.c2c_bridge_failed", request_uuid=ticket, reply=reply[:120],
                       effect="both legs are killed")  # fmt: skip
            await self._kill_live("NORMAL_CLEARING")
            return
        call.bridged_at = trio.current_time()
        self._live.clear()  # a conversation now: never killed by us
        await self.db.execute(_BRIDGED, (ticket, plan.attempt))
        _log.info("callbacks.c2c_bridged", request_uuid=ticket, agent_leg=plan.agent.uuid,
                  customer_leg=plan.customer.uuid,
                  reason="both answered: the ticket stays in_progress while they talk")  # fmt: skip
        self._step("  connected: agent and customer are talking")
        which, cause = await _first(lambda: _hangup_cause(first_events),
                                    lambda: _hangup_cause(second_events))  # fmt: skip
        leg = plan.first if which == 0 else plan.second
        call.result, call.cause = Result.BRIDGED, cause
        call.duration = round(trio.current_time() - call.bridged_at)
        other = plan.customer if leg is plan.agent else plan.agent
        # FreeSWITCH ends the other side of a uuid_bridge itself; this makes sure of it
        reply = (await self.esl.api("uuid_kill", other.uuid, "NORMAL_CLEARING")).strip()
        _log.info("callbacks.c2c_ended", request_uuid=ticket, hung_up_first=leg.role,
                  cause=cause, duration_seconds=call.duration,
                  other_leg_kill=reply)  # fmt: skip

    async def _kill_live(self, cause: str) -> None:
        for uuid in sorted(self._live):
            with trio.move_on_after(KILL_TIMEOUT_SECONDS):
                try:
                    reply = (await self.esl.api("uuid_kill", uuid, cause)).strip()
                except (ConnectionClosed, ProtocolError) as exc:
                    reply = repr(exc)
                _log.info("callbacks.c2c_leg_killed", uuid=uuid, cause=cause, reply=reply,
                          reason="not bridged: never left ringing or parked")  # fmt: skip
        self._live.clear()

    def _report(self, plan: Plan, call: _Call) -> AttemptReport:
        words = _WORDS[call.result].format(
            ext=plan.ticket.extension, number=plan.ticket.phone_number,
            cause=call.cause or "-", why=(call.why_unavailable or "-").replace("_", " "))
        if call.result is Result.BRIDGED and call.duration is not None:
            words += f"; they talked for {_duration(call.duration)}"
        decision = decide(call.result, plan, words)
        return AttemptReport(plan, call.result, call.cause, call.duration, decision, words)

    async def _finish(self, plan: Plan, call: _Call) -> AttemptReport:
        report = self._report(plan, call)
        decision = report.decision
        ticket = plan.ticket.request_uuid

        def write(conn: Connection) -> None:
            conn.execute(_END_ATTEMPT, {"outcome": call.result.value, "cause": call.cause,
                                        "duration": call.duration, "ticket": ticket,
                                        "attempt": plan.attempt})  # fmt: skip
            if decision.retry_in is not None:
                conn.execute(_RETRY_AT, {"delay": decision.retry_in, "ticket": ticket})

        try:
            await change_status(self.db, ticket, decision.status, by=BY,
                                reason=decision.reason, attempt=decision.counts,
                                also=write)  # fmt: skip
        except MoveRefused as exc:  # someone closed it by hand meanwhile: theirs wins
            _log.warning("callbacks.c2c_outcome_not_stored", request_uuid=ticket,
                         error=str(exc), outcome=call.result.value)  # fmt: skip
            return report
        self._count(decision.status)
        _log.info("callbacks.c2c_attempt_done", request_uuid=ticket, attempt=plan.attempt,
                  outcome=call.result.value, cause=call.cause, status=decision.status.value,
                  retry_in_seconds=decision.retry_in, reason=decision.reason)  # fmt: skip
        return report


def _uuids(first: str | None) -> Callable[[], str]:
    """New leg UUIDs, the first one ``first`` when given (plan_call asks for the agent's first)."""
    given = [first] if first else []
    return lambda: given.pop() if given else str(uuid_module.uuid4())


async def _first(*runs: Callable[[], Awaitable[T]]) -> tuple[int, T]:
    """Run ``runs`` at once until one returns: (its index, its value). The others are
    cancelled; an error is raised as it is, not wrapped in an exception group."""
    done: list[tuple[int, T]] = []
    failed: list[Exception] = []
    async with trio.open_nursery() as nursery:
        for index, run in enumerate(runs):

            async def one(index: int = index, run: Callable[[], Awaitable[T]] = run) -> None:
                try:
                    done.append((index, await run()))
                except Exception as exc:  # raised below, unwrapped
                    failed.append(exc)
                nursery.cancel_scope.cancel()

            nursery.start_soon(one)
    if failed:
        raise failed[0]
    return done[0]


async def _hangup_cause(events: Subscription) -> str:
    async for event in events:
        if event.name == "CHANNEL_HANGUP_COMPLETE":
            return event.get("Hangup-Cause") or "NORMAL_CLEARING"
    raise ConnectionClosed("the Event Socket closed while a leg was watched")


def _duration(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _short(exc: BaseException) -> str:
    if isinstance(exc, trio.Cancelled):
        return "stopped"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")
