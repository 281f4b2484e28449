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
* **Pacing.** FreeSWITCH writes each datagram to the caller as it arrives, so one sender task
  releases one frame per 20 ms on an absolute trio-clock grid; when it falls behind by more than
  half a frame it restarts the grid instead of bursting (never faster than real time). Nothing
  is sent when nothing is queued: the switch plays silence by itself.
* **Ports.** ``UnicastPorts`` hands out pairs (even port for FreeSWITCH, the next one for us)
  from ``CALLCONTROL_UNICAST_PORTS``, never the same pair to two arms, least recently used first,
  and each arm takes a fresh pair (the switch only frees its port at teardown). Datagrams are
  accepted only from the switch's own address of the pair.
"""

from __future__ import annotations

import ipaddress
import math
from collections import deque
from typing import Any

import attrs
import trio

from callcontrol.config import PortRange
from callcontrol.esl import CommandError, ConnectionClosed, Event, commands
from callcontrol.esl.outbound import OutboundCall
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
_MAX_DATAGRAM = 4096
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
    rate = int(text) if text.isdigit() else 0
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
    """One armed unicast: our socket, the switch's address, the park it belongs to."""

    pair: PortPair
    sock: trio.socket.SocketType
    fs_addr: tuple[str, int]
    park_generation: int
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    fs_busy: bool = False  # FreeSWITCH is playing something inside the park loop
    alive: bool = True


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
        self._silence = silence(fmt, self._frame_size)
        self._in: Converter = converter(fmt, model_format)
        self._out: Converter = converter(model_format, fmt)
        self._framer = Framer(self._frame_size)
        self._framer_item: str | None = None
        self._queue: deque[tuple[str, bytes]] = deque()
        self._cap_frames = PLAYBACK_CAP_MS // FRAME_MS
        self._leg: _Leg | None = None
        self._armed_generation = -1
        self._arm_lock = trio.Lock()
        self._send_wakeup = trio.Event()
        self._progress = trio.Event()
        self._last_sent_at = -math.inf
        self.current_item: str | None = None
        self._played_frames = 0
        self.arms = 0

    # -- public API ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.nursery.start_soon(self._sender)
        if not await self.rearm():
            raise MediaUnavailable("could not arm unicast (channel not in a usable park)")

    @property
    def armed(self) -> bool:
        return self._leg is not None and self._leg.alive

    async def rearm(self) -> bool:
        async with self._arm_lock:
            return await self._rearm_locked()

    async def play(self, pcm: bytes, item_id: str) -> None:
        if self._suspended or self._finished:
            return
        if self._framer_item is not None and item_id != self._framer_item:
            self._flush_partial()
        self._framer_item = item_id
        for frame in self._framer.push(self._out.convert(pcm)):
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
                self._progress = trio.Event()
                await self._progress.wait()
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
        if self._closed:
            return
        self._closed = True
        self._drop_leg("closed")
        self._discard_playback()
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
        pair, sock = await self._bind_fresh_pair()
        self._drop_leg("replaced")
        leg = _Leg(pair, sock, (self.fs_ip, pair.fs_port), self.channel_state.park_generation)
        self._leg = leg
        self._armed_generation = leg.park_generation
        await self.nursery.start(self._receiver, leg)
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

    async def _bind_fresh_pair(self) -> tuple[PortPair, trio.socket.SocketType]:
        last_error: OSError | None = None
        for _ in range(3):
            pair = self.ports.acquire()
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            try:
                await sock.bind((pair.host, pair.our_port))
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
        leg.scope.cancel()
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

    async def _receiver(self, leg: _Leg, *, task_status: trio.TaskStatus[None]) -> None:
        with leg.scope:
            task_status.started()
            while True:
                try:
                    data, addr = await self._recv(leg.sock)
                except (trio.ClosedResourceError, OSError):
                    return
                if addr[:2] != leg.fs_addr or len(data) != self._frame_size:
                    self.stats.bad_datagrams += 1
                    continue
                self._note_received()
                if not self._suspended:
                    self._deliver(self._in.convert(data))

    async def _recv(self, sock: trio.socket.SocketType) -> tuple[bytes, Any]:
        return await sock.recvfrom(_MAX_DATAGRAM)

    def _loss_watch_paused(self) -> bool:
        cs = self.channel_state
        return cs.playing_app is not None or cs.bridged

    # -- sending ---------------------------------------------------------------------------

    def _wake_sender(self) -> None:
        self._send_wakeup.set()

    def _can_send(self) -> bool:
        leg = self._leg
        return (
            leg is not None
            and leg.alive
            and not leg.fs_busy
            and not self._suspended
            and (bool(self._queue) or len(self._framer) > 0)
        )

    async def _sender(self) -> None:
        next_at: float | None = None
        while not self._finished:
            if not self._can_send():
                next_at = None
                self._send_wakeup = trio.Event()
                await self._send_wakeup.wait()
                continue
            now = trio.current_time()
            if next_at is None or next_at < now - FRAME_SECONDS / 2:
                next_at = now
            await trio.sleep_until(next_at)
            leg = self._leg
            if leg is None or not self._can_send():
                continue
            frame = self._next_frame()
            if frame is None:
                continue
            try:
                await leg.sock.sendto(frame, leg.fs_addr)
            except (trio.ClosedResourceError, OSError):
                continue
            self._sent(trio.current_time() - next_at)
            self._last_sent_at = next_at
            next_at += FRAME_SECONDS
            self._progress.set()

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
        self._out = converter(self.model_format, self.line_format)
        self._last_sent_at = min(self._last_sent_at, trio.current_time() - FRAME_SECONDS)
        self._progress.set()
