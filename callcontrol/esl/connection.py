"""One Event Socket connection on trio: the thin shell around the sans-IO core.

Theory of operation
-------------------
A single reader task turns received bytes into frames and routes each one:

* ``command/reply`` and ``api/response`` answer the oldest command still waiting: FreeSWITCH
  answers the commands of one connection strictly in order, so replies are matched FIFO. A
  sender appends its reply slot and writes its bytes under one lock, so the slot order is the
  wire order even when many tasks send at once.
* ``BACKGROUND_JOB`` events complete the ``bgapi`` job with the same ``Job-UUID``;
  ``CHANNEL_EXECUTE_COMPLETE`` completes the ``sendmsg execute`` whose ``Event-UUID`` came back
  as ``Application-UUID``. Both are also delivered to subscribers like any other event.
* Every event goes to the subscribers of its ``Unique-ID`` and to the catch-all subscribers
  (to those of them that asked for its name, when they named the events they want).
  Subscriber buffers are bounded: a consumer that falls that far behind is cut off with
  ``SubscriberOverflow`` (and a log line) instead of stalling the reader or growing memory.
* ``text/disconnect-notice`` with ``Content-Disposition: linger`` sets ``lingering``; any other
  disconnect notice, EOF or a ``ProtocolError`` closes the connection: every waiter gets
  ``ConnectionClosed`` and ``closed`` is set.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import trio

from callcontrol import generated
from callcontrol.esl import _commands as commands
from callcontrol.esl._errors import CommandError, ConnectionClosed, ProtocolError
from callcontrol.esl._frames import (
    API_RESPONSE,
    AUTH_REQUEST,
    COMMAND_REPLY,
    DISCONNECT_NOTICE,
    Event,
    Frame,
)
from callcontrol.esl._reader import FrameReader
from callcontrol.logs import get_logger

RECEIVE_SIZE = 65536


class SubscriberOverflow(Exception):
    """The subscriber fell more than its buffer behind; its events were cut off."""


class _Slot:
    """A one-shot result: a reply, a job result or an execute completion.

    The waiting tasks are parked on the slot itself (``wait_task_rescheduled``), without a
    ``trio.Event`` and its parking lot: a call makes a few dozen slots, most of them waited
    on by one task, once."""

    __slots__ = ("_done", "_waiters", "error", "value")

    def __init__(self) -> None:
        self._done = False
        self._waiters: list[trio.lowlevel.Task] | None = None
        self.value: Any = None
        self.error: BaseException | None = None

    def set(self, value: Any) -> None:
        if not self._done:
            self.value = value
            self._finish()

    def fail(self, error: BaseException) -> None:
        if not self._done:
            self.error = error
            self._finish()

    def _finish(self) -> None:
        self._done = True
        waiters, self._waiters = self._waiters, None
        if waiters:
            for task in waiters:
                trio.lowlevel.reschedule(task)

    @property
    def done(self) -> bool:
        return self._done

    async def wait(self) -> Any:
        if self._done:
            await trio.lowlevel.checkpoint()  # a checkpoint either way, as Event.wait
        else:
            task = trio.lowlevel.current_task()
            if self._waiters is None:
                self._waiters = [task]
            else:
                self._waiters.append(task)

            def abort(_: Any) -> trio.lowlevel.Abort:
                if self._waiters is not None:
                    self._waiters.remove(task)
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
        if self.error is not None:
            raise self.error
        return self.value


class Subscription:
    """Events for one channel UUID (or all events), with a bounded buffer; only the event
    names in ``names`` when given.

    A buffer and the parked receivers of its own, as trio's memory channel does it (an event
    goes straight to a waiting receiver, else into the buffer of ``size``; buffered events are
    still received after the end) without the channel's three objects per subscription and
    their bookkeeping per event: every event of a call goes through one of these."""

    def __init__(
        self, conn: EslConnection, key: str | None, size: int,
        names: frozenset[str] | None = None,
    ) -> None:  # fmt: skip
        self._conn = conn
        self.key = key
        self.names = names
        self._size = size
        self._buffer: deque[Event] = deque()
        self._waiting: deque[trio.lowlevel.Task] = deque()  # receivers parked, oldest first
        self._handed: dict[trio.lowlevel.Task, Event] = {}  # woken with this event
        self._ended = False
        self.overflowed = False

    def _push(self, event: Event) -> None:
        if self._ended:
            return
        if self._waiting:
            task = self._waiting.popleft()
            self._handed[task] = event
            trio.lowlevel.reschedule(task)
        elif len(self._buffer) < self._size:
            self._buffer.append(event)
        else:
            self.overflowed = True
            self._close()
            self._conn.log.error("esl.subscriber_overflow", key=self.key)

    def _close(self) -> None:
        self._ended = True
        waiting, self._waiting = self._waiting, deque()
        for task in waiting:
            trio.lowlevel.reschedule(task)  # nothing handed: the end

    def _end(self) -> NoReturn:
        if self.overflowed:
            raise SubscriberOverflow(f"subscriber for {self.key} overflowed")
        raise ConnectionClosed("connection closed")

    async def receive(self) -> Event:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._buffer:
            event = self._buffer.popleft()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return event
        if self._ended:
            await trio.lowlevel.cancel_shielded_checkpoint()
            self._end()
        task = trio.lowlevel.current_task()
        self._waiting.append(task)

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._waiting.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        if task not in self._handed:
            self._end()
        return self._handed.pop(task)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            try:
                yield await self.receive()
            except ConnectionClosed:
                return


class BackgroundJob:
    """A ``bgapi`` in flight: ``await job.result()`` gives the BACKGROUND_JOB event."""

    def __init__(self, job_uuid: str, slot: _Slot) -> None:
        self.job_uuid = job_uuid
        self._slot = slot

    @property
    def done(self) -> bool:
        return self._slot.done

    async def result(self) -> Event:
        event: Event = await self._slot.wait()
        return event


class EslConnection:
    """An ESL connection over any trio ``Stream``; run ``run()`` in a nursery first."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        subscriber_buffer: int = 1024,
        reply_timeout: float = 30.0,
        log: Any = None,
    ) -> None:
        self.stream = stream
        self.log = log if log is not None else get_logger("callcontrol.esl")
        self._reader = FrameReader()
        self._send_lock = trio.Lock()
        # Commands queued by ``execute(defer=True)``: they lead the next write; their reply
        # slots are already in ``_replies``, in the same order.
        self._unsent: list[bytes] = []
        self._replies: deque[_Slot] = deque()
        self._jobs: dict[str, _Slot] = {}
        self._executes: dict[str, _Slot] = {}
        self._execute_started: dict[str, trio.Event] = {}
        self._by_uuid: dict[str, list[Subscription]] = {}
        self._catch_all: list[Subscription] = []
        self._subscriber_buffer = subscriber_buffer
        self._reply_timeout = reply_timeout
        self._greeting = _Slot()
        self.lingering = trio.Event()
        self.closed = trio.Event()
        self.close_reason = ""
        self.frame_observers: list[Callable[[Frame], None]] = []

    # -- reading -----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read and route frames until the connection ends; never raises for peer errors."""
        task_status.started()
        try:
            while True:
                data = await self.stream.receive_some(RECEIVE_SIZE)
                if not data:
                    self._close("eof")
                    return
                self._reader.feed(data)
                for frame in self._reader:
                    self._route(frame)
                    if self.closed.is_set():
                        return
        except ProtocolError as exc:
            self.log.error("esl.protocol_error", error=str(exc))
            self._close(f"protocol error: {exc}")
            await trio.aclose_forcefully(self.stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._close(f"stream closed: {exc!r}")
        finally:
            self._close("reader stopped")

    def _route(self, frame: Frame) -> None:
        for observe in self.frame_observers:
            observe(frame)
        ct = frame.content_type
        if frame.is_event:
            self._dispatch_event(frame.event)
        elif ct in (COMMAND_REPLY, API_RESPONSE):
            if not self._replies:
                raise ProtocolError(f"unexpected {ct} with no command waiting")
            self._replies.popleft().set(frame)
        elif ct == DISCONNECT_NOTICE:
            if frame.headers.get("Content-Disposition") == "linger":
                self.lingering.set()
            else:
                self._close("disconnect notice")
        elif ct == AUTH_REQUEST:
            self._greeting.set(frame)
        else:
            # log/data, rude rejection and content types we do not act on
            self.log.debug("esl.frame_ignored", content_type=ct)
            if ct == "text/rude-rejection":
                self._close("rejected by FreeSWITCH ACL")

    def _dispatch_event(self, event: Event) -> None:
        name = event.name
        if name == "BACKGROUND_JOB":
            job = event.job_uuid
            if job is not None and (slot := self._jobs.pop(job, None)) is not None:
                slot.set(event)
        elif name == "CHANNEL_EXECUTE":
            app_uuid = event.application_uuid
            began = self._execute_started.pop(app_uuid, None) if app_uuid else None
            if began is not None:
                began.set()
        elif name == "CHANNEL_EXECUTE_COMPLETE":
            app_uuid = event.application_uuid
            if app_uuid is not None and (slot := self._executes.pop(app_uuid, None)) is not None:
                self._execute_started.pop(app_uuid, trio.Event()).set()
                slot.set(event)
        uid = event.unique_id
        if uid is not None:
            for sub in self._by_uuid.get(uid, ()):
                if sub.names is None or name in sub.names:
                    sub._push(event)
        for sub in self._catch_all:
            if sub.names is None or name in sub.names:
                sub._push(event)

    def _close(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason
        self.closed.set()
        error = ConnectionClosed(reason)
        for slot in [*self._replies, *self._jobs.values(), *self._executes.values()]:
            slot.fail(error)
        self._greeting.fail(error)
        self._replies.clear()
        self._jobs.clear()
        self._executes.clear()
        for began in self._execute_started.values():
            began.set()  # nobody waits for a start that can no longer be reported
        self._execute_started.clear()
        for subs in [*self._by_uuid.values(), self._catch_all]:
            for sub in subs:
                sub._close()

    # -- writing -----------------------------------------------------------------------------

    async def send(self, data: bytes) -> Frame:
        """Send one command and wait for its reply frame (command/reply or api/response)."""
        slot = await self._write(data)
        with trio.move_on_after(self._reply_timeout):
            frame: Frame = await slot.wait()
            return frame
        await self._timed_out(data)

    async def send_many(self, *commands_: bytes) -> list[Frame]:
        """Pipeline: write several commands in one go, then wait for all their replies.

        FreeSWITCH runs a connection's commands in order, so a command may depend on the one
        before it (a filter before the originate it is for); pipelining only saves the round
        trips between them.
        """
        if self.closed.is_set():
            raise ConnectionClosed(self.close_reason)
        slots = [_Slot() for _ in commands_]
        await self._send_bytes(slots, commands_)
        frames: list[Frame] = []
        with trio.move_on_after(self._reply_timeout):
            for slot in slots:
                frames.append(await slot.wait())
            return frames
        await self._timed_out(commands_[0])

    async def _timed_out(self, first: bytes) -> NoReturn:
        # The FIFO is now out of step with the wire: the connection cannot be trusted.
        self.log.error("esl.reply_timeout", command=first.split(b"\n", 1)[0][:80])
        self._close("reply timeout")
        await trio.aclose_forcefully(self.stream)
        raise ConnectionClosed("reply timeout")

    async def send_ok(self, data: bytes) -> Frame:
        """Send a command; raise ``CommandError`` when FreeSWITCH answers ``-ERR``."""
        frame = await self.send(data)
        raise_on_err([data], [frame])
        return frame

    async def wait_greeting(self) -> Frame:
        """Inbound connections: wait for FreeSWITCH's ``auth/request``."""
        frame: Frame = await self._greeting.wait()
        return frame

    async def api(self, command: str, *args: str) -> str:
        """``api``: the command's output text. Keep to short commands (it blocks the socket)."""
        frame = await self.send(commands.api(command, *args))
        return frame.reply_text

    async def bgapi(
        self,
        command: str,
        *args: str,
        job_uuid: str | None = None,
        before: Sequence[bytes] = (),
    ) -> BackgroundJob:
        """``bgapi`` with our own Job-UUID, registered before sending so no result is missed.

        ``before``: commands pipelined ahead of it (e.g. the filter for the leg it creates);
        any of them answered ``-ERR`` raises ``CommandError`` like the bgapi itself.
        """
        job_uuid = job_uuid or generated.uuid4_text()
        slot = _Slot()
        self._jobs[job_uuid] = slot
        request = commands.bgapi(command, *args, job_uuid=job_uuid)
        try:
            sent = [*before, request]
            raise_on_err(sent, await self.send_many(*sent))
        except BaseException:
            self._jobs.pop(job_uuid, None)
            raise
        return BackgroundJob(job_uuid, slot)

    async def execute(
        self,
        app: str,
        arg: str | None = None,
        *,
        uuid: str | None = None,
        event_lock: bool = False,
        loops: int | None = None,
        wait_reply: bool = True,
        defer: bool = False,
    ) -> Execution:
        """``sendmsg execute``; the returned handle completes on CHANNEL_EXECUTE_COMPLETE.

        ``wait_reply=False``: return once the command is written. Its reply only says the app
        was queued, and FreeSWITCH reads a socket's commands in order, so whatever is sent next
        still runs after it is queued; a refusal shows as ``Execution.refused``.
        ``defer=True`` (implies not waiting): not even written yet, but put ahead of the next
        command sent on this connection, in the same write; the caller must send one next.
        """
        app_uuid = generated.uuid4_text()
        slot = _Slot()
        started = trio.Event()
        self._executes[app_uuid] = slot
        self._execute_started[app_uuid] = started
        data = commands.execute(
            app, arg, uuid=uuid, event_uuid=app_uuid, event_lock=event_lock, loops=loops
        )
        reply: _Slot | None = None
        try:
            if defer:
                reply = self._defer(data)
            elif wait_reply:
                await self.send_ok(data)
            else:
                reply = await self._write(data)
        except BaseException:
            self._executes.pop(app_uuid, None)
            self._execute_started.pop(app_uuid, None)
            raise
        return Execution(app, app_uuid, slot, started, reply)

    def _defer(self, data: bytes) -> _Slot:
        """Queue one command for the next write (``execute(defer=True)``)."""
        if self.closed.is_set():
            raise ConnectionClosed(self.close_reason)
        slot = _Slot()
        self._replies.append(slot)
        self._unsent.append(data)
        return slot

    async def _write(self, data: bytes) -> _Slot:
        """Write one command without waiting: its reply lands in the returned slot, in FIFO
        order like any other (a reply that never comes times out the next command waited on)."""
        if self.closed.is_set():
            raise ConnectionClosed(self.close_reason)
        slot = _Slot()
        await self._send_bytes((slot,), (data,))
        return slot

    async def _send_bytes(self, slots: Sequence[_Slot], commands_: Sequence[bytes]) -> None:
        """Append the reply slots and write the commands (after any deferred ones) under the
        send lock, so the slot order is the wire order. Uncontended (one task per call writes,
        nearly always) the lock is taken without a schedule point of its own: under load each
        schedule point is a wait behind every other call's runnable task."""
        lock = self._send_lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            self._replies.extend(slots)
            unsent = self._unsent
            if unsent:
                self._unsent = []
                data = b"".join([*unsent, *commands_])
            else:
                data = commands_[0] if len(commands_) == 1 else b"".join(commands_)
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self._close(f"send failed: {exc!r}")
                raise ConnectionClosed(self.close_reason) from None
        finally:
            lock.release()

    # -- subscribing -------------------------------------------------------------------------

    @asynccontextmanager
    async def subscribe(
        self, uuid: str | None = None, *, size: int | None = None,
        names: frozenset[str] | None = None,
    ) -> AsyncIterator[Subscription]:  # fmt: skip
        """Events of channel ``uuid`` (all events when None) while the block runs.

        ``names``: only these events. The others are dropped here, so a consumer that acts on
        a few kinds is not woken for each of a call's dozens of events (each wake-up is a task
        step through the channel, the consumer's loop and its cancel scope)."""
        sub = Subscription(self, uuid, size or self._subscriber_buffer, names)
        registry = self._catch_all if uuid is None else self._by_uuid.setdefault(uuid, [])
        registry.append(sub)
        if self.closed.is_set():
            sub._close()
        try:
            yield sub
        finally:
            registry.remove(sub)
            if uuid is not None and not registry:
                self._by_uuid.pop(uuid, None)

    async def aclose(self) -> None:
        self._close("closed by us")
        await trio.aclose_forcefully(self.stream)


def raise_on_err(sent: Sequence[bytes], replies: Sequence[Frame]) -> None:
    """``CommandError`` for the first command FreeSWITCH answered ``-ERR``."""
    for data, frame in zip(sent, replies, strict=True):
        if not frame.ok:
            line = data.split(b"\n", 1)[0].decode(errors="replace")
            raise CommandError(line, frame.reply_text)


class Execution:
    """A ``sendmsg execute`` in flight: ``await completed()`` gives EXECUTE_COMPLETE."""

    def __init__(
        self, app: str, app_uuid: str, slot: _Slot, started: trio.Event, reply: _Slot | None = None
    ) -> None:
        self.app = app
        self.app_uuid = app_uuid
        self._slot = slot
        self._started = started
        self._reply = reply  # the command/reply, when it was not waited for

    @property
    def refused(self) -> bool:
        """FreeSWITCH answered the ``sendmsg`` with ``-ERR`` (not waited for): it never runs."""
        reply = self._reply
        return reply is not None and reply.done and reply.error is None and not reply.value.ok

    @property
    def started(self) -> bool:
        """Its CHANNEL_EXECUTE arrived: it left the channel's queue and runs (or ran)."""
        return self._started.is_set() or self._slot.done

    async def wait_started(self, timeout: float = math.inf) -> bool:
        """Until it runs (True), or ``timeout`` passed (False). A queued execute can still be
        flushed by ``uuid_break <a> all``: it then never runs nor completes."""
        with trio.move_on_after(timeout):
            await self._started.wait()
        return self.started

    @property
    def done(self) -> bool:
        return self._slot.done

    async def completed(self, timeout: float = math.inf) -> Event:
        with trio.fail_after(timeout):
            event: Event = await self._slot.wait()
        return event

    @property
    def response(self) -> str | None:
        """``Application-Response`` once completed (``FILE PLAYED``, ``PLAYBACK ERROR``...)."""
        if not self._slot.done or self._slot.value is None:
            return None
        value: str | None = self._slot.value.get("Application-Response")
        return value
