"""FreeSWITCH's side of the media paths, for the simulated FreeSWITCH and for tests.

Two peers, each behaving like the real switch as measured (media.md, callflow.md), driven by the
simulator through small synchronous hooks. Each needs a nursery: ``await nursery.start(peer.run)``.

``UnicastPeer`` — native ``unicast`` of one channel:

* ``on_unicast(local_ip, local_port, remote_ip, remote_port)`` — a ``sendmsg unicast`` was
  executed. Binds ``local_port`` (our side of FreeSWITCH), sends the caller's 20 ms frames to
  ``remote`` and records every datagram received (what the caller hears). Honoured once per
  park: a second one in the same park binds, dies at once and takes the first down with it
  (u1b/u4); one sent during a playback never streams and dies when the playback ends (q2d).
* ``on_playback_start()`` / ``on_playback_end()`` — FreeSWITCH plays a file in the park loop:
  nothing is read (no datagrams to us) meanwhile, and the end tears the unicast down.
* ``on_teardown()`` — bridge, unpark (``uuid_transfer``) or hangup: stream stopped, port freed.
* ``on_park()`` — a new park invocation began (CHANNEL_PARK after UNPARK): one new arm allowed.

``AudioStreamPeer`` — mod_audio_stream (community edition) for every channel of a switch:

* ``await api(args)`` — the text after ``uuid_audio_stream``: ``<uuid> start <url> <mix> <rate>
  [metadata]``, ``stop [text]`` (blocks until the server closes TCP, as the real one does),
  ``send_text``, ``pause``, ``resume``; returns the api/response body.
* ``on_hangup(uuid)`` — the channel hung up: Close 1000 "Normal closure", temp files deleted,
  no event.
* ``emit(subclass, uuid, body)`` (given to the constructor) — called for every CUSTOM event
  the module would fire (``mod_audio_stream::connect|disconnect|error|json|play``); the
  simulator turns it into the event on the call socket.
"""

from __future__ import annotations

import base64
import json
import math
import socket
import struct
import sys
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import trio
import trio_websocket

from callcontrol.media import codecs
from callcontrol.media.codecs import AudioFormat

FRAME_SECONDS = 0.020
L16_8K = AudioFormat("pcm", 8000)
L16_16K = AudioFormat("pcm", 16000)
FrameSource = Callable[[int], bytes]


# --- caller audio sources --------------------------------------------------------------------


def tone(freq: float, fmt: AudioFormat = L16_8K, amplitude: int = 8000) -> FrameSource:
    """Frame ``k`` of a continuous sine, in ``fmt`` (as the lab's injected tones)."""
    n = int(fmt.rate * FRAME_SECONDS)

    def frame(k: int) -> bytes:
        t = (np.arange(n) + k * n) / fmt.rate
        pcm = (amplitude * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()
        return codecs.encode_line(fmt, pcm)

    return frame


def wav_source(path: str | Path, fmt: AudioFormat = L16_8K) -> FrameSource:
    """Frames of a 16-bit mono WAV file, resampled to ``fmt`` and looped."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError("wav_source needs 16-bit mono")
        pcm = w.readframes(w.getnframes())
        rate = w.getframerate()
    pcm = codecs.Resampler(rate, fmt.rate).process(pcm)
    n = int(fmt.rate * FRAME_SECONDS) * 2
    pcm += b"\x00" * (-len(pcm) % n)
    frames = [codecs.encode_line(fmt, pcm[i : i + n]) for i in range(0, len(pcm), n)]
    return lambda k: frames[k % len(frames)]


def goertzel_level(pcm: bytes, rate: int, freq: float) -> float:
    """Amplitude of ``freq`` in PCM16 ``pcm`` (what the lab used to tell tones apart)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if len(x) == 0:
        return 0.0
    t = np.arange(len(x)) / rate
    c = np.dot(x, np.cos(2 * math.pi * freq * t))
    s = np.dot(x, np.sin(2 * math.pi * freq * t))
    return float(2 * math.hypot(c, s) / len(x))


# --- native unicast --------------------------------------------------------------------------


# Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS; the socket module does not name it): each datagram
# carries the time it arrived as a struct timespec.
_SO_TIMESTAMPNS = 35
_STAMP_SPACE = socket.CMSG_SPACE(16)


def _stamp_arrivals(sock: Any) -> bool:
    if sys.platform != "linux":
        return False  # elsewhere the reader's own time stands in
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    return True


def _arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return float(seconds + nanoseconds * 1e-9)
    raise ValueError("a datagram without its arrival time")


@attrs.define(eq=False)
class _Arm:
    local: tuple[str, int]
    remote: tuple[str, int]
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    streams: bool = True  # False: created but never streams (the switch's broken cases)
    sock: Any = None


class UnicastPeer:
    """One channel's native unicast, as FreeSWITCH 1.10.12 does it."""

    def __init__(self, line_format: AudioFormat = L16_8K, source: FrameSource | None = None):
        self.line_format = line_format
        self.source = source if source is not None else tone(440, line_format)
        self._frame_size = int(line_format.bytes_per_ms * 20)
        self._nursery: trio.Nursery | None = None
        self._arm: _Arm | None = None
        self._park_used = False
        self.playing = False
        self.sent = 0
        self.heard: list[tuple[float, bytes]] = []
        # when each datagram of ``heard`` reached the socket, by the kernel's clock: the pacing
        # of the sender, whatever the delay before this task reads it (a busy box)
        self.arrived: list[float] = []
        self.arms: list[tuple[int, int]] = []
        self.teardowns = 0
        self.changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    @property
    def streaming(self) -> bool:
        return self._arm is not None and self._arm.streams

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    # hooks ----------------------------------------------------------------------------------

    def on_park(self) -> None:
        self._park_used = False
        self.playing = False

    def on_unicast(self, local_ip: str, local_port: int, remote_ip: str, remote_port: int) -> None:
        if self._nursery is None:
            raise RuntimeError("start UnicastPeer.run first")
        arm = _Arm((local_ip, local_port), (remote_ip, remote_port))
        if self._park_used or self.playing:
            # Second unicast in one park: "Created … Shutting down" 20 ms later, no audio.
            # During a playback: taken at once, never streams, torn down at the playback's end.
            arm.streams = False
            if self._park_used:
                self.on_teardown()
        self._park_used = True
        self.arms.append((local_port, remote_port))
        if arm.streams:
            self._stop()
            self._arm = arm
        self._nursery.start_soon(self._run_arm, arm)
        self._notify()

    def on_playback_start(self) -> None:
        self.playing = True
        self._notify()

    def on_playback_end(self) -> None:
        self.playing = False
        self.on_teardown()

    def on_teardown(self) -> None:
        if self._arm is not None:
            self.teardowns += 1
        self._stop()
        self._notify()

    def _stop(self) -> None:
        arm, self._arm = self._arm, None
        if arm is not None:
            arm.scope.cancel()

    # the stream -----------------------------------------------------------------------------

    async def _run_arm(self, arm: _Arm) -> None:
        with arm.scope:
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with sock:
                try:
                    await sock.bind(arm.local)
                except OSError:  # the switch logs "[CRIT] Failure creating unicast connection"
                    return
                if not arm.streams:
                    await trio.sleep(0.020)
                    return
                arm.sock = sock
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._send_caller, arm)
                    await self._record_heard(arm)

    async def _send_caller(self, arm: _Arm) -> None:
        next_at = trio.current_time() + FRAME_SECONDS  # first datagram ~20-40 ms after arming
        while True:
            await trio.sleep_until(next_at)
            next_at += FRAME_SECONDS
            if self.playing:
                continue  # the park loop is inside the playback: nothing is read
            await arm.sock.sendto(self.source(self.sent), arm.remote)
            self.sent += 1

    async def _record_heard(self, arm: _Arm) -> None:
        stamped = _stamp_arrivals(arm.sock)
        while True:
            data, ancillary, _flags, _addr = await arm.sock.recvmsg(65536, _STAMP_SPACE)
            # Any source is accepted; each datagram is written to the caller as one frame.
            now = trio.current_time()
            self.heard.append((now, bytes(data)))
            self.arrived.append(_arrival(ancillary) if stamped else now)
            self._notify()

    def heard_pcm(self) -> bytes:
        """Everything the caller heard over unicast, as PCM16 at the line rate."""
        return b"".join(codecs.decode_line(self.line_format, frame) for _t, frame in self.heard)


# --- mod_audio_stream ------------------------------------------------------------------------

Emit = Callable[[str, str, str], None]
OK = "+OK Success\n"
FAILED = "-ERR Operation Failed\n"
_RATES = {"8k": 8000, "16k": 16000}
_STREAM_AUDIO_RATES = (8000, 16000, 24000, 32000, 48000, 64000)
_EXTENSIONS = {"wav": "wav", "mp3": "mp3", "ogg": "ogg", "pcmu": "pcmu", "pcma": "pcma"}


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


@attrs.define(eq=False)
class _Stream:
    uuid: str
    url: str
    rate: int
    metadata: str | None
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    ws: trio_websocket.WebSocketConnection | None = None
    closing: bool = False
    paused: bool = False
    tcp_closed: trio.Event = attrs.field(factory=trio.Event)
    files: list[Path] = attrs.field(factory=list)
    counter: int = 0
    sent: int = 0


class AudioStreamPeer:
    """mod_audio_stream for all channels of one simulated switch."""

    def __init__(
        self,
        emit: Emit,
        tmpdir: str | Path,
        *,
        source: Callable[[str, AudioFormat], FrameSource] | None = None,
    ) -> None:
        self.emit = emit
        self.tmpdir = Path(tmpdir)
        self.source = source if source is not None else (lambda _uuid, fmt: tone(440, fmt))
        self.streams: dict[str, _Stream] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    # api ------------------------------------------------------------------------------------

    async def api(self, args: str) -> str:
        """``uuid_audio_stream <args>``; the api/response body the module gives."""
        argv = args.split(" ")  # the module splits on single spaces: metadata is one word
        if len(argv) < 2:
            return FAILED
        uuid, command = argv[0], argv[1]
        if command == "start":
            return self._start(uuid, argv[2:])
        stream = self.streams.get(uuid)
        if stream is None:
            return FAILED
        if command == "stop":
            return await self._stop(stream, " ".join(argv[2:]) or None)
        if command == "send_text" and stream.ws is not None and len(argv) > 2:
            await stream.ws.send_message(" ".join(argv[2:]).strip("'"))
            return OK
        if command in ("pause", "resume"):
            stream.paused = command == "pause"
            return OK
        return FAILED

    def _start(self, uuid: str, argv: list[str]) -> str:
        if self._nursery is None:
            raise RuntimeError("start AudioStreamPeer.run first")
        if len(argv) < 3 or uuid in self.streams:
            return FAILED  # "bug already attached!"
        url, mix, rate_text = argv[0], argv[1], argv[2]
        if not url.startswith(("ws://", "wss://")):
            return FAILED
        if mix not in ("mono", "mixed", "stereo"):
            return ""  # empty output: ESL turns it into "-ERR no reply"
        rate = _RATES.get(rate_text) or (int(rate_text) if rate_text.isdigit() else 0)
        if rate <= 0 or rate % 8000:
            return FAILED
        stream = _Stream(uuid, url, rate, argv[3] if len(argv) > 3 else None)
        self.streams[uuid] = stream
        self._nursery.start_soon(self._run_stream, stream)
        return OK

    async def _stop(self, stream: _Stream, text: str | None) -> str:
        stream.closing = True
        if stream.ws is not None and not stream.ws.closed:
            try:
                if text:
                    await stream.ws.send_message(text.strip("'"))
                await stream.ws.aclose(1000, "Normal closure")
            except trio_websocket.ConnectionClosed:
                pass
            # The real api blocks until the server closes TCP (m2c: up to the server's whim).
            await stream.tcp_closed.wait()
        stream.scope.cancel()
        self._forget(stream)
        return OK

    def on_hangup(self, uuid: str) -> None:
        stream = self.streams.get(uuid)
        if stream is None or self._nursery is None:
            return
        stream.closing = True
        self._nursery.start_soon(self._close_for_hangup, stream)

    async def _close_for_hangup(self, stream: _Stream) -> None:
        if stream.ws is not None:
            with trio.move_on_after(1.0):
                await stream.ws.aclose(1000, "Normal closure")
        stream.scope.cancel()
        self._forget(stream)

    def _forget(self, stream: _Stream) -> None:
        for path in stream.files:
            path.unlink(missing_ok=True)
        stream.files.clear()
        if self.streams.get(stream.uuid) is stream:
            del self.streams[stream.uuid]

    # the websocket --------------------------------------------------------------------------

    async def _run_stream(self, stream: _Stream) -> None:
        with stream.scope:
            try:
                async with trio_websocket.open_websocket_url(
                    stream.url, connect_timeout=1.0, disconnect_timeout=1.0
                ) as ws:
                    stream.ws = ws
                    self.emit("mod_audio_stream::connect", stream.uuid,
                              _compact({"status": "connected"}))
                    if stream.metadata:
                        await ws.send_message(stream.metadata)
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._send_audio, stream, ws)
                        await self._receive(stream, ws)
                        nursery.cancel_scope.cancel()
            except trio_websocket.HandshakeError as exc:
                self._error(stream, 6, f"Connection refused ({exc.__class__.__name__})")
            except OSError as exc:
                self._error(stream, 6, f"Connection refused (system error {exc.errno})")
            except trio.TooSlowError:
                self._error(stream, 10, "Timeout")
            finally:
                stream.tcp_closed.set()

    def _error(self, stream: _Stream, code: int, text: str) -> None:
        body = {"status": "error", "message": {"code": code, "error": text}}
        self.emit("mod_audio_stream::error", stream.uuid, _compact(body))
        self._forget(stream)

    async def _send_audio(self, stream: _Stream, ws: trio_websocket.WebSocketConnection) -> None:
        fmt = AudioFormat("pcm", stream.rate)
        source = self.source(stream.uuid, fmt)
        next_at = trio.current_time() + FRAME_SECONDS
        while True:
            await trio.sleep_until(next_at)
            next_at += FRAME_SECONDS
            if stream.paused:
                continue
            try:
                await ws.send_message(source(stream.sent))
            except trio_websocket.ConnectionClosed:
                return
            stream.sent += 1

    async def _receive(self, stream: _Stream, ws: trio_websocket.WebSocketConnection) -> None:
        while True:
            try:
                message = await ws.get_message()
            except trio_websocket.ConnectionClosed as exc:
                if not stream.closing:
                    # Server-initiated close: audio stops, the bug stays attached until stop.
                    code = exc.reason.code if exc.reason is not None else 1006
                    text = (exc.reason.reason if exc.reason is not None else None) or ""
                    body = {"status": "disconnected", "message": {"code": code, "reason": text}}
                    self.emit("mod_audio_stream::disconnect", stream.uuid, _compact(body))
                return
            if isinstance(message, bytes):
                continue  # binary from the server is silently dropped
            self._on_text(stream, message)

    def _on_text(self, stream: _Stream, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        data = msg.get("data") if isinstance(msg, dict) else None
        if not (isinstance(msg, dict) and msg.get("type") == "streamAudio"
                and isinstance(data, dict)):
            self.emit("mod_audio_stream::json", stream.uuid, text)
            return
        kind = data.get("audioDataType")
        rate = data.get("sampleRate")
        ext = f"r{rate // 1000}" if kind == "raw" and rate in _STREAM_AUDIO_RATES else (
            _EXTENSIONS.get(kind) if isinstance(kind, str) else None
        )
        try:
            audio = base64.b64decode(str(data.get("audioData", "")), validate=True)
        except ValueError:
            audio = b""
        if ext is None or not audio:
            self.emit("mod_audio_stream::json", stream.uuid, text)
            return
        path = self.tmpdir / f"{stream.uuid}_{stream.counter}.tmp.{ext}"
        stream.counter += 1
        path.write_bytes(audio)
        stream.files.append(path)
        body = {k: v for k, v in data.items() if k != "audioData"}
        body["file"] = str(path)
        self.emit("mod_audio_stream::play", stream.uuid, _compact(body))


def audio_file_seconds(path: str | Path) -> float:
    """How long FreeSWITCH's playback of a mod_audio_stream temp file lasts."""
    p = Path(path)
    suffix = p.suffix.lstrip(".")
    if suffix.startswith("r") and suffix[1:].isdigit():
        return p.stat().st_size / 2 / (int(suffix[1:]) * 1000)
    if suffix == "wav":
        with wave.open(str(p), "rb") as w:
            return w.getnframes() / w.getframerate()
    if suffix in ("pcmu", "pcma"):
        return p.stat().st_size / 8000
    raise ValueError(f"unknown temp file type: {p.name}")
