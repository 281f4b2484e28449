"""Native ``unicast``: the call's audio over a UDP port pair, with no FreeSWITCH module.

Theory of operation
-------------------
``sendmsg … call-command: unicast`` makes FreeSWITCH bind ``local-ip:local-port`` (its port of
our pair), send every 20 ms read frame of the caller to ``remote-ip:remote-port`` (our port),
and write every datagram it receives on its port to the caller as one frame. What a real
FreeSWITCH 1.10.12 did (media.md §1, callflow.md §2) shapes everything here:

* **Only in a park, once per park.** The stream lives in the socket app's park loop. Any
  playback that *ends* (hold music, prompts, ``uuid_break``) tears it down, a bridge stops it,
  and a second ``unicast`` in the same park invocation is created and shut down at once. So
  ``ChannelState`` counts park invocations from the channel's events (a CHANNEL_PARK after a
  CHANNEL_UNPARK starts a new one) and we arm at most once per invocation. ``rearm()`` arms in
  the current park if it is still unused; otherwise it makes a new one with
  ``uuid_transfer <a> park inline`` and waits for CHANNEL_PARK (never ``uuid_park``: it wedges a
  parked channel). ``unicast`` is never sent while a playback runs (FreeSWITCH would leak the old
  port and thread) nor between a transfer and its CHANNEL_PARK (it would be lost). After a bridge
  with ``park_after_bridge`` the CHANNEL_PARK starts a fresh park and, unless suspended, we
  re-arm by ourselves.
* **No events.** Success, failure and teardown are invisible on the socket; the datagrams are
  the only truth. The events that *cause* a teardown (an ending playback, UNPARK, BRIDGE,
  hangup) close our side at once; anything else (a bind failure on the switch, a dead switch)
  shows as silence, and ``lost_after`` seconds without a datagram while active sets
  ``media_lost``. The loss clock is paused while FreeSWITCH itself plays to the caller (the park
  loop reads nothing then) and restarted on every arm and resume.
* **Format.** The caller's frames come at the channel's read codec and rate from the connect
  data. For PCMU/PCMA legs we ask for ``flags: native``: 160-byte G.711 frames (half the bytes
  of L16, no transcoding in FreeSWITCH, and a G.711 model takes them untouched); the lab heard
  native and L16 injection equally well (media.md §1.3). Every other codec comes as L16 (host
  byte order = little-endian) at the read rate: native bytes of e.g. Opus would be useless to us.
  We must send back exactly that format and frame size (16 kHz frames into an 8 kHz channel came
  out at a fraction of their level).
* **Pacing.** FreeSWITCH writes each datagram to the caller as it arrives, so frames must leave
  one per 20 ms. One process-wide ticker (``_Hub``) does it for every call: each call sending
  has a 2 ms slot in the 20 ms period and gets one frame sent per period at its slot; the first
  frame of a burst leaves within one slot. If the ticker falls behind by more than half a frame
  it restarts the grid instead of bursting (never faster than real time). Nothing is sent when
  nothing is queued: the switch plays silence by itself.
* **Receiving.** One process-wide receive loop serves every call's socket from one selector,
  with no per-datagram task switch; the caller's frames are converted there and queued for the
  model (``FrameQueue``).
* **Batched (the default).** With ``batched`` (``CALLCONTROL_MEDIA_ENGINE=batched``) both loops
  above are replaced by ``callcontrol.media.engine.MediaEngine``: one task that, every 1 ms,
  fires the due send phase (a twentieth of the sending calls) and runs a receive pass, with
  every frame of a pass converted in one numpy pass per format pair
  (``callcontrol.media.batch``). Queued speech then stays in the model's format
  until its frame is sent. ``_Hub`` stays as the ``percall`` path to compare against, and for
  hosts without epoll.
* **Ports.** ``UnicastPorts`` hands out pairs (even port for FreeSWITCH, the next one for us)
  from ``CALLCONTROL_UNICAST_PORTS``, never the same pair to two arms, least recently used first,
  and each arm takes a fresh pair (the switch only frees its port at teardown). Our socket is
  *connected* to the switch's address of the pair (FreeSWITCH sends from the port it binds, the
  one we name in ``unicast``): the kernel drops datagrams from anywhere else, and neither
  direction parses or allocates an address per frame (a connected send skips the route lookup
  too; measured on loopback, a send and a receive cost 3.8 µs against 5.1 unconnected). A
  datagram that arrives while the switch's port is closed makes the kernel report
  ``ECONNREFUSED`` on the next call; both directions count it as a lost frame and go on.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import selectors
import socket
from collections import deque
from typing import Any

import attrs
import trio

from callcontrol import generated
from callcontrol.config import PortRange
from callcontrol.esl import CommandError, ConnectionClosed, Event, commands
from callcontrol.esl.outbound import OutboundCall
from callcontrol.logs import get_logger
from callcontrol.media import engine as _engine
from callcontrol.media.batch import BatchConverter, batchable
from callcontrol.media.codecs import (
    PCM24K,
    PCMA,
    PCMU,
    AudioFormat,
    Converter,
    converter,
)
from callcontrol.media.transport import (
    FRAME_MS,
    FRAME_SECONDS,
    LOST_AFTER,
    PLAYBACK_CAP_MS,
    Framer,
    MediaUnavailable,
    TransportBase,
    frame_bytes,
    silence,
)

REPARK_SECONDS = 3.0
# The batched media engine (callcontrol.media.engine) unless a transport is told otherwise;
# serve sets it from CALLCONTROL_MEDIA_ENGINE.
BATCHED_DEFAULT = True
_MAX_DATAGRAM = 4096
# The pacing ticker divides the 20 ms frame period into slots; a call that starts sending waits
# at most one slot for its first frame and then keeps its slot, so frames leave 20 ms apart.
PACING_SLOTS = 10
_SLOT_SECONDS = FRAME_SECONDS / PACING_SLOTS
_LINE_RATES = range(8000, 48001, 50)


class PortsExhausted(MediaUnavailable):
    """Every unicast port pair of the configured range is in use."""


@attrs.frozen
class PortPair:
    """One call's UDP pair: FreeSWITCH binds ``fs_port``, we bind ``our_port``."""

    host: str
    fs_port: int
    our_port: int


class UnicastPorts:
    """Allocator of port pairs from ``CALLCONTROL_UNICAST_PORTS``; one per process."""

    def __init__(self, ports: PortRange) -> None:
        self.range = ports
        pairs = [
            PortPair(ports.host, p, p + 1) for p in range(ports.first, ports.last, 2)
        ]
        self._free: deque[PortPair] = deque(pairs)
        self._used: set[PortPair] = set()
        self.capacity = len(pairs)

    def acquire(self) -> PortPair:
        if not self._free:
            r = self.range
            raise PortsExhausted(
                f"all {self.capacity} unicast port pairs of {r.host}:{r.first}-{r.last} are in "
                "use; widen CALLCONTROL_UNICAST_PORTS or lower the call limit"
            )
        pair = self._free.popleft()
        # the choice goes through the call's generated values: a replay takes the recorded one
        wanted = generated.port(pair.our_port)
        if wanted != pair.our_port:
            self._free.appendleft(pair)
            pair = next((p for p in self._free if p.our_port == wanted),
                        PortPair(self.range.host, wanted - 1, wanted))  # fmt: skip
            if pair in self._free:
                self._free.remove(pair)
        self._used.add(pair)
        return pair

    def release(self, pair: PortPair) -> None:
        if pair in self._used:
            self._used.remove(pair)
            self._free.append(pair)  # to the back: least recently used goes out first

    @property
    def in_use(self) -> int:
        return len(self._used)


def line_format_for(channel: Event) -> tuple[AudioFormat, bool]:
    """The unicast frame format for a channel (from its connect data), and ``flags: native``."""
    name = (channel.get("Channel-Read-Codec-Name") or "L16").upper()
    if name == "PCMU":
        return PCMU, True
    if name == "PCMA":
        return PCMA, True
    text = channel.get("Channel-Read-Codec-Rate") or "8000"
    rate = int(text) if text.isascii() and text.isdigit() else 0
    if rate not in _LINE_RATES:
        raise MediaUnavailable(f"unusable read codec rate {text!r} for unicast")
    return AudioFormat("pcm", rate), False


def _ip_literal(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{what} must be an IP address, got {value!r}") from None


@attrs.define(eq=False)
class _Leg:
    """One armed unicast: our socket (connected to the switch's port), the park it belongs to."""

    pair: PortPair
    sock: socket.socket
    park_generation: int
    fs_busy: bool = False  # FreeSWITCH is playing something inside the park loop
    alive: bool = True


class _Hub:
    """The process's shared media loops for every unicast call (one per trio run).

    Per-call tasks cost a task switch (and a trio I/O registration) per 20 ms frame, which at a
    few hundred calls is most of a core. Instead:

    * **One receive loop.** Every armed leg's socket sits in one level-triggered selector
      (epoll on Linux); a single system task waits for the selector's own fd to become readable
      and then reads one datagram from each ready socket, without any per-datagram await. A
      socket with more queued stays ready and is served on the next pass.
    * **One pacing ticker.** A single ``sleep_until`` loop fires every ``_SLOT_SECONDS`` and
      sends the due frame of every call in that slot with plain non-blocking ``send``. A call
      joins the next slot when it has something to send (so its first frame leaves within one
      slot) and leaves its slot when it has nothing; while it sends it stays in the same slot,
      so its frames are exactly 20 ms apart. When the ticker falls behind by more than half a
      frame it shifts the whole grid instead of bursting (never faster than real time).

    Both are system tasks: they outlive any one call and end with the run. They must never
    raise (a system task's exception crashes the run), so a failure in one call's handling is
    logged and costs only that call's datagram or frame.
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._slots: list[list[UnicastTransport]] = [[] for _ in range(PACING_SLOTS)]
        self._slot = 0  # the slot the ticker fires next, at ``_next_tick``
        self._next_tick = -math.inf
        self._paced = 0
        self._idle = trio.lowlevel.ParkingLot()
        self._log = get_logger("callcontrol.media")
        trio.lowlevel.spawn_system_task(self._receive_loop, name="unicast receive loop")
        trio.lowlevel.spawn_system_task(self._ticker, name="unicast pacing ticker")

    @classmethod
    def current(cls) -> _Hub:
        try:
            return _HUB.get()
        except LookupError:
            hub = cls()
            _HUB.set(hub)
            return hub

    # -- receiving -------------------------------------------------------------------------

    def register(self, leg: _Leg, owner: UnicastTransport) -> None:
        self._selector.register(leg.sock, selectors.EVENT_READ, (leg, owner))

    def unregister(self, leg: _Leg) -> None:
        with contextlib.suppress(KeyError, ValueError):  # never registered, or already gone
            self._selector.unregister(leg.sock)

    async def _receive_loop(self) -> None:
        selector = self._selector
        try:
            while True:
                await trio.lowlevel.wait_readable(selector.fileno())
                now = trio.current_time()
                for key, _mask in selector.select(0):
                    leg, owner = key.data
                    try:
                        owner._receive(leg, now)
                    except Exception:
                        self._log.exception("unicast.receive_failed", call_uuid=owner.call.uuid)
        finally:
            selector.close()

    # -- pacing ----------------------------------------------------------------------------

    def pace(self, transport: UnicastTransport) -> None:
        """Make sure ``transport`` is visited by the ticker (no-op when it already is)."""
        if transport._pace_slot is not None:
            return
        now = trio.current_time()
        if self._paced == 0 and self._next_tick < now:
            self._next_tick = now  # the ticker was idle: start the grid now
        slot = self._slot
        last = transport._last_slot
        if last is not None and now < transport._last_sent_at + FRAME_SECONDS:
            slot = last  # it sent less than a frame ago: keep its phase, never closer
        transport._pace_slot = slot
        self._slots[slot].append(transport)
        self._paced += 1
        if self._paced == 1:
            self._idle.unpark()

    async def _ticker(self) -> None:
        while True:
            if self._paced == 0:
                await self._idle.park()
            now = trio.current_time()
            if self._next_tick < now - FRAME_SECONDS / 2:
                self._next_tick = now  # behind by more than half a frame: restart the grid
            await trio.sleep_until(self._next_tick)
            tick, slot = self._next_tick, self._slot
            self._next_tick = tick + _SLOT_SECONDS
            self._slot = (slot + 1) % PACING_SLOTS
            due = self._slots[slot]
            if not due:
                continue
            keep: list[UnicastTransport] = []
            self._slots[slot] = keep
            for transport in due:
                try:
                    sent = transport._pace(tick)
                except Exception:
                    self._log.exception("unicast.send_failed", call_uuid=transport.call.uuid)
                    sent = False
                if sent:
                    keep.append(transport)
                else:
                    transport._pace_slot = None
                    transport._last_slot = slot
                    self._paced -= 1


_HUB: trio.lowlevel.RunVar[_Hub] = trio.lowlevel.RunVar("callcontrol_unicast_hub")


class UnicastTransport(TransportBase):
    """``MediaTransport`` over native unicast. Use ``async with`` and then ``start()``."""

    def __init__(
        self,
        call: OutboundCall,
        ports: UnicastPorts,
        *,
        model_format: AudioFormat = PCM24K,
        fs_ip: str | None = None,
        line_format: tuple[AudioFormat, bool] | None = None,
        lost_after: float = LOST_AFTER,
        auto_rearm: bool = True,
        batched: bool | None = None,
        log: Any = None,
    ) -> None:
        fmt, native = line_format if line_format is not None else line_format_for(call.channel)
        super().__init__(
            call, model_format=model_format, line_format=fmt, lost_after=lost_after, log=log
        )
        self.native = native
        self.ports = ports
        self.fs_ip = _ip_literal(fs_ip if fs_ip is not None else ports.range.host, "fs_ip")
        self.auto_rearm = auto_rearm
        self._frame_size = frame_bytes(fmt)
        # Batched (the default): the media engine converts every call's frames of a tick at
        # once, so queued speech stays in the model's format until its frame is sent.
        if batched is None:
            batched = BATCHED_DEFAULT
        self.batched = (
            batched and _engine.AVAILABLE and batchable(fmt, model_format)
            and batchable(model_format, fmt)
        )  # fmt: skip
        play_format = model_format if self.batched else fmt
        self._play_frame_size = frame_bytes(play_format)
        self._silence = silence(play_format, self._play_frame_size)
        self._in: Converter = converter(fmt, model_format)
        self._out: Converter = converter(model_format, fmt)
        self._framer = Framer(self._play_frame_size)
        self._engine: _engine.MediaEngine | None = None
        self._in_batch: BatchConverter | None = None
        self._out_batch: BatchConverter | None = None
        self._in_row = self._out_row = -1
        self._framer_item: str | None = None
        self._queue: deque[tuple[str, bytes]] = deque()
        self._cap_frames = PLAYBACK_CAP_MS // FRAME_MS
        self._leg: _Leg | None = None
        self._armed_generation = -1
        self._arm_lock = trio.Lock()
        self._arming = False
        self._progress = trio.lowlevel.ParkingLot()  # drained() waiters, woken per frame sent
        self._last_sent_at = -math.inf
        self._hub: _Hub | None = None
        self._pace_slot: int | None = None  # the ticker slot this call sends in, while it sends
        self._last_slot: int | None = None
        self.current_item: str | None = None
        self._played_frames = 0
        self.arms = 0

    # -- public API ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.batched:
            self._open_lanes()
        else:
            self._hub = _Hub.current()
        if not await self.rearm():
            raise MediaUnavailable("could not arm unicast (channel not in a usable park)")

    @property
    def armed(self) -> bool:
        return self._leg is not None and self._leg.alive

    async def rearm(self) -> bool:
        async with self._arm_lock:
            # No caller audio can come while we are still asking FreeSWITCH for it: on a loaded
            # box the arming round trips alone outlast a watchdog tick, and counting them as
            # silence declared the media lost before the first unicast was even sent.
            self._arming = True
            try:
                return await self._rearm_locked()
            finally:
                self._arming = False

    async def play(self, pcm: bytes, item_id: str) -> None:
        if self._suspended or self._finished:
            return
        if self._framer_item is not None and item_id != self._framer_item:
            self._flush_partial()
        self._framer_item = item_id
        data = pcm if self.batched else self._out.convert(pcm)
        for frame in self._framer.push(data):
            if len(self._queue) >= self._cap_frames:
                self.stats.playback_ms_dropped += FRAME_MS
                continue
            self._queue.append((item_id, frame))
        self._wake_sender()

    async def interrupt(self) -> int:
        played = self._played_frames * FRAME_MS
        self._discard_playback()
        return played

    @property
    def playing(self) -> bool:
        return bool(self._queue) or len(self._framer) > 0 or (
            trio.current_time() < self._last_sent_at + FRAME_SECONDS
        )

    async def drained(self) -> None:
        while not self._finished:
            if self._queue or len(self._framer):
                await self._progress.park()
                continue
            heard_at = self._last_sent_at + FRAME_SECONDS
            if trio.current_time() >= heard_at:
                return
            await trio.sleep_until(heard_at)

    async def suspend(self) -> None:
        self._suspended = True
        self._discard_playback()
        self._caller.clear()

    async def resume(self) -> None:
        if not self._suspended:
            return
        self._suspended = False
        self._grace()
        if self._started and not self._finished:
            await self.rearm()

    async def close(self) -> None:
        self.close_now()

    def close_now(self) -> None:
        """``close`` without a checkpoint: safe from inside the engine's own passes."""
        if self._closed:
            return
        self._closed = True
        self._drop_leg("closed")
        self._discard_playback()
        self._close_lanes()
        self._end_frames()
        self._touch_state()

    # -- arming ----------------------------------------------------------------------------

    async def _rearm_locked(self) -> bool:
        cs = self.channel_state
        await self._catch_up()
        if self._finished or not self._started:
            return False
        if self.armed and self._leg is not None and self._leg.park_generation == cs.park_generation:
            return True
        # Never while FreeSWITCH plays: the unicast would be taken at once and leak (§2.3 d).
        if not await self._wait_state(
            lambda: cs.playing_app is None or self._finished, REPARK_SECONDS
        ):
            self.log.warning("unicast.rearm_blocked", playing=cs.playing_app)
            return False
        if self._finished or cs.bridged:
            return False
        if not cs.parked and not await self._wait_state(
            lambda: cs.parked or self._finished, REPARK_SECONDS
        ):
            self.log.warning("unicast.rearm_no_park")
            return False
        if self._armed_generation == cs.park_generation and not await self._repark():
            return False
        await self._arm()
        return True

    async def _repark(self) -> bool:
        cs = self.channel_state
        generation = cs.park_generation
        try:
            reply = await self.call.api("uuid_transfer", self.call.uuid, "park", "inline")
        except ConnectionClosed:
            return False
        if not reply.startswith("+OK"):
            self.log.warning("unicast.repark_refused", reply=reply.strip())
            return False
        if not await self._wait_state(
            lambda: cs.park_generation > generation or self._finished, REPARK_SECONDS
        ):
            self.log.warning("unicast.repark_no_channel_park")
            return False
        return not self._finished

    async def _arm(self) -> None:
        pair, sock = self._bind_fresh_pair()
        fs_addr = (self.fs_ip, pair.fs_port)
        try:
            sock.connect(fs_addr)  # numeric: no resolver, nothing to await
        except OSError as exc:
            sock.close()
            self.ports.release(pair)
            raise MediaUnavailable(f"cannot connect the unicast socket: {exc}") from exc
        self._drop_leg("replaced")
        leg = _Leg(pair, sock, self.channel_state.park_generation)
        self._leg = leg
        self._armed_generation = leg.park_generation
        if self._engine is not None:
            self._engine.register(leg, self)
        else:
            assert self._hub is not None
            self._hub.register(leg, self)
        message = commands.unicast(
            self.fs_ip, pair.fs_port, pair.host, pair.our_port, native=self.native
        )
        try:
            await self.call.conn.send_ok(message)
        except (CommandError, ConnectionClosed) as exc:
            self._drop_leg("refused")
            raise MediaUnavailable(f"unicast refused: {exc}") from exc
        self.arms += 1
        self._grace()
        self.log.info(
            "unicast.armed",
            fs_port=pair.fs_port,
            our_port=pair.our_port,
            native=self.native,
            park=leg.park_generation,
        )
        self._touch_state()
        self._wake_sender()

    def _bind_fresh_pair(self) -> tuple[PortPair, socket.socket]:
        # A plain non-blocking socket: the hub's selector waits for it, and binding a numeric
        # address needs no resolver, so nothing here has to await.
        last_error: OSError | None = None
        for _ in range(3):
            pair = self.ports.acquire()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                sock.bind((pair.host, pair.our_port))
            except OSError as exc:  # taken by another process: try the next pair
                sock.close()
                self.ports.release(pair)
                last_error = exc
                continue
            return pair, sock
        raise MediaUnavailable(f"cannot bind a unicast port: {last_error}")

    def _drop_leg(self, reason: str) -> None:
        leg, self._leg = self._leg, None
        if leg is None:
            return
        leg.alive = False
        if self._engine is not None:
            self._engine.unregister(leg)  # before close: epoll must not keep a dead fd
        if self._hub is not None:
            self._hub.unregister(leg)  # before close: the selector must not keep a dead fd
        leg.sock.close()
        self.ports.release(leg.pair)
        self.log.info("unicast.down", reason=reason, fs_port=leg.pair.fs_port)
        self._touch_state()

    async def _on_event(self, event: Event, change: str | None) -> None:
        leg = self._leg
        if change == "playback_start" and leg is not None:
            # Our frames would interleave with the file's; the switch sends us nothing now.
            leg.fs_busy = True
        elif change == "playback_end" and leg is not None:
            self._drop_leg("playback ended (FreeSWITCH resets the session's media)")
            self._unexpected_teardown()
        elif change in ("unpark", "bridge", "hangup") and leg is not None:
            self._drop_leg(change)
            if change != "hangup":
                self._unexpected_teardown()
        elif change == "new_park" and self.auto_rearm and self.active:
            self.nursery.start_soon(self._auto_rearm)
        if change == "playback_end":
            self._grace()

    def _unexpected_teardown(self) -> None:
        if self.active:
            self.log.warning("unicast.torn_down_while_active")
            self._grace()

    async def _auto_rearm(self) -> None:
        try:
            await self.rearm()
        except MediaUnavailable as exc:
            self._lose(str(exc))

    # -- receiving -------------------------------------------------------------------------

    def _receive(self, leg: _Leg, now: float) -> None:
        """One datagram from ``leg``'s ready socket (called by the hub's receive loop)."""
        try:
            data = self._read_datagram(leg.sock)
        except OSError:  # nothing there after all (BlockingIOError), or ECONNREFUSED
            return
        if not leg.alive:
            return
        if len(data) != self._frame_size:
            self.stats.bad_datagrams += 1
            return
        self._last_rx = now
        if not self._suspended:
            self._deliver(self._in.convert(data))

    def _receive_into(self, leg: _Leg, conv: BatchConverter, now: float) -> None:
        """The engine's pass: one datagram of ``leg`` into the batch's next staging row."""
        try:
            nbytes = self._read_into(leg.sock, conv.staging_view(conv.pending))
        except OSError:  # nothing there after all (BlockingIOError), or ECONNREFUSED
            return
        if not leg.alive:
            return
        if nbytes != self._frame_size:  # the socket is connected: only the switch's datagrams
            self.stats.bad_datagrams += 1
            return
        self._last_rx = now
        if not self._suspended:  # _deliver checks the rest after the batch is converted
            conv.commit(self._in_row, self)

    def _read_into(self, sock: socket.socket, buf: memoryview) -> int:
        """Hook for measurements (bench): read one datagram into ``buf``."""
        return sock.recv_into(buf)

    def _read_datagram(self, sock: socket.socket) -> bytes:
        """Hook for measurements (bench): read one datagram."""
        return sock.recv(_MAX_DATAGRAM)

    def _loss_watch_paused(self) -> bool:
        cs = self.channel_state
        return self._arming or cs.playing_app is not None or cs.bridged

    # -- sending ---------------------------------------------------------------------------

    def _wake_sender(self) -> None:
        if self._pace_slot is not None:
            return  # already visited by the ticker (the usual case while speech plays)
        if not self._can_send():
            return
        if self._engine is not None:
            self._engine.pace(self)
        elif self._hub is not None:
            self._hub.pace(self)

    def _take_frame(self) -> bytes | None:
        """The engine's visit at this call's phase: the next frame (model format) or None."""
        if not self._can_send():
            return None
        return self._next_frame()

    def _send_frame(self, frame: memoryview, tick: float) -> None:
        """The engine sends this call's converted frame of the tick at ``tick``."""
        leg = self._leg
        if leg is None or not leg.alive or self._finished:
            return  # it left between taking the frame and now
        try:
            leg.sock.send(frame)
        except BlockingIOError:  # the socket buffer is full: drop this frame, never wait
            self.stats.send_dropped += 1
        except OSError:  # a vanished route, or ECONNREFUSED: this frame is lost
            self.stats.send_dropped += 1
        else:
            self._sent(trio.current_time() - tick)
        self._last_sent_at = tick
        if self._progress:
            self._progress.unpark_all()

    # -- the engine's per-call state -------------------------------------------------------

    def _open_lanes(self) -> None:
        engine = self._engine = _engine.MediaEngine.current()
        self._in_batch = engine.converter(self.line_format, self.model_format)
        self._out_batch = engine.converter(self.model_format, self.line_format)
        self._in_row = self._in_batch.open()
        self._out_row = self._out_batch.open()

    def _close_lanes(self) -> None:
        in_batch, out_batch = self._in_batch, self._out_batch
        self._in_batch = self._out_batch = None  # the engine skips this call from now on
        if in_batch is not None:
            in_batch.release(self._in_row)
        if out_batch is not None:
            out_batch.release(self._out_row)

    def _can_send(self) -> bool:
        leg = self._leg
        return (
            leg is not None
            and leg.alive
            and not leg.fs_busy
            and not self._suspended
            and not self._finished
            and (bool(self._queue) or len(self._framer) > 0)
        )

    def _pace(self, slot_at: float) -> bool:
        """The ticker's visit at this call's slot: send one frame; False when nothing went."""
        leg = self._leg
        if not self._can_send() or leg is None:
            return False
        frame = self._next_frame()
        if frame is None:
            return False
        try:
            leg.sock.send(frame)
        except OSError:  # a full buffer, a vanished route, ECONNREFUSED: this frame is lost
            self.stats.send_dropped += 1
        else:
            self._sent(trio.current_time() - slot_at)
        self._last_sent_at = slot_at
        self._progress.unpark_all()
        return True

    def _next_frame(self) -> bytes | None:
        if self._queue:
            item, frame = self._queue.popleft()
        else:
            partial = self._flush_partial_frame()
            if partial is None:
                return None
            item, frame = partial
        if item != self.current_item:
            self.current_item = item
            self._played_frames = 0
        self._played_frames += 1
        self.stats.frames_played += 1
        return frame

    def _sent(self, lateness: float) -> None:
        """Hook for measurements (bench): how late this frame left against its 20 ms slot."""

    def _flush_partial_frame(self) -> tuple[str, bytes] | None:
        frame = self._framer.flush(self._silence)
        if frame is None or self._framer_item is None:
            return None
        return self._framer_item, frame

    def _flush_partial(self) -> None:
        partial = self._flush_partial_frame()
        if partial is not None:
            self._queue.append(partial)

    def _discard_playback(self) -> None:
        self._queue.clear()
        self._framer.clear()
        self._framer_item = None
        self.current_item = None
        self._played_frames = 0
        # The converter holds filter history of speech nobody will hear: start clean.
        if self._out_batch is not None:
            self._out_batch.reset(self._out_row)
        else:
            self._out = converter(self.model_format, self.line_format)
        self._last_sent_at = min(self._last_sent_at, trio.current_time() - FRAME_SECONDS)
        self._progress.unpark_all()
