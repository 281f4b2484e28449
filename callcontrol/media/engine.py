"""The batched media engine: every unicast call's audio handled once per tick, not per frame.

At a few hundred calls the per-frame cost of the first shared loop (``unicast._Hub``: one
conversion, one queue operation and one bookkeeping pass per datagram, with per-call numpy
resampling) is most of a core, and its ticker advanced one 2 ms slot per wake-up, so a loaded
loop sent far fewer than 50 frames per second per call. The engine instead does the work of a
whole tick for every call at once:

* **Receiving: one pass per ``RECEIVE_BATCH_SECONDS``.** Every armed leg's socket is in one
  epoll set. A system task waits for the epoll fd to become readable, then drains it with one
  ``epoll.poll(0)`` and reads **one** datagram from each ready socket straight into a staging
  row of its format pair's ``BatchConverter`` (``recvfrom_into``, no allocation). Then every
  format pair converts all its frames in one numpy pass and each call gets its frame. The task
  then sleeps until ``RECEIVE_BATCH_SECONDS`` after the pass began, so under load one pass
  serves many calls, and a frame waits at most that long (1 ms of the 5 ms budget; 2 ms
  measured worse p99 on the loaded 2-core box for little CPU saved).
  One datagram per socket per pass keeps each call's frames in order and makes every stream
  appear at most once per batch (its resampler history is updated once); a socket with more
  queued stays readable and is served on the next pass.
* **Sending: one ticker, ``PHASES`` phases per 20 ms.** A call with audio to send joins the
  phase that fires next (its first frame leaves within ``PHASE_SECONDS``), and then stays in it
  while it sends, so its frames leave 20 ms apart. When a phase fires, every call in it hands
  over its next frame in the model's format; each format pair converts them in one pass and
  the frames go out with plain non-blocking ``sendto`` from the output rows. A full socket
  buffer (EAGAIN) drops that frame and counts it (``stats.send_dropped``): waiting would delay
  every other call. Phases rather than one 20 ms tick keep each pass short (a quarter of the
  calls), so the receive side is never held up by a whole tick's conversion. A wake-up up to
  half a frame late fires the phases that are due; later than that (a stall), every phase fires
  once (each call its one overdue frame) and the grid restarts a frame later, so a call never
  gets two frames less than half a frame apart.
* **Nothing per frame on the hot path**: no task switch (the only per-frame wake-up is the
  call's own consumer of ``frames()``, which is the per-call API), no log call, no numpy call
  per frame. Errors are caught per call and logged (a system task must never raise).
* **Calls leaving.** Everything above runs without awaiting between taking a frame and
  sending or delivering it; a call that closes in between (only possible from code those steps
  call) is checked again (``alive``, ``_finished``) before its frame is sent or delivered, and
  its rows are only reused in a later batch.

Linux only (epoll); elsewhere ``UnicastTransport`` uses the per-call path.
"""

from __future__ import annotations

import math
import select
from typing import TYPE_CHECKING, Any

import trio

from callcontrol.logs import get_logger
from callcontrol.media.batch import BatchConverter
from callcontrol.media.codecs import AudioFormat

if TYPE_CHECKING:
    from callcontrol.media.unicast import UnicastTransport, _Leg

FRAME_SECONDS = 0.020
PHASES = 4
PHASE_SECONDS = FRAME_SECONDS / PHASES
RECEIVE_BATCH_SECONDS = 0.001
AVAILABLE = hasattr(select, "epoll")


class MediaEngine:
    """The process's batched receive and send loops for every unicast call (one per trio run)."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._lanes: dict[int, tuple[_Leg, UnicastTransport]] = {}
        self._converters: dict[tuple[AudioFormat, AudioFormat], BatchConverter] = {}
        self._phases: list[list[UnicastTransport]] = [[] for _ in range(PHASES)]
        self._phase = 0
        self._next_tick = -math.inf
        self._paced = 0
        self._send_idle = trio.lowlevel.ParkingLot()
        self._receive_idle = trio.lowlevel.ParkingLot()
        self._log = get_logger("callcontrol.media")
        self.passes = 0  # receive passes, for tests and the bench
        self.ticks = 0
        trio.lowlevel.spawn_system_task(self._receive_loop, name="media engine receive")
        trio.lowlevel.spawn_system_task(self._ticker, name="media engine ticker")

    @classmethod
    def current(cls) -> MediaEngine:
        try:
            return _ENGINE.get()
        except LookupError:
            engine = cls()
            _ENGINE.set(engine)
            return engine

    def converter(self, src: AudioFormat, dst: AudioFormat) -> BatchConverter:
        """The shared converter of one format pair (each stream opens its own row in it)."""
        conv = self._converters.get((src, dst))
        if conv is None:
            conv = self._converters[(src, dst)] = BatchConverter(src, dst)
        return conv

    # -- receiving -------------------------------------------------------------------------

    def register(self, leg: _Leg, owner: UnicastTransport) -> None:
        fd = leg.sock.fileno()
        self._epoll.register(fd, select.EPOLLIN)
        self._lanes[fd] = (leg, owner)
        if len(self._lanes) == 1:
            self._receive_idle.unpark_all()

    def unregister(self, leg: _Leg) -> None:
        """Before the socket closes: its fd may be reused by the next call's socket."""
        fd = leg.sock.fileno()
        if fd < 0 or self._lanes.get(fd, (None,))[0] is not leg:
            return
        del self._lanes[fd]
        self._epoll.unregister(fd)

    async def _receive_loop(self) -> None:
        try:
            while True:
                if not self._lanes:
                    await self._receive_idle.park()
                    continue
                await trio.lowlevel.wait_readable(self._epoll.fileno())
                began = trio.current_time()
                self._receive_pass(began)
                await trio.sleep_until(began + RECEIVE_BATCH_SECONDS)
        finally:
            self._epoll.close()

    def _receive_pass(self, now: float) -> None:
        self.passes += 1
        lanes = self._lanes
        touched: list[BatchConverter] = []
        for fd, _mask in self._epoll.poll(0):
            lane = lanes.get(fd)
            if lane is None:
                continue
            leg, owner = lane
            conv = owner._in_batch
            if conv is None:
                continue
            if conv.pending == 0:
                conv.begin()
                touched.append(conv)
            try:
                owner._receive_into(leg, conv, now)
            except Exception:
                self._log.exception("unicast.receive_failed", call_uuid=owner.call.uuid)
        for conv in touched:
            self._deliver(conv)

    def _converted(self, conv: BatchConverter) -> list[Any]:
        """The batch's owners, in row order, once its frames are converted; none when the
        conversion failed (logged). Either way the next pass starts a new batch."""
        owners = list(conv.owners)
        try:
            conv.finish()
        except Exception:
            self._log.exception("unicast.convert_failed", frames=len(owners))
            return []
        finally:
            conv.pending = 0
        return owners

    def _deliver(self, conv: BatchConverter) -> None:
        for i, owner in enumerate(self._converted(conv)):
            try:
                owner._deliver(bytes(conv.output_view(i)))
            except Exception:
                self._log.exception("unicast.deliver_failed", call_uuid=owner.call.uuid)

    # -- sending ---------------------------------------------------------------------------

    def pace(self, transport: UnicastTransport) -> None:
        """Make sure ``transport`` is visited by the ticker (no-op when it already is)."""
        if transport._pace_slot is not None:
            return
        now = trio.current_time()
        if self._paced == 0 and self._next_tick < now:
            self._next_tick = now  # the ticker was idle: the next phase fires now
        phase = self._phase
        last = transport._last_slot
        if last is not None and now < transport._last_sent_at + FRAME_SECONDS:
            phase = last  # it sent less than a frame ago: keep its phase, never closer
        transport._pace_slot = phase
        self._phases[phase].append(transport)
        self._paced += 1
        if self._paced == 1:
            self._send_idle.unpark_all()

    async def _ticker(self) -> None:
        while True:
            if self._paced == 0:
                await self._send_idle.park()
                continue
            now = trio.current_time()
            if self._next_tick < now - FRAME_SECONDS:
                self._next_tick = now  # more than a frame behind: restart the grid
            await trio.sleep_until(self._next_tick)
            now = trio.current_time()
            if now - self._next_tick > FRAME_SECONDS / 2:
                # A stall (GC, a busy box): each call gets its one overdue frame now, and the
                # grid restarts a frame later. Firing every due phase instead would wrap around
                # and send the same call several frames in a burst.
                for _ in range(PHASES):
                    self._fire_next()
                self._next_tick = now + FRAME_SECONDS
                continue
            while self._next_tick <= now and self._paced:
                self._fire_next()

    def _fire_next(self) -> None:
        phase, tick = self._phase, self._next_tick
        self._phase = (phase + 1) % PHASES
        self._next_tick = tick + PHASE_SECONDS
        self._fire(phase, tick)

    def _fire(self, phase: int, tick: float) -> None:
        due = self._phases[phase]
        if not due:
            return
        self.ticks += 1
        keep: list[UnicastTransport] = []
        self._phases[phase] = keep
        touched: list[BatchConverter] = []
        for transport in due:
            try:
                conv = transport._out_batch
                frame = transport._take_frame() if conv is not None else None
            except Exception:
                self._log.exception("unicast.send_failed", call_uuid=transport.call.uuid)
                frame = conv = None
            if frame is None or conv is None:
                transport._pace_slot = None
                transport._last_slot = phase
                self._paced -= 1
                continue
            keep.append(transport)
            if conv.pending == 0:
                conv.begin()
                touched.append(conv)
            try:
                conv.stage(frame, transport._out_row, transport)
            except Exception:
                self._log.exception("unicast.send_failed", call_uuid=transport.call.uuid)
        for conv in touched:
            self._send(conv, tick)

    def _send(self, conv: BatchConverter, tick: float) -> None:
        for i, owner in enumerate(self._converted(conv)):
            try:
                owner._send_frame(conv.output_view(i), tick)
            except Exception:
                self._log.exception("unicast.send_failed", call_uuid=owner.call.uuid)


_ENGINE: trio.lowlevel.RunVar[MediaEngine] = trio.lowlevel.RunVar("callcontrol_media_engine")
