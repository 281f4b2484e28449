"""The callbacks as ``callcontrol serve`` runs them: a sibling of the call handlers.

``run_callbacks`` owns, in its own nursery, one persistent inbound Event Socket connection to
each FreeSWITCH box (``ESL_HOST``, one or several, ``ESL_PORT``/``ESL_PASSWORD``, each
reconnecting with its own backoff), the ``AvailabilityMonitor`` of each fed by its events
(``availability.Boxes``: one merged snapshot), and the ``Scanner`` loop, woken at once when a
phone registers or a call hangs up on any box, and the ``CallStarter``: click-to-call for each
``ready_to_call`` ticket the scanner finds with its agent free, over the connection of the box
the agent's extension is registered on (both legs on that box). Each of them is kept
running: one that raises is logged (``callbacks.task_failed``) and started again after a pause,
so nothing here can take ``serve`` or a call down. Cancelling the nursery (SIGTERM: ``serve``
returns after the drain) stops them; a scan cut short leaves the tickets as they were (its
transactions roll back); a click-to-call cut short hangs up its legs not yet bridged and puts
its ticket back to ``pending``.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import attrs
import trio

from callcontrol.callbacks import clicktocall
from callcontrol.callbacks.availability import AvailabilityMonitor, Boxes, availability
from callcontrol.callbacks.scanner import DueTicket, Notify, Scanner
from callcontrol.callbacks.tickets import MoveRefused, TicketNotFound
from callcontrol.config import Settings
from callcontrol.db.database import Database, DatabaseUnavailable
from callcontrol.esl import ConnectionClosed
from callcontrol.esl.connection import EslConnection
from callcontrol.esl.inbound import InboundClient
from callcontrol.logs import get_logger
from callcontrol.metrics import Metrics

RESTART_AFTER_SECONDS = 5.0

_log = get_logger("callcontrol.callbacks")


@attrs.define(eq=False)
class Callbacks:
    """What ``run_callbacks`` started (for ``/readyz``-style questions and tests)."""

    boxes: Boxes
    scanner: Scanner
    caller: CallStarter

    @property
    def client(self) -> InboundClient:
        """The first box's connection (the only one with one FreeSWITCH)."""
        return self.boxes.clients[self.boxes.names[0]]


class CallStarter:
    """Click-to-call in tasks of its own (``run`` holds their nursery), one per ticket at a
    time in this process; each over the inbound connection to the agent's box live at its
    start."""

    def __init__(self, db: Database, boxes: Boxes, settings: Settings,
                 metrics: Metrics | None = None) -> None:  # fmt: skip
        self.db = db
        self.metrics = metrics
        self.boxes = boxes
        self.settings = settings
        self.calling: set[str] = set()
        self.finished: list[str] = []  # tickets whose click-to-call ended (tests, readiness)
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    async def initiate(self, request_uuid: str) -> str | None:
        """Click-to-call for one ticket now, asked for by the API: returns once the ticket is
        ``in_progress`` (claimed), with the agent leg's UUID (its origination_uuid), the call
        going on in the background; None when this process is calling that ticket already or
        is stopping. What stops it before the claim is raised to the caller as it is
        (``NotCallable``, ``Refused``, ``NoBox``, ``MoveRefused``, ``TicketNotFound``, no
        connection)."""
        if request_uuid in self.calling or self._nursery is None:
            return None
        agent_uuid = str(uuid_module.uuid4())
        self.calling.add(request_uuid)
        await self._nursery.start(self._initiated, request_uuid, agent_uuid)
        _log.info("callbacks.c2c_initiated", request_uuid=request_uuid, agent_leg=agent_uuid,
                  reason="asked for over the API")  # fmt: skip
        return agent_uuid

    async def _initiated(self, uuid: str, agent_uuid: str, *,
                         task_status: trio.TaskStatus[None]) -> None:  # fmt: skip
        claimed = False

        def on_claimed(_plan: clicktocall.Plan) -> None:
            nonlocal claimed
            if not claimed:
                claimed = True
                task_status.started()

        await self._call(uuid, agent_uuid, on_claimed=on_claimed,
                         raise_unclaimed=lambda: not claimed)  # fmt: skip

    async def __call__(self, ticket: DueTicket) -> None:
        uuid = ticket.request_uuid
        if uuid in self.calling or self._nursery is None:
            return  # already calling it; or stopping
        self.calling.add(uuid)
        self._nursery.start_soon(self._call, uuid)

    async def _call(
        self,
        uuid: str,
        agent_uuid: str | None = None,
        *,
        on_claimed: Callable[[clicktocall.Plan], None] | None = None,
        raise_unclaimed: Callable[[], bool] = lambda: False,
    ) -> None:
        """One ticket's click-to-call; ``raise_unclaimed()`` true: what stops it before its
        claim is raised (the API's caller waits for it) instead of logged."""
        try:
            async def connection() -> EslConnection:
                client = await self._agents_box(uuid)
                return await client.connection(timeout=clicktocall.KILL_TIMEOUT_SECONDS)

            await clicktocall.ClickToCall(
                self.db, await connection(), self.settings, metrics=self.metrics,
                on_claimed=on_claimed,
                # several boxes: each retry rings the agent where they are registered by then
                connection_for_retry=connection if len(self.boxes.names) > 1 else None,
            ).call(uuid, agent_uuid=agent_uuid)  # fmt: skip
        except (clicktocall.NotCallable, clicktocall.Refused, clicktocall.NoBox, MoveRefused,
                TicketNotFound) as exc:  # fmt: skip
            if raise_unclaimed():
                raise
            _log.info("callbacks.c2c_not_started", request_uuid=uuid, reason=str(exc))
        except (ConnectionClosed, trio.TooSlowError, DatabaseUnavailable) as exc:
            if raise_unclaimed():
                raise
            _log.warning("callbacks.c2c_interrupted", request_uuid=uuid, error=repr(exc),
                         effect="the ticket is tried again when the scanner next finds it "
                                "ready_to_call")  # fmt: skip
        except Exception as exc:  # a bug must not stop the other calls, nor serve
            if raise_unclaimed():
                raise
            _log.error("callbacks.c2c_failed", request_uuid=uuid, error=repr(exc),
                       exc_info=True)  # fmt: skip
        finally:
            self.calling.discard(uuid)
            self.finished.append(uuid)

    async def _agents_box(self, request_uuid: str) -> InboundClient:
        """The connection to the box the ticket's agent is registered on: both legs are
        originated there (the customer's through that box's outbound routes). With one box,
        that one: the attempt's own double-check says whether the agent can be rung."""
        boxes = self.boxes
        if len(boxes.names) == 1:
            return boxes.clients[boxes.names[0]]
        ticket = await clicktocall.load_ticket(self.db, request_uuid)
        why = ticket.why_not_callable()
        if why is not None:
            raise clicktocall.NotCallable(request_uuid, why)
        extension, domain = str(ticket.extension), str(ticket.domain_name)
        snapshot = await boxes.snapshot()
        box = snapshot.box_of(extension, domain) if snapshot is not None else None
        if box is None:
            now = availability(snapshot, extension, domain)
            _log.info("callbacks.c2c_no_box", request_uuid=request_uuid, extension=extension,
                      domain=domain, availability=now.value,
                      reason="no box of ESL_HOST has the agent's extension registered")
            raise clicktocall.NoBox(request_uuid, extension, now)
        _log.info("callbacks.c2c_box", request_uuid=request_uuid, box=box, extension=extension,
                  reason="the agent's extension is registered there")  # fmt: skip
        return boxes.clients[box]


def build_callbacks(
    settings: Settings,
    db: Database,
    metrics: Metrics | None = None,
    *,
    notify: Notify | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callbacks:
    boxes = Boxes.connect(
        settings,
        # before the monitor's: every word after CUSTOM is read as a subclass name
        events=[*clicktocall.EVENTS, *AvailabilityMonitor.events()],
        used_for="callbacks: which agents are free, click-to-call",
    )  # fmt: skip
    caller = CallStarter(db, boxes, settings, metrics)
    scanner = Scanner(db, boxes.snapshot, settings, clock=clock, notify=notify,
                      start_call=caller, wake=lambda: boxes.freed, metrics=metrics,
                      boxes=boxes.names)  # fmt: skip
    return Callbacks(boxes, scanner, caller)


async def run_callbacks(
    callbacks: Callbacks, *, task_status: trio.TaskStatus[Callbacks] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the inbound connection, the monitor and the scanner until cancelled."""
    _log.info("callbacks.started", esl=",".join(callbacks.boxes.names),
              check_interval_ms=callbacks.scanner.settings.callback_check_interval_ms)  # fmt: skip
    # The connection outlives the rest: a click-to-call stopped by SIGTERM hangs up its legs
    # over it before it closes.
    connection = trio.CancelScope(shield=True)

    async def keep_connected() -> None:
        with connection:
            await keep_running("esl_inbound", callbacks.boxes.run_clients)

    async with trio.open_nursery() as outer:
        outer.start_soon(keep_connected)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(keep_running, "availability", callbacks.boxes.run_monitors)
                nursery.start_soon(keep_running, "click_to_call", callbacks.caller.run)
                nursery.start_soon(keep_running, "scanner", callbacks.scanner.run)
                task_status.started(callbacks)
        finally:
            connection.cancel()


async def keep_running(
    name: str, run: Callable[[], Awaitable[object]], pause: float = RESTART_AFTER_SECONDS
) -> None:
    """``run()`` again and again: an error is logged with its traceback, never raised."""
    while True:
        try:
            await run()
            _log.error("callbacks.task_failed", task=name, error="returned",
                       restart_in_seconds=pause)  # fmt: skip
        except Exception as exc:
            _log.error("callbacks.task_failed", task=name, error=repr(exc),
                       restart_in_seconds=pause, exc_info=True)  # fmt: skip
        await trio.sleep(pause)
