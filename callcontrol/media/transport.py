"""The audio path between FreeSWITCH and the speech model, as the call logic sees it.

Two transports sit behind one interface (``MediaTransport``): native ``unicast`` over UDP
(``callcontrol.media.unicast``) and mod_audio_stream over a websocket
(``callcontrol.media.audio_stream``). The call logic never learns which one runs. Both speak the
*model's* format on this side (``model_format``, PCM16 LE mono at 24 kHz by default, or G.711 at
8 kHz when the model takes it) and convert to the line with ``callcontrol.media.codecs``.

Using a transport
-----------------
::

    async with open_transport(...) as media:       # owns the transport's tasks
        await media.start()                          # MediaUnavailable when it cannot start
        # forward caller audio:  async for frame in media.frames(): await model.send_audio(frame)
        await media.play(delta.pcm, delta.item_id)   # model speech, queued and paced
        played_ms = await media.interrupt()          # barge-in → conversation.item.truncate
        await media.drained()                        # everything queued was heard
        await media.suspend(); ...hold music...; await media.resume()
        await media.rearm()                          # after a re-park (unicast); no-op otherwise
        await media.media_lost.wait()                # the stream died: degrade gracefully

Buffer policy (bounded both ways)
---------------------------------
* **Caller → model**: at most ``CALLER_BUFFER_MS`` (1 s) of frames wait for the consumer of
  ``frames()``. When the model side is slower than real time the *oldest* frames are dropped:
  stale speech is worth less than current speech, and server VAD copes with a gap better than
  with a growing delay. Drops are counted (``stats.caller_frames_dropped``).
* **Model → line**: the model produces speech faster than real time, so ``play`` only queues;
  the transport releases it at real-time pace. At most ``PLAYBACK_CAP_MS`` (30 s) may be queued;
  audio beyond that is dropped (newest first, counted in ``stats.playback_ms_dropped``) rather
  than blocking ``play`` — a blocked ``play`` would stall the model's event reader and delay
  barge-in. A model answer longer than 30 s ahead of the caller is a bug upstream.

Loss of media
-------------
``media_lost`` is set once, for good, with ``lost_reason``: no caller audio for ``lost_after``
seconds while the transport is active (started, not suspended), the websocket closed, or a
``mod_audio_stream::error``. ``frames()`` then ends. A hangup ends ``frames()`` too, but is not
a media loss (the call is over anyway).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import attrs
import trio

from callcontrol.esl import Event, Frame
from callcontrol.esl.outbound import OutboundCall
from callcontrol.logs import get_logger
from callcontrol.media.codecs import PCM24K, AudioFormat

FRAME_MS = 20
FRAME_SECONDS = FRAME_MS / 1000
CALLER_BUFFER_MS = 1000
PLAYBACK_CAP_MS = 30_000
LOST_AFTER = 1.0
# FreeSWITCH applications that play audio to the caller. While one runs, the socket's park loop
# is busy inside it; when it *ends* it resets the session's media (tears native unicast down).
PLAYING_APPS = frozenset(
    {
        "playback",
        "endless_playback",
        "speak",
        "say",
        "phrase",
        "gentones",
        "play_and_get_digits",
        "play_and_detect_speech",
        "record",
    }
)


class MediaUnavailable(Exception):
    """The media path could not be set up; the call should fall back without AI audio."""


@attrs.define
class MediaStats:
    caller_frames: int = 0
    caller_frames_dropped: int = 0
    frames_played: int = 0
    playback_ms_dropped: float = 0.0
    bad_datagrams: int = 0
    send_dropped: int = 0  # frames the kernel would not take at once (EAGAIN): never waited for


@runtime_checkable
class MediaTransport(Protocol):
    """What the call logic uses; the same for both transports."""

    model_format: AudioFormat
    line_format: AudioFormat
    media_lost: trio.Event
    lost_reason: str | None
    stats: MediaStats

    async def start(self) -> None:
        """Begin streaming both ways; raises ``MediaUnavailable`` when it cannot."""

    def frames(self) -> AsyncIterator[bytes]:
        """Caller audio in ``model_format``, 20 ms per item; ends on close, hangup or loss."""

    async def play(self, pcm: bytes, item_id: str) -> None:
        """Queue model speech (``model_format``) of assistant item ``item_id``; never blocks."""

    async def interrupt(self) -> int:
        """Barge-in: silence the caller's side now; ms of the current item actually played."""

    @property
    def playing(self) -> bool:
        """True while queued or sounding model audio remains."""

    async def drained(self) -> None:
        """Wait until everything queued has been played to the caller."""

    async def suspend(self) -> None:
        """Before hold music: drop queued speech, stop sending, stop delivering caller audio."""

    async def resume(self) -> None:
        """After hold music: caller audio flows again (re-arming unicast if needed)."""

    async def rearm(self) -> bool:
        """After a re-park: native unicast needs a new ``unicast``; True when audio flows."""

    async def close(self) -> None:
        """Stop the stream and free its resources; idempotent."""


def frame_bytes(fmt: AudioFormat, ms: int = FRAME_MS) -> int:
    return int(fmt.bytes_per_ms * ms)


def silence(fmt: AudioFormat, nbytes: int) -> bytes:
    """Digital silence in ``fmt`` (G.711 silence is not zero bytes)."""
    fill = {"pcm": b"\x00", "pcmu": b"\xff", "pcma": b"\xd5"}[fmt.encoding]
    return fill * nbytes


class FrameQueue:
    """Caller frames waiting for the model: bounded, dropping the oldest; one consumer.

    ``put`` runs once per 20 ms frame per call, and the consumer's wake-up is the one task
    switch per frame the media path keeps, so it is as cheap as trio allows: the waiting task
    is rescheduled directly (no ``ParkingLot``, no fresh ``trio.Event`` per frame), and the
    queue is its own async iterator (``frames()``), with no async generator frame in between.
    A frame already queued is handed over without a checkpoint, as a channel's
    ``receive_nowait`` would.
    """

    def __init__(self, max_frames: int) -> None:
        self._frames: deque[bytes] = deque()
        self._max = max_frames
        self._waiter: trio.lowlevel.Task | None = None
        self.closed = False
        self.dropped = 0

    def put(self, frame: bytes) -> None:
        if self.closed:
            return
        if len(self._frames) >= self._max:
            self._frames.popleft()
            self.dropped += 1
        self._frames.append(frame)
        self._wake()

    def clear(self) -> None:
        self._frames.clear()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def __len__(self) -> int:
        return len(self._frames)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter)

    async def _wait(self) -> None:
        if self._waiter is not None:
            raise trio.BusyResourceError("another task is already reading these frames")
        self._waiter = trio.lowlevel.current_task()

        def abort(_raise_cancel: object) -> trio.lowlevel.Abort:
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def get(self) -> bytes:
        """The oldest frame; ``trio.EndOfChannel`` once closed and empty."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise trio.EndOfChannel from None

    def __aiter__(self) -> FrameQueue:
        return self

    async def __anext__(self) -> bytes:
        frames = self._frames
        while not frames:
            if self.closed:
                raise StopAsyncIteration
            await self._wait()
        return frames.popleft()


class Framer:
    """Cuts a byte stream into fixed-size frames, keeping the remainder for the next call."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._rest = b""

    def push(self, data: bytes) -> list[bytes]:
        data = self._rest + data if self._rest else data
        cut = len(data) - len(data) % self.size
        self._rest = data[cut:]
        return [data[i : i + self.size] for i in range(0, cut, self.size)]

    def flush(self, pad: bytes) -> bytes | None:
        """The partial frame, padded to full size with ``pad`` bytes; None when empty."""
        if not self._rest:
            return None
        rest, self._rest = self._rest, b""
        return rest + pad[: self.size - len(rest)]

    def clear(self) -> None:
        self._rest = b""

    def __len__(self) -> int:
        return len(self._rest)


@attrs.define
class ChannelState:
    """What the call's channel is doing, as far as media cares (from its ESL events).

    ``park_generation`` counts park invocations: native unicast may be armed once per
    invocation. A CHANNEL_PARK only starts a new one after a CHANNEL_UNPARK (the socket app's own
    park may or may not announce itself, callflow.md §1.5, so a lone PARK is not a new one).
    """

    parked: bool = True
    park_generation: int = 0
    playing_app: str | None = None
    bridged: bool = False
    hung_up: bool = False

    def apply(self, event: Event) -> str | None:
        """Update from one event; returns what changed for media (or None)."""
        name = event.name
        if name == "CHANNEL_PARK":
            self.playing_app = None
            if not self.parked:
                self.parked = True
                self.park_generation += 1
                return "new_park"
            return None
        if name == "CHANNEL_UNPARK":
            self.parked = False
            return "unpark"
        if name == "CHANNEL_EXECUTE":
            app = event.get("Application") or ""
            if app in PLAYING_APPS:
                self.playing_app = app
                return "playback_start"
            return None
        if name == "CHANNEL_EXECUTE_COMPLETE":
            app = event.get("Application") or ""
            if app in PLAYING_APPS:
                self.playing_app = None
                return "playback_end"
            return None
        if name == "CHANNEL_BRIDGE":
            self.bridged = True
            return "bridge"
        if name == "CHANNEL_UNBRIDGE":
            self.bridged = False
            return "unbridge"
        if name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
            self.hung_up = True
            return "hangup"
        return None


class TransportBase:
    """Shared machinery: the task nursery, caller-frame queue, loss watchdog, event watching.

    Use as an async context manager: entering opens the nursery that owns the transport's
    tasks and starts watching the channel's events; leaving closes the transport.
    """

    def __init__(
        self,
        call: OutboundCall,
        *,
        model_format: AudioFormat = PCM24K,
        line_format: AudioFormat,
        lost_after: float = LOST_AFTER,
        log: Any = None,
    ) -> None:
        self.call = call
        self.model_format = model_format
        self.line_format = line_format
        self.lost_after = lost_after
        self.log = (log if log is not None else get_logger("callcontrol.media")).bind(
            call_uuid=call.uuid
        )
        self.media_lost = trio.Event()
        self.lost_reason: str | None = None
        self.stats = MediaStats()
        self.channel_state = ChannelState()
        self._caller = FrameQueue(max(1, CALLER_BUFFER_MS // FRAME_MS))
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._started = False
        self._suspended = False
        self._closed = False
        self._last_rx = -math.inf
        self._state_changed = trio.Event()
        self._events_dispatched = 0
        self._events_processed = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> TransportBase:
        stack = AsyncExitStack()
        self._nursery = await stack.enter_async_context(trio.open_nursery())
        self._stack = stack
        self.call.conn.frame_observers.append(self._observe_frame)
        try:
            await self._nursery.start(self._watch_events)
            self._nursery.start_soon(self._watchdog)
        except BaseException:
            self._nursery.cancel_scope.cancel()
            await stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await self.close()
        assert self._nursery is not None and self._stack is not None
        if self._observe_frame in self.call.conn.frame_observers:
            self.call.conn.frame_observers.remove(self._observe_frame)
        self._nursery.cancel_scope.cancel()
        return await self._stack.__aexit__(exc_type, exc, tb)

    async def close(self) -> None:
        raise NotImplementedError

    @property
    def nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError("use the transport as 'async with transport:' first")
        return self._nursery

    @property
    def active(self) -> bool:
        """Caller audio is expected now (started, not suspended, not finished)."""
        return self._started and not self._suspended and not self._finished

    @property
    def _finished(self) -> bool:
        return self._closed or self.media_lost.is_set() or self.channel_state.hung_up

    @property
    def state_changed(self) -> trio.Event:
        """Set at the next change of channel or stream state (for waiters and tests)."""
        return self._state_changed

    def _touch_state(self) -> None:
        self._state_changed.set()
        self._state_changed = trio.Event()

    async def _wait_state(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds (re-checked on each channel event); False on timeout."""
        with trio.move_on_after(timeout):
            while not predicate():
                await self._state_changed.wait()
            return True
        return False

    def _lose(self, reason: str) -> None:
        if self.media_lost.is_set() or self._closed:
            return
        self.lost_reason = reason
        self.log.warning("media.lost", reason=reason)
        self.media_lost.set()
        self._caller.close()
        self._touch_state()

    def _end_frames(self) -> None:
        self._caller.close()

    # -- caller audio ----------------------------------------------------------------------

    def _deliver(self, frame: bytes) -> None:
        """A converted caller frame; dropped while suspended."""
        if self._suspended or self._finished:
            return
        self.stats.caller_frames += 1
        self._caller.put(frame)
        self.stats.caller_frames_dropped = self._caller.dropped

    def frames(self) -> AsyncIterator[bytes]:
        return self._caller

    def _note_received(self) -> None:
        self._last_rx = trio.current_time()

    def _grace(self) -> None:
        """Restart the loss clock (after arming or resuming, audio needs a moment to come)."""
        self._last_rx = trio.current_time()

    async def _watchdog(self) -> None:
        # While audio flows this sleeps until the loss deadline instead of polling every tick:
        # about one wakeup per ``lost_after`` per call rather than four a second. While silence
        # is expected it restarts the clock every tick, so a pause that ends leaves almost a
        # whole ``lost_after`` before a loss is declared.
        tick = min(0.25, self.lost_after / 4)
        wake_at = trio.current_time() + tick
        while not self._finished:
            await trio.sleep_until(wake_at)
            now = trio.current_time()
            wake_at = now + tick
            if self._last_rx == -math.inf:
                # Not streaming yet: the transport is still asking FreeSWITCH for the audio
                # (its own start-up timeouts cover a switch that never answers), so there is no
                # silence to count until its first _grace().
                continue
            if self._loss_watch_paused():
                self._grace()
            elif self.active:
                if now - self._last_rx > self.lost_after:
                    self._lose(f"no caller audio for {self.lost_after:g} s")
                else:
                    wake_at = max(wake_at, self._last_rx + self.lost_after + tick / 4)

    def _loss_watch_paused(self) -> bool:
        """True while silence on the receive side is expected (transport-specific)."""
        return False

    # -- channel events --------------------------------------------------------------------

    async def _watch_events(self, *, task_status: trio.TaskStatus[None]) -> None:
        async with self.call.conn.subscribe(self.call.uuid) as events:
            task_status.started()
            async for event in events:
                change = self.channel_state.apply(event)
                await self._on_event(event, change)
                self._events_processed += 1
                self._touch_state()
                if change == "hangup":
                    self._end_frames()
        # The socket ended: the call is over for media too.
        self.channel_state.hung_up = True
        self._end_frames()
        self._touch_state()

    def _observe_frame(self, frame: Frame) -> None:
        # Runs in the ESL reader before the event reaches our subscription: counting here lets
        # ``_catch_up`` tell when our view of the channel includes everything received so far.
        if frame.is_event and frame.event.unique_id == self.call.uuid:
            self._events_dispatched += 1

    async def _catch_up(self, timeout: float = 1.0) -> None:
        """Wait until every event of the channel received so far has been applied.

        Another task (e.g. the hold logic) may act on an event that our watcher has not seen
        yet; decisions about the park must not be taken on a stale view.
        """
        await self._wait_state(
            lambda: self._events_processed >= self._events_dispatched, timeout
        )

    async def _on_event(self, event: Event, change: str | None) -> None:
        """Transport-specific reaction to a channel event (already applied to channel_state)."""
