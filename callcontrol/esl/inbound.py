"""The inbound side: we connect to FreeSWITCH's Event Socket (port 8021) and authenticate.

Used by the callback scanner and ``doctor`` for commands that are not about one call
(registrations, channels, click-to-call). The client keeps itself connected: after a drop it
reconnects with exponential backoff and full jitter (so a restarted FreeSWITCH is not hit by
every instance at the same instant) and subscribes again to the same events and filters.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio

from callcontrol.esl import _commands as commands
from callcontrol.esl._errors import CommandError, ConnectionClosed
from callcontrol.esl._frames import Event
from callcontrol.esl.connection import BackgroundJob, EslConnection, SubscriberOverflow
from callcontrol.logs import get_logger


class AuthenticationFailed(Exception):
    """FreeSWITCH refused the Event Socket password."""


@attrs.frozen
class Backoff:
    """Delays between reconnect attempts: ``base * 2**n`` capped at ``cap``, full jitter."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.cap, self.base * (2 ** min(attempt, 16))))


class InboundClient:
    """A self-reconnecting inbound connection; run ``run()`` in a nursery."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        events: Sequence[str] = (),
        filters: Sequence[tuple[str, str]] = (),
        backoff: Backoff = Backoff(),
        connect_timeout: float = 5.0,
        event_buffer: int = 4096,
        rng: random.Random | None = None,
        used_for: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.port = port
        self._password = password
        self.events = tuple(events)
        self.filters = tuple(filters)
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self._rng = rng or random.Random()
        log: Any = get_logger("callcontrol.esl.inbound", host=host, port=port)
        # which part of callcontrol this connection serves, for an admin reading the warning
        self.log: Any = log.bind(used_for=used_for) if used_for else log
        self._conn: EslConnection | None = None
        self._connected = trio.Event()
        self._event_send, self.event_stream = trio.open_memory_channel[Event](event_buffer)
        self.connections = 0
        self.attempts = 0
        self.auth_failures = 0
        self.dropped_events = 0
        self._changed = trio.Event()
        self._in_outage = False  # an attempt failed or the connection dropped since it was up
        self._clock = clock
        # wall-clock seconds since when the client is connected, or not (since run() started,
        # or since the connection dropped); None before run() (for /readyz)
        self.since: float | None = None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        """Wait for the next attempt, connection or drop (for monitors and tests)."""
        await self._changed.wait()

    @property
    def changed(self) -> trio.Event:
        """Set at the next attempt, connection or drop: taken before looking at ``connected``,
        a change in between is not missed (``wait_changed`` would)."""
        return self._changed

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed.is_set()

    @property
    def in_outage(self) -> bool:
        """Not connected, and known to be down (not merely still connecting at start)."""
        return self._in_outage and not self.connected

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve, reconnect forever (until cancelled)."""
        task_status.started()
        self.since = self._clock()
        attempt = 0
        while True:
            self.attempts += 1
            connections = self.connections
            try:
                await self._serve_once()
            except AuthenticationFailed:
                self.auth_failures += 1
                self._in_outage = True
                self.log.error("esl.inbound.auth_failed")
            except (OSError, ConnectionClosed, trio.TooSlowError, CommandError,
                    SubscriberOverflow) as exc:  # fmt: skip
                if self.connections != connections:
                    attempt = 0  # it was up: a new outage, the backoff starts again
                # One warning per outage; the retries that follow while FreeSWITCH stays away
                # are info lines (its users raise their own alerts when it matters to them).
                level = self.log.warning if attempt == 0 else self.log.info
                level("esl.inbound.disconnected", error=repr(exc), attempt=attempt)
            self._in_outage = True
            self._notify()
            if self.connections != connections:
                attempt = 0
            delay = self.backoff.delay(attempt, self._rng)
            attempt += 1
            self.log.info("esl.inbound.reconnect_in", seconds=round(delay, 3))
            await trio.sleep(delay)

    async def _serve_once(self) -> None:
        with trio.fail_after(self.connect_timeout):
            stream = await trio.open_tcp_stream(self.host, self.port)
        conn = EslConnection(stream, log=self.log)
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            await nursery.start(conn.run)
            try:
                await self._login_and_serve(conn)
            except (AuthenticationFailed, ConnectionClosed, trio.TooSlowError, CommandError,
                    SubscriberOverflow) as exc:  # fmt: skip
                # kept and raised outside the nursery, which would wrap it in a group
                failure = exc
            finally:
                if self._conn is conn:
                    self.since = self._clock()  # it was up until now
                self._conn = None
                self._connected = trio.Event()
                # Shielded, and before cancelling: an await in a cancelled scope would raise
                # Cancelled here and swallow the error that brought us here.
                with trio.CancelScope(shield=True):
                    await conn.aclose()
                nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure
        raise ConnectionClosed(conn.close_reason or "connection ended")

    async def _login_and_serve(self, conn: EslConnection) -> None:
        with trio.fail_after(self.connect_timeout):
            await conn.wait_greeting()
            reply = await conn.send(commands.auth(self._password))
        if not reply.ok:
            raise AuthenticationFailed(reply.reply_text)
        await self._subscribe(conn)
        self.connections += 1
        self._conn = conn
        self._in_outage = False
        self.since = self._clock()
        self._connected.set()
        self._notify()
        self.log.info("esl.inbound.connected", connections=self.connections)
        async with conn.subscribe() as events:
            async for event in events:
                self._forward(event)

    async def _subscribe(self, conn: EslConnection) -> None:
        if self.events:
            await conn.send_ok(commands.event("plain", self.events))
        for header, value in self.filters:
            await conn.send_ok(commands.filter_add(header, value))

    def _forward(self, event: Event) -> None:
        try:
            self._event_send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped_events += 1
            if self.dropped_events % 1000 == 1:
                self.log.error("esl.inbound.events_dropped", total=self.dropped_events)

    async def connection(self, timeout: float = 10.0) -> EslConnection:
        """The live connection, waiting up to ``timeout`` for one."""
        with trio.fail_after(timeout):
            while True:
                conn = self._conn
                if conn is not None and not conn.closed.is_set():
                    return conn
                await self._connected.wait()

    async def api(self, command: str, *args: str, timeout: float = 10.0) -> str:
        conn = await self.connection(timeout)
        return await conn.api(command, *args)

    async def bgapi(
        self, command: str, *args: str, job_uuid: str | None = None, timeout: float = 10.0
    ) -> BackgroundJob:
        conn = await self.connection(timeout)
        return await conn.bgapi(command, *args, job_uuid=job_uuid)
