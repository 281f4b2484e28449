"""Media on the simulated switch: the caller's voice, each channel's native-unicast peer, what
the caller heard from playbacks, and mod_audio_stream.

Opt-in (``open_freeswitch_sim(media_peers=True)``, or ``caller_audio=`` on one call). Then
every channel gets a ``ChannelMedia`` (``call.media``) holding a ``UnicastPeer``
(``callcontrol.testing.media_peers``) driven by the channel's own transitions — armed by a
``sendmsg unicast`` taken in a park, stopped by a playback, torn down by its end, by a bridge,
an unpark or the hangup, re-allowed by the next CHANNEL_PARK — and the switch loads
mod_audio_stream (``AudioStreamPeer``): ``uuid_audio_stream`` in the api, its CUSTOM events
on the sockets, its temp files playable for exactly their length.

The real switch gives no event for any of the unicast transitions; neither does the simulator.
Both peers use real sockets and pace on the trio clock: use them on the real clock, with
short ``trio.fail_after`` bounds and event-driven waits.
"""

from __future__ import annotations

import wave
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import attrs
import trio

from callcontrol.media import codecs
from callcontrol.media.codecs import AudioFormat
from callcontrol.testing.media_peers import (
    FRAME_SECONDS,
    FrameSource,
    UnicastPeer,
    audio_file_seconds,
    tone,
)

if TYPE_CHECKING:
    from callcontrol.testing.freeswitch._channel import Channel
    from callcontrol.testing.freeswitch._sim import FreeSwitchSim

# FreeSWITCH's defaults for a unicast message that leaves a header out (switch_ivr.c).
_UNICAST_DEFAULTS = {"local-ip": "127.0.0.1", "local-port": "8025",
                     "remote-ip": "127.0.0.1", "remote-port": "8026", "transport": "udp"}


# --- the caller's voice ------------------------------------------------------------------------


def _samples_per_frame(rate: int) -> int:
    return int(rate * FRAME_SECONDS)


def _frames(pcm: bytes, rate: int, fmt: AudioFormat) -> list[bytes]:
    """``pcm`` (PCM16 mono at ``rate``) cut into 20 ms frames of ``fmt``, the last one padded."""
    if rate != fmt.rate:
        pcm = codecs.Resampler(rate, fmt.rate, backend="numpy").process(pcm)
    size = _samples_per_frame(fmt.rate) * 2
    pcm += b"\x00" * (-len(pcm) % size)
    return [codecs.encode_line(fmt, pcm[i:i + size]) for i in range(0, len(pcm), size)]


def read_wav(path: str | Path) -> tuple[bytes, int]:
    """PCM16 mono samples and rate of a WAV file (16-bit; the first channel of a stereo one)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: caller audio must be 16-bit PCM")
        data = w.readframes(w.getnframes())
        channels, rate = w.getnchannels(), w.getframerate()
    if channels > 1:
        step = 2 * channels
        data = b"".join(data[i:i + 2] for i in range(0, len(data), step))
    return data, rate


@attrs.define(eq=False)
class Utterance:
    """One stretch of caller speech queued with ``CallerAudio.say``; sent once, in order."""

    pcm: bytes
    rate: int
    started: float | None = None  # trio time of its first frame on the wire
    finished: float | None = None  # trio time of its last frame
    done: trio.Event = attrs.field(factory=trio.Event)
    _cache: dict[AudioFormat, list[bytes]] = attrs.field(factory=dict)

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.rate

    def frames(self, fmt: AudioFormat) -> list[bytes]:
        if fmt not in self._cache:
            self._cache[fmt] = _frames(self.pcm, self.rate, fmt)
        return self._cache[fmt]


Background = Callable[[AudioFormat, int], bytes]


def _silence(fmt: AudioFormat, k: int) -> bytes:
    return codecs.encode_line(fmt, b"\x00\x00" * _samples_per_frame(fmt.rate))


class CallerAudio:
    """What the caller says, frame by frame: queued utterances (``say``), in order, each sent
    once; between and after them a background (silence, a tone, or a looped recording).

    One cursor per call: the peers that carry the caller's audio (unicast, mod_audio_stream)
    take the next 20 ms frame from it when they send one, so speech queued while nothing
    streams waits for the stream (nothing is lost to a gap), and two transports streaming the
    same call at once would share it.
    """

    def __init__(self, background: Background | None = None) -> None:
        self.background: Background = background or _silence
        self.queue: deque[Utterance] = deque()
        self.said: list[Utterance] = []
        self.frames_sent = 0
        self._k = 0  # background frames sent
        self._pos = 0  # frames of queue[0] sent

    # constructors ------------------------------------------------------------------------

    @classmethod
    def silence(cls) -> CallerAudio:
        return cls()

    @classmethod
    def tone(cls, freq: float, amplitude: int = 8000) -> CallerAudio:
        """A continuous sine at ``freq`` Hz (the lab's injected tones: 440 Hz at 8000)."""
        sources: dict[AudioFormat, FrameSource] = {}

        def background(fmt: AudioFormat, k: int) -> bytes:
            if fmt not in sources:
                sources[fmt] = tone(freq, fmt, amplitude)
            return sources[fmt](k)

        return cls(background)

    @classmethod
    def pcm(cls, data: bytes, rate: int = 8000, *, loop: bool = False) -> CallerAudio:
        """PCM16 mono ``data`` at ``rate``: said once from the first frame, then silence (or
        repeated forever with ``loop=True``)."""
        if loop:
            looped: dict[AudioFormat, list[bytes]] = {}

            def background(fmt: AudioFormat, k: int) -> bytes:
                if fmt not in looped:
                    looped[fmt] = _frames(data, rate, fmt) or [_silence(fmt, 0)]
                frames = looped[fmt]
                return frames[k % len(frames)]

            return cls(background)
        audio = cls()
        audio.say(data, rate)
        return audio

    @classmethod
    def wav(cls, path: str | Path, *, loop: bool = False) -> CallerAudio:
        """A 16-bit WAV file, said once (or looped), resampled to the line."""
        data, rate = read_wav(path)
        return cls.pcm(data, rate, loop=loop)

    # speaking ----------------------------------------------------------------------------

    def say(self, pcm: bytes, rate: int = 8000) -> Utterance:
        """Queue PCM16 mono speech; it goes out after whatever is queued before it."""
        utterance = Utterance(pcm, rate)
        self.queue.append(utterance)
        self.said.append(utterance)
        return utterance

    def say_wav(self, path: str | Path) -> Utterance:
        data, rate = read_wav(path)
        return self.say(data, rate)

    @property
    def speaking(self) -> bool:
        return bool(self.queue)

    def frame(self, fmt: AudioFormat) -> bytes:
        """The caller's next 20 ms frame in ``fmt`` (what the peers call for each send)."""
        self.frames_sent += 1
        while self.queue:
            current = self.queue[0]
            frames = current.frames(fmt)
            if self._pos < len(frames):
                if self._pos == 0:
                    current.started = trio.current_time()
                data = frames[self._pos]
                self._pos += 1
                if self._pos >= len(frames):
                    self._finish(current)
                return data
            self._finish(current)
        data = self.background(fmt, self._k)
        self._k += 1
        return data

    def _finish(self, utterance: Utterance) -> None:
        self.queue.popleft()
        self._pos = 0
        utterance.finished = trio.current_time()
        utterance.done.set()

    def source(self, fmt: AudioFormat) -> FrameSource:
        """A ``media_peers`` frame source reading this voice in ``fmt``."""
        return lambda _k: self.frame(fmt)


CallerAudioLike: TypeAlias = CallerAudio | float | bytes | str | Path | None


def as_caller_audio(spec: CallerAudioLike) -> CallerAudio:
    """``None`` → silence; a number → a tone of that many Hz; ``bytes`` → PCM16 mono 8 kHz,
    said once; a ``str``/``Path`` → a WAV file, said once; a ``CallerAudio`` as it is."""
    if isinstance(spec, CallerAudio):
        return spec
    if spec is None:
        return CallerAudio.silence()
    if isinstance(spec, bool):
        raise TypeError("caller_audio: a bool is not audio")
    if isinstance(spec, (int, float)):
        return CallerAudio.tone(float(spec))
    if isinstance(spec, bytes):
        return CallerAudio.pcm(spec)
    return CallerAudio.wav(spec)


# --- what the caller heard from playbacks ------------------------------------------------------


@attrs.define(eq=False)
class PlayedFile:
    """One playback on the channel: what, when, how it ended, and — for audio the simulator
    can read (mod_audio_stream's temp files) — the samples."""

    path: str
    app: str
    started: float
    ended: float | None = None
    response: str | None = None
    pcm: bytes | None = None  # the whole file as PCM16 mono at ``rate``
    rate: int = 0

    @property
    def seconds(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def heard_pcm(self) -> bytes:
        """The part of the file the caller heard before the playback ended (all of it while
        it still plays is not known yet: what has been played so far)."""
        if self.pcm is None or not self.rate:
            return b""
        end = self.ended if self.ended is not None else trio.current_time()
        samples = max(0, round((end - self.started) * self.rate))
        return self.pcm[:samples * 2]


def temp_file_audio(path: str) -> tuple[bytes, int] | None:
    """PCM16 and rate of a mod_audio_stream temp file (``<uuid>_<n>.tmp.<ext>``)."""
    p = Path(path)
    suffix = p.suffix.lstrip(".")
    data = p.read_bytes()
    if suffix.startswith("r") and suffix[1:].isdigit():
        return data, int(suffix[1:]) * 1000
    if suffix == "wav":
        return read_wav(p)
    if suffix == "pcmu":
        return codecs.ulaw_decode(data), 8000
    if suffix == "pcma":
        return codecs.alaw_decode(data), 8000
    return None


def is_temp_file(sim: FreeSwitchSim, path: str) -> bool:
    tmpdir = sim.media_tmpdir
    return tmpdir is not None and Path(path).parent == Path(tmpdir) and ".tmp." in path


def playback_plan(sim: FreeSwitchSim, path: str) -> tuple[float, PlayedFile | None, bool]:
    """How long ``path`` plays, the record of it, and whether the file is missing."""
    now = trio.current_time()
    if path in sim.media.missing:
        return 0.0, None, True
    if not is_temp_file(sim, path):
        return sim.media.duration(path), PlayedFile(path, "playback", now), False
    if not Path(path).exists():
        return 0.0, None, True  # deleted at hangup or stop: FILE NOT FOUND
    played = PlayedFile(path, "playback", now)
    audio = temp_file_audio(path)
    if audio is not None:
        played.pcm, played.rate = audio
    if path in sim.media.durations:
        return sim.media.durations[path], played, False
    try:
        return audio_file_seconds(path), played, False
    except ValueError:  # mp3/ogg: the simulator cannot decode them
        return sim.media.default, played, False


# --- one channel's media ----------------------------------------------------------------------


class ChannelMedia:
    """The media side of one channel (``call.media``): its unicast peer, the caller's voice,
    and the playbacks the caller heard."""

    def __init__(self, sim: FreeSwitchSim, channel: Channel, voice: CallerAudio) -> None:
        self.sim = sim
        self.channel = channel
        self.voice = voice
        self.unicast = UnicastPeer(self._line_format({}), voice.source(self._line_format({})))
        self.playbacks: list[PlayedFile] = []
        self.unicast_requests: list[dict[str, str]] = []
        # (trio time, subclass, body) of every mod_audio_stream CUSTOM event of this channel
        self.audio_stream_events: list[tuple[float, str, str]] = []
        self._ready = False
        self._pending: list[Callable[[], None]] = []
        self._scope = trio.CancelScope()
        self._changed = trio.Event()
        sim.nursery.start_soon(self._run)

    async def _run(self) -> None:
        with self._scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.unicast.run)
                self._ready = True
                pending, self._pending = self._pending, []
                for hook in pending:
                    hook()

    def _call(self, hook: Callable[[], None]) -> None:
        if self._ready:
            hook()
        elif not self._scope.cancel_called:
            self._pending.append(hook)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def close(self) -> None:
        """The channel is gone: stop the peer's task (its streams were torn down already)."""
        self._pending.clear()
        self._scope.cancel()

    # what tests read ---------------------------------------------------------------------

    @property
    def heard(self) -> list[tuple[float, bytes]]:
        """Every datagram the caller heard over unicast, with its trio time."""
        return self.unicast.heard

    def heard_pcm(self) -> bytes:
        """What the caller heard over unicast, as PCM16 at the line rate."""
        return self.unicast.heard_pcm()

    def played_pcm(self) -> bytes:
        """What the caller heard from playbacks of readable files, in order, as PCM16."""
        return b"".join(p.heard_pcm() for p in self.playbacks)

    @property
    def arms(self) -> list[tuple[int, int]]:
        """``(local_port, remote_port)`` of every unicast the peer was asked to create."""
        return self.unicast.arms

    @property
    def streaming(self) -> bool:
        """Native unicast audio is flowing both ways right now."""
        return self.unicast.streaming

    @property
    def line_format(self) -> AudioFormat:
        return self.unicast.line_format

    @property
    def frames_sent(self) -> int:
        """Caller frames sent over unicast."""
        return self.unicast.sent

    @property
    def audio_stream_active(self) -> bool:
        """mod_audio_stream has a bug attached to this channel."""
        peer = self.sim.audio_stream
        return peer is not None and self.channel.uuid in peer.streams

    def say(self, pcm: bytes, rate: int = 8000) -> Utterance:
        """The caller says ``pcm`` (PCM16 mono at ``rate``) on whatever carries their audio."""
        return self.voice.say(pcm, rate)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Event-driven: returns once ``predicate()`` holds (re-checked on every peer change,
        datagram heard, playback start or end)."""
        while not predicate():
            changed, peer_changed = self._changed, self.unicast.changed
            async with trio.open_nursery() as nursery:
                async def wake(event: trio.Event) -> None:
                    await event.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(wake, changed)
                nursery.start_soon(wake, peer_changed)

    # hooks from the call flow ------------------------------------------------------------

    def _line_format(self, request: dict[str, str]) -> AudioFormat:
        """L16 at the read rate; the codec's own bytes with ``flags: native`` (media.md §1.2)."""
        ch = self.channel
        native = "native" in request.get("flags", "").lower()
        codec = ch.read_codec.upper()
        if native and codec in ("PCMU", "PCMA"):
            return AudioFormat("pcmu" if codec == "PCMU" else "pcma", 8000)
        return AudioFormat("pcm", ch.read_rate or 8000)

    def unicast_taken(self, headers: dict[str, str]) -> None:
        """A ``sendmsg unicast`` was taken in a park (armed, or killed by the peer's rules)."""
        request = {k.lower(): v for k, v in headers.items()}
        values = {k: request.get(k) or default for k, default in _UNICAST_DEFAULTS.items()}
        self.unicast_requests.append(values)
        if values["transport"].lower() != "udp":
            return  # tcp unicast: not simulated (the product uses udp)
        try:
            local_port, remote_port = int(values["local-port"]), int(values["remote-port"])
        except ValueError:
            return
        fmt = self._line_format(request)

        def arm() -> None:
            if fmt != self.unicast.line_format:
                self.unicast.line_format = fmt
                self.unicast.source = self.voice.source(fmt)
            self.unicast.on_unicast(values["local-ip"], local_port, values["remote-ip"],
                                    remote_port)

        self._call(arm)

    def playback_started(self, played: PlayedFile | None) -> None:
        if played is not None:
            self.playbacks.append(played)
        self._call(self.unicast.on_playback_start)

    def playback_ended(self, response: str) -> None:
        for played in reversed(self.playbacks):
            if played.ended is None:
                played.ended = trio.current_time()
                played.response = response
                break
        self._call(self.unicast.on_playback_end)

    def teardown(self) -> None:
        self._call(self.unicast.on_teardown)

    def parked(self) -> None:
        self._call(self.unicast.on_park)
