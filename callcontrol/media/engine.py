"""The batched media engine: every unicast call's audio handled once per tick, not per frame.

At a few hundred calls the per-frame cost of the first shared loop (``unicast._Hub``: one
conversion, one queue operation and one bookkeeping pass per datagram, with per-call numpy
resampling) is most of a core, and its ticker advanced one 2 ms slot per wake-up, so a loaded
loop sent far fewer than 50 frames per second per call. The engine instead does the work of a
whole tick for every call at once:

* **One task, one clock.** A single system task does both directions. While any call is
  sending it wakes once per ``PHASE_SECONDS`` (1 ms) on a grid: it fires the send phase that
  is due, then runs a receive pass. While nobody sends it waits for the sockets' epoll fd to
  become readable, runs a pass, and then sleeps ``RECEIVE_BATCH_SECONDS`` so that under load
  one pass serves many calls (and a silent box makes no wake-ups at all). Two tasks (a receive
  loop and a ticker) woken in the same trio batch ran in random order, each waiting behind the
  other's pass and the consumers; one task does the two in a fixed order.
* **Wake-ups on time.** ``trio.sleep_until`` ends in ``epoll.poll``, whose timeout is whole
  milliseconds rounded up, so a "1 ms" sleep took 1-2 ms and a phase fired up to 1 ms late.
  The loop sleeps on a timerfd instead (``Timer``; trio's own epoll wait ends within
  microseconds of the deadline), and on ``trio.sleep_until`` under a ``MockClock``.
* **Receiving.** Every armed leg's socket is in one epoll set. A pass drains it with
  ``epoll.poll(0)`` and reads **one** datagram from each ready socket straight into a staging
  row of its format pair's ``BatchConverter`` (``recv_into``, no allocation); every format
  pair converts its frames in one numpy pass and each call gets its frame. That is a round;
  a pass runs up to ``RECEIVE_ROUNDS`` rounds while sockets are still readable, so a backlog
  left by a stall (two or more frames queued on every socket) is gone in one pass instead of
  one frame per pass. Within a round a socket gives at most one datagram, so each call's frames
  stay in order and each stream appears at most once per batch (its resampler history is
  updated once).
* **Sending: ``PHASES`` phases per 20 ms.** A call with audio to send joins the least busy of
  the next ``JOIN_PHASES`` phases (its first frame leaves within 5 ms), and then stays in it
  while it sends, so its frames leave 20 ms apart. Joining the next phase, as before, put every
  call that started in the same moment (one receive pass woke their models, or the switch's
  side caught up after a stall) into one phase for good: measured, 92 of 100 echoing calls sat
  in one of the then 4 phases, so one phase did nearly a whole tick's work while the receive
  side waited. A bunch that joined together still flows out: a phase with more than its share
  (``paced // PHASES + 1``) moves some of the calls that just sent into the next phase if that
  has fewer; a moved call's next frame leaves 21 ms after its last, once per move (a moved
  call is not sent again, nor moved again, before a frame has passed). When a phase fires,
  every call in it hands over its next frame in the model's format; each format pair converts
  them in one pass and the frames go out with plain non-blocking ``send`` from the output
  rows. A full socket buffer (EAGAIN) drops that frame
  and counts it (``stats.send_dropped``): waiting would delay every other call. A wake-up up
  to half a frame late fires the phases that are due; later than that (a stall), every phase
  fires once (each call its one overdue frame) and the grid restarts a frame later, so a call
  never gets two frames less than half a frame apart.
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

import ctypes
import math
import os
import select
from typing import TYPE_CHECKING, Any

import trio
import trio.testing

from callcontrol.logs import get_logger
from callcontrol.media.batch import BatchConverter
from callcontrol.media.codecs import AudioFormat

if TYPE_CHECKING:
    from callcontrol.media.unicast import UnicastTransport, _Leg

FRAME_SECONDS = 0.020
PHASES = 20
PHASE_SECONDS = FRAME_SECONDS / PHASES
JOIN_PHASES = 5  # a call that starts sending waits at most this many phases for its first frame
RECEIVE_BATCH_SECONDS = 0.001
RECEIVE_ROUNDS = 4  # per pass: how far a socket's backlog (after a stall) is drained at once
AVAILABLE = hasattr(select, "epoll")
_CLOCK_MONOTONIC = 1  # trio's SystemClock is time.perf_counter(): CLOCK_MONOTONIC on Linux
_TFD_NONBLOCK_CLOEXEC = os.O_NONBLOCK | os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc_timerfd() -> tuple[Any, Any] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        functions = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    return functions


_TIMERFD = _libc_timerfd() if AVAILABLE else None


class Timer:
    """Sleeps to a trio deadline with the kernel's timer precision (a timerfd).

    ``trio.sleep_until`` ends in ``epoll.poll(timeout)``, which takes whole milliseconds and
    rounds up: a wait of 0.2 ms lasts 1 ms, one of 1.1 ms lasts 2. For a loop that must run
    every millisecond that is up to a whole extra period of latency on every frame. A timerfd
    armed for the deadline wakes trio's own epoll wait within microseconds of it. Under any
    other clock than trio's real one (``MockClock`` in tests), or without a timerfd, it is
    ``trio.sleep_until``.
    """

    def __init__(self) -> None:
        self.fd = -1
        if _TIMERFD is None or isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock):
            return
        create, self._settime = _TIMERFD
        fd = create(_CLOCK_MONOTONIC, _TFD_NONBLOCK_CLOEXEC)
        if fd >= 0:
            self.fd = fd
            self._spec = _Itimerspec()

    async def sleep_until(self, deadline: float) -> None:
        if self.fd < 0:
            await trio.sleep_until(deadline)
            return
        delay = deadline - trio.current_time()
        if delay <= 0:
            await trio.lowlevel.checkpoint()
            return
        # Arming again clears any expiry left from a wait that was cancelled.
        ns = max(1000, int(delay * 1e9))
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = divmod(ns, 1_000_000_000)
        if self._settime(self.fd, 0, ctypes.byref(self._spec), None) != 0:
            await trio.sleep_until(deadline)
            return
        await trio.lowlevel.wait_readable(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


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
        self._idle = trio.lowlevel.ParkingLot()
        self._waiting: trio.CancelScope | None = None  # the loop's current wait, while it waits
        self._timer = Timer()
        self._log = get_logger("callcontrol.media")
        self.passes = 0  # receive passes, for tests and the bench
        self.ticks = 0
        trio.lowlevel.spawn_system_task(self._run, name="media engine")

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
            self._idle.unpark_all()

    def unregister(self, leg: _Leg) -> None:
        """Before the socket closes: its fd may be reused by the next call's socket."""
        fd = leg.sock.fileno()
        if fd < 0 or self._lanes.get(fd, (None,))[0] is not leg:
            return
        del self._lanes[fd]
        self._epoll.unregister(fd)

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                if not self._lanes and not self._paced:
                    await self._idle.park()
                    continue
                if self._paced:
                    # No cancel scope here (a few µs a millisecond): a call that starts sending
                    # now joins a phase that fires at the earliest on this tick anyway.
                    await self._timer.sleep_until(self._next_tick)
                else:
                    with trio.CancelScope() as self._waiting:
                        # Nothing to send: sleep until a datagram comes (no wake-ups at all
                        # while every call is silent), then the pass right away.
                        await trio.lowlevel.wait_readable(self._epoll.fileno())
                    self._waiting = None
                now = trio.current_time()
                if self._paced:
                    self._send_due(now)
                if self._lanes:
                    self._receive_pass(now)
                if not self._paced and self._lanes:
                    # Let a batch gather: under load one pass serves many calls.
                    with trio.CancelScope() as self._waiting:
                        await self._timer.sleep_until(now + RECEIVE_BATCH_SECONDS)
                    self._waiting = None
        finally:
            self._timer.close()
            self._epoll.close()

    def _wake(self) -> None:
        """Cut the loop's current wait short (it has a phase to fire now)."""
        if self._waiting is not None:
            self._waiting.cancel()
        self._idle.unpark_all()

    def _receive_pass(self, now: float) -> None:
        self.passes += 1
        for _ in range(RECEIVE_ROUNDS):
            ready = self._epoll.poll(0)
            if not ready:
                return
            self._receive_round(ready, now)

    def _receive_round(self, ready: list[tuple[int, int]], now: float) -> None:
        """One datagram of each ready socket, converted per format pair, delivered."""
        lanes = self._lanes
        touched: list[BatchConverter] = []
        for fd, _mask in ready:
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
            self._next_tick = now  # nothing was sending: the next phase fires now
        last = transport._last_slot
        if last is not None and now < transport._last_sent_at + FRAME_SECONDS:
            phase = last  # it sent less than a frame ago: keep its phase, never closer
        else:
            # The least busy of the next JOIN_PHASES: calls that start together (one receive
            # pass woke them all, or the switch's side caught up after a stall) would all take
            # the same next phase and keep it for as long as they send.
            phases, first = self._phases, self._phase
            phase = first
            for i in range(1, JOIN_PHASES):
                p = (first + i) % PHASES
                if len(phases[p]) < len(phases[phase]):
                    phase = p
        transport._pace_slot = phase
        self._phases[phase].append(transport)
        self._paced += 1
        if self._paced == 1:
            self._wake()

    def _send_due(self, now: float) -> None:
        if self._next_tick < now - FRAME_SECONDS / 2:
            # A stall (GC, a busy box): each call gets its one overdue frame now, and the
            # grid restarts a frame later. Firing every due phase instead would wrap around
            # and send the same call several frames in a burst.
            for _ in range(PHASES):
                self._fire_next()
            self._next_tick = now + FRAME_SECONDS
            return
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
            if tick < transport._last_sent_at + FRAME_SECONDS - PHASE_SECONDS / 2:
                keep.append(transport)  # moved here from the phase before: not twice a frame
                continue
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
        self._spread(phase, tick, keep)

    def _spread(self, phase: int, tick: float, keep: list[UnicastTransport]) -> None:
        """Move some of what this phase has beyond its share into the next, if that has fewer.

        Calls stay in the phase they joined for as long as they send, so calls that joined
        together (many started in the same moment) would stay bunched for good; this lets a
        bunch flow out into the following phases, a few calls a frame, each of those calls
        sending its next frame 20 ms + one phase after the last, once.
        """
        share = self._paced // PHASES + 1
        surplus = len(keep) - share
        if surplus <= 0:
            return
        following = (phase + 1) % PHASES
        nxt = self._phases[following]
        # up to the next one's share, or half the difference: a bunch flows on, never back
        moving = min(surplus, max(share - len(nxt), (len(keep) - len(nxt) + 1) // 2))
        if moving <= 0:
            return
        # only calls that sent in this phase: one moved here a moment ago waits a frame first
        movers = [t for t in keep if t._last_sent_at == tick][-moving:]
        for transport in movers:
            transport._pace_slot = following
            keep.remove(transport)
        nxt.extend(movers)

    def _send(self, conv: BatchConverter, tick: float) -> None:
        for i, owner in enumerate(self._converted(conv)):
            try:
                owner._send_frame(conv.output_view(i), tick)
            except Exception:
                self._log.exception("unicast.send_failed", call_uuid=owner.call.uuid)


_ENGINE: trio.lowlevel.RunVar[MediaEngine] = trio.lowlevel.RunVar("callcontrol_media_engine")
