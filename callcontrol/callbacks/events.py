"""Ticket events for the agents' consoles: what changed, told to whoever watches, live.

Theory of operation. The database announces every committed change of a ticket (migration 014's
triggers: ``NOTIFY callcontrol_tickets``, one statement's changes in small JSON payloads),
whichever process or ``serve`` instance made it: the secretary storing it, the scanner notifying
its agent, an agent snoozing or cancelling it, click-to-call moving it. One ``TicketListener``
per API process LISTENs on that channel and hands each change to the ``EventHub``, which numbers
it and gives it to every subscriber whose ``Watch`` (a domain, perhaps some extensions) it
concerns. An event the hub cannot be sure it delivered is never silently lost: a subscriber that
falls behind (its bounded buffer is full), a listener that lost its connection (NOTIFYs sent
meanwhile are gone) and a reconnecting client whose ``Last-Event-ID`` is older than the hub
remembers each get a ``resync`` event instead, which says "read the list again". Nothing here
waits for a slow subscriber: publishing never blocks, so the listener (and the scanner behind
it) go on.

``encode`` turns an event into the server-sent-events wire text (``id:``, ``event:``,
``data:``); the HTTP side (``api.events``) only streams it.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import psycopg
import trio

from callcontrol.logs import get_logger
from callcontrol.metrics import Metrics

CHANNEL = "callcontrol_tickets"
BUFFER = 64  # events a subscriber may fall behind by before it is told to resync
REMEMBERED = 256  # events kept for a client that reconnects with Last-Event-ID
RECONNECT_SECONDS = (1.0, 2.0, 5.0, 10.0)

_log = get_logger("callcontrol.callbacks.events")


@attrs.frozen
class TicketChange:
    """One committed change of a ticket, as the trigger announced it."""

    request_uuid: str
    change: str  # created | status | notified (told again) | rescheduled
    status: str
    previous_status: str | None
    kind: str
    domain_uuid: uuid.UUID | None
    extension: str | None  # the ticket's agent (its own, else its destination's)
    notification_count: int = 0
    scheduled_at: str | None = None
    caller_number: str | None = None
    caller_name: str | None = None
    reason: str | None = None
    at: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.request_uuid, "change": self.change, "status": self.status,
                "previous_status": self.previous_status, "kind": self.kind,
                "domain_uuid": None if self.domain_uuid is None else str(self.domain_uuid),
                "extension": self.extension, "notification_count": self.notification_count,
                "scheduled_at": self.scheduled_at, "caller_number": self.caller_number,
                "caller_name": self.caller_name, "reason": self.reason,
                "at": self.at}  # fmt: skip


def parse_payload(payload: str, schema: str) -> list[TicketChange]:
    """The changes a NOTIFY payload announces (one statement's, in order: migration 014); none
    when it is another schema's (another deployment, another test on the same database)."""
    try:
        found = json.loads(payload)
    except ValueError as exc:
        _log.warning("events.bad_payload", error=repr(exc), channel=CHANNEL)
        return []
    if not isinstance(found, dict) or found.get("schema") != schema:
        return []
    changes = found.get("changes")
    return [c for c in map(_change, changes if isinstance(changes, list) else [found])
            if c is not None]  # fmt: skip


def _change(found: object) -> TicketChange | None:
    if not isinstance(found, dict):
        _log.warning("events.bad_payload", error="a change that is not an object",
                     channel=CHANNEL)  # fmt: skip
        return None
    try:
        domain = found.get("domain_uuid")
        return TicketChange(
            request_uuid=str(found["id"]), change=str(found["change"]),
            status=str(found["status"]), previous_status=_text(found.get("previous_status")),
            kind=str(found["kind"]), domain_uuid=uuid.UUID(domain) if domain else None,
            extension=_text(found.get("extension")),
            notification_count=int(found.get("notification_count") or 0),
            scheduled_at=_text(found.get("scheduled_at")),
            caller_number=_text(found.get("caller_number")),
            caller_name=_text(found.get("caller_name")), reason=_text(found.get("reason")),
            at=_text(found.get("at")),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError) as exc:
        _log.warning("events.bad_payload", error=repr(exc), channel=CHANNEL)
        return None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@attrs.frozen
class Event:
    """What a subscriber receives: ``ticket`` (with its change) or ``resync`` (with why)."""

    id: str
    name: str
    change: TicketChange | None = None
    reason: str | None = None

    def data(self) -> dict[str, Any]:
        if self.change is not None:
            return self.change.as_json()
        return {"reason": self.reason}


@attrs.frozen
class Watch:
    """What one subscriber is shown: one domain's tickets; ``extensions`` None: all of them,
    else only those whose agent is one of these (an agent's own)."""

    domain_uuid: uuid.UUID
    extensions: frozenset[str] | None = None

    def sees(self, change: TicketChange) -> bool:
        if change.domain_uuid != self.domain_uuid:
            return False
        return self.extensions is None or change.extension in self.extensions


@attrs.define(eq=False)
class _Subscriber:
    watch: Watch
    send: trio.MemorySendChannel[Event]
    # the hub's own end of the subscriber's channel: to drop what it has not read yet
    backlog: trio.MemoryReceiveChannel[Event]


class EventHub:
    """Ticket changes to subscribers, in order, never blocking the publisher."""

    def __init__(self, *, buffer: int = BUFFER, remembered: int = REMEMBERED,
                 metrics: Metrics | None = None) -> None:  # fmt: skip
        # ids are "<epoch>-<n>": a Last-Event-ID from before a restart is recognised as such
        self.epoch = secrets.token_hex(4)
        self._next = 1
        self._buffer = buffer
        self._recent: deque[Event] = deque(maxlen=remembered)
        self._subscribers: list[_Subscriber] = []
        self.resyncs = 0  # resync events sent (tests, metrics)
        self.left = trio.Event()  # set (and replaced) when a subscriber leaves
        self.metrics = metrics

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _new_id(self) -> str:
        ident = f"{self.epoch}-{self._next}"
        self._next += 1
        return ident

    def publish(self, change: TicketChange) -> Event:
        event = Event(self._new_id(), "ticket", change)
        self._recent.append(event)
        for sub in list(self._subscribers):
            if sub.watch.sees(change):
                self._deliver(sub, event)
        return event

    def resync(self, reason: str) -> None:
        """Tell every subscriber that changes may have been missed (read the list again)."""
        for sub in list(self._subscribers):
            self._deliver(sub, self._resync(reason))

    def _resync(self, reason: str) -> Event:
        self.resyncs += 1
        if self.metrics is not None:
            self.metrics.console_resyncs.labels(reason=reason).inc()
        return Event(self._new_id(), "resync", reason=reason)

    def _deliver(self, sub: _Subscriber, event: Event) -> None:
        try:
            sub.send.send_nowait(event)
        except trio.WouldBlock:
            self._behind(sub)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # it is leaving (unsubscribe removes it)

    def _behind(self, sub: _Subscriber) -> None:
        # Full: the subscriber is behind. What it has not read is dropped and replaced by
        # one resync, which a console answers by reading the list again.
        while True:
            try:
                sub.backlog.receive_nowait()
            except trio.WouldBlock:
                break
        _log.info("events.subscriber_behind", buffer=self._buffer, effect="told to resync")
        sub.send.send_nowait(self._resync("behind"))

    def missed_since(self, last_event_id: str, watch: Watch) -> list[Event]:
        """What a client that saw ``last_event_id`` missed, as far as the hub remembers; a
        resync when it cannot tell (another epoch, or older than it remembers)."""
        epoch, _, number = last_event_id.partition("-")
        remembered = list(self._recent)
        if epoch == self.epoch and number.isdigit():
            seen = int(number)
            oldest = int(remembered[0].id.partition("-")[2]) if remembered else self._next
            if seen + 1 >= oldest:
                return [e for e in remembered
                        if int(e.id.partition("-")[2]) > seen
                        and e.change is not None and watch.sees(e.change)]  # fmt: skip
        return [self._resync("reconnected")]

    @contextmanager
    def subscribe(
        self, watch: Watch, *, last_event_id: str | None = None
    ) -> Iterator[trio.MemoryReceiveChannel[Event]]:
        send, receive = trio.open_memory_channel[Event](self._buffer)
        sub = _Subscriber(watch, send, receive.clone())
        for event in self.missed_since(last_event_id, watch) if last_event_id else ():
            self._deliver(sub, event)
        self._subscribers.append(sub)
        if self.metrics is not None:
            self.metrics.console_streams.inc()
        try:
            with receive:
                yield receive
        finally:
            self._subscribers.remove(sub)
            if self.metrics is not None:
                self.metrics.console_streams.dec()
            send.close()
            sub.backlog.close()
            self.left.set()
            self.left = trio.Event()


# The schema callcontrol's tickets live in (the trigger names it in every payload).
_SCHEMA = ("SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
           " WHERE c.oid = 'callcontrol_callback_requests'::regclass")  # fmt: skip


class TicketListener:
    """LISTEN on the tickets' channel and publish what arrives, reconnecting with backoff.

    The connection is one of its own (LISTEN needs a session that stays), in autocommit. Its
    socket is waited on by trio itself, not in a thread: an idle listener costs nothing and
    is cancelled at once. A lost connection is logged, every subscriber is told to resync
    (what was announced meanwhile is lost), and it connects again."""

    def __init__(self, url: str, hub: EventHub) -> None:
        self.url = url
        self.hub = hub
        self.listening = trio.Event()  # set once LISTEN is in place (tests)
        self.connections = 0
        self.backend_pid: int | None = None  # its server process, while connected

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                schema, conn = await trio.to_thread.run_sync(self._connect,
                                                             abandon_on_cancel=True)
            except psycopg.Error as exc:
                pause = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                _log.warning("events.listen_failed", error=str(exc).strip(),
                             retry_in_seconds=pause)  # fmt: skip
                await trio.sleep(pause)
                continue
            failures = 0
            try:
                await self._listen(conn, schema)
            except psycopg.Error as exc:
                _log.warning("events.connection_lost", error=str(exc).strip(),
                             effect="consoles are told to read their lists again once it "
                                    "is back")  # fmt: skip
            finally:
                conn.close()
            await trio.sleep(RECONNECT_SECONDS[0])

    def _connect(self) -> tuple[str, psycopg.Connection[Any]]:
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5,
                               application_name="callcontrol events",
                               keepalives=1, keepalives_idle=30, keepalives_interval=10,
                               keepalives_count=3)  # fmt: skip
        try:
            row = conn.execute(_SCHEMA).fetchone()
            conn.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            conn.close()
            raise
        return str(row[0]) if row else "public", conn

    async def _listen(self, conn: psycopg.Connection[Any], schema: str) -> None:
        self.connections += 1
        self.backend_pid = conn.info.backend_pid
        if self.connections > 1:  # what was announced while it was away is lost
            self.hub.resync("database_restored")
        _log.info("events.listening", channel=CHANNEL, schema=schema)
        self.listening.set()
        pgconn = conn.pgconn
        while True:
            await trio.lowlevel.wait_readable(pgconn.socket)
            pgconn.consume_input()  # raises when the server went away
            while (notice := pgconn.notifies()) is not None:
                for change in parse_payload(notice.extra.decode(), schema):
                    self.hub.publish(change)


def encode(event: Event) -> bytes:
    """One server-sent event (``data`` is one line of JSON: no newline can split it)."""
    data = json.dumps(event.data(), ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.name}\ndata: {data}\n\n".encode()


def comment(text: str) -> bytes:
    """A comment line: clients ignore it, proxies see the connection is alive."""
    return f": {text}\n\n".encode()


def retry(milliseconds: int) -> bytes:
    """How long a client waits before it reconnects."""
    return f"retry: {milliseconds}\n\n".encode()
