"""mod_audio_stream: the caller's audio over a websocket, the model's back as played files.

Theory of operation
-------------------
What the community module does on a real FreeSWITCH 1.10.12 (media.md §2) decides the shape:

* **Caller → us.** ``api uuid_audio_stream <a> start ws://<media_listen>/stream/<a>/<token> mono
  16k <metadata>`` makes the module connect to our one websocket server per process
  (``serve_audio_stream``), send the metadata as its first text frame, then 20 ms binary
  frames of L16 at 16 kHz (only the caller's voice, whatever is being played). The server
  matches the connection to its session by the UUID and the per-stream random token in the path,
  and checks the metadata against them; an unknown path or call is closed with a logged reason
  (1008 bad request, 4404 unknown call, 4410 call finished, 4409 a second stream for one call).
  The module splits its arguments on spaces, so the metadata is compact JSON of checked words.
  The frames of every stream read in one trio loop turn are resampled to the model's rate in
  one numpy pass (``_CallerBatch``; ``batched=False``, ``CALLCONTROL_MEDIA_ENGINE=percall``:
  one ``Resampler`` call per frame, 27 µs against 2-3 µs a frame at 10 or more streams).
* **Us → caller.** The module never plays anything itself: a ``streamAudio`` text message
  becomes a temp file and a CUSTOM ``mod_audio_stream::play`` event whose body echoes our
  ``data`` fields plus ``"file"``. We tag each chunk with ``callcontrolChunk`` to match the event to
  the chunk, check the path (absolute, plain characters, named after this channel), and play the
  files one at a time with ``sendmsg execute playback <file>``, the next when the previous
  CHANNEL_EXECUTE_COMPLETE arrives. Barge-in is ``uuid_break <a> all``; chunks still in flight
  are dropped by a generation counter when their play events come back.
* **Chunking.** Each file costs ~50 ms to start and a small gap between files, so the model's
  stream is cut into few chunks: the first of an answer as soon as ``FIRST_CHUNK_MS`` is there (to
  start speaking quickly), later ones of ``NEXT_CHUNK_MS`` while the previous plays, and a
  partial chunk after ``IDLE_FLUSH_MS`` without new audio. The played-ms figure for
  truncation is the completed chunks of the item plus the time since the current file's
  CHANNEL_EXECUTE (capped at its length).
* **Hold.** FreeSWITCH's own music (``TRANSFER_MUSIC_ON_HOLD``) plays over the still-running
  stream; while suspended we drop the caller's frames and play nothing.
* **Stop.** ``uuid_audio_stream … stop`` blocks FreeSWITCH's socket until the websocket's TCP
  is gone (measured up to 33 s), so it only ever goes through ``bgapi``, and our server closes
  TCP right after the closing handshake. A hangup closes the stream by itself (Close 1000).
* **Loss.** A websocket closed by FreeSWITCH, ``mod_audio_stream::error`` or ``::disconnect``,
  or no frame for ``lost_after`` seconds sets ``media_lost``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
from collections import OrderedDict, deque
from typing import Any

import attrs
import trio
import trio_websocket

from callcontrol import generated
from callcontrol.esl import CommandError, ConnectionClosed, Event
from callcontrol.esl.outbound import OutboundCall
from callcontrol.logs import get_logger
from callcontrol.media.batch import BatchConverter, batchable
from callcontrol.media.codecs import PCM24K, AudioFormat, Converter, converter
from callcontrol.media.transport import (
    LOST_AFTER,
    PLAYBACK_CAP_MS,
    Framer,
    MediaUnavailable,
    TransportBase,
    frame_bytes,
)

LINE = AudioFormat("pcm", 16000)
FIRST_CHUNK_MS = 200
NEXT_CHUNK_MS = 1000
IDLE_FLUSH_MS = 60
CONNECT_SECONDS = 3.0
METADATA_SECONDS = 2.0
STOP_GRACE_SECONDS = 1.0

CLOSE_NORMAL = 1000
CLOSE_BAD_REQUEST = 1008
CLOSE_UNKNOWN_CALL = 4404
CLOSE_DUPLICATE = 4409
CLOSE_CALL_FINISHED = 4410

_URL = re.compile(r"wss?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):[0-9]{1,5}")
_PATH = re.compile(r"/stream/([A-Za-z0-9][A-Za-z0-9\-]{0,63})/([0-9a-f]{32})")
_FILE = re.compile(r"/[A-Za-z0-9_.\-/]+")
_FILE_EXTENSIONS = (".r8", ".r16", ".r24", ".r32", ".r48", ".r64", ".wav")


class AudioStreamRegistry:
    """Sessions by call UUID, for the process's websocket server to find its stream's owner."""

    def __init__(self, public_url: str, *, remember_finished: int = 1024) -> None:
        if not _URL.fullmatch(public_url):
            raise ValueError(f"media URL must be ws://HOST:PORT, got {public_url!r}")
        self.public_url = public_url
        self.sessions: dict[str, AudioStreamTransport] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._remember = remember_finished
        self.log = get_logger("callcontrol.media.audio_stream")

    def register(self, session: AudioStreamTransport) -> None:
        self.sessions[session.call.uuid] = session

    def unregister(self, session: AudioStreamTransport) -> None:
        if self.sessions.get(session.call.uuid) is session:
            del self.sessions[session.call.uuid]
            self._finished[session.call.uuid] = None
            while len(self._finished) > self._remember:
                self._finished.popitem(last=False)

    def url_for(self, session: AudioStreamTransport) -> str:
        return f"{self.public_url}/stream/{session.call.uuid}/{session.token}"

    def lookup(self, uuid: str, token: str) -> tuple[AudioStreamTransport | None, int, str]:
        session = self.sessions.get(uuid)
        if session is not None and secrets.compare_digest(session.token, token):
            return session, 0, ""
        if uuid in self._finished:
            return None, CLOSE_CALL_FINISHED, "call finished"
        return None, CLOSE_UNKNOWN_CALL, "unknown call"


async def serve_audio_stream(
    registry: AudioStreamRegistry,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[trio_websocket.WebSocketServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The process's websocket server for mod_audio_stream; ``started`` gives the server."""

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        await _handle_stream(registry, request)

    await trio_websocket.serve_websocket(
        handler, host, port, ssl_context=None, task_status=task_status
    )


async def _refuse(ws: trio_websocket.WebSocketConnection, code: int, reason: str, log: Any) -> None:
    log.warning("audio_stream.refused", code=code, reason=reason)
    with trio.move_on_after(STOP_GRACE_SECONDS):
        await ws.aclose(code, reason)


async def _handle_stream(
    registry: AudioStreamRegistry, request: trio_websocket.WebSocketRequest
) -> None:
    path = request.path
    ws = await request.accept()
    log = registry.log.bind(path=path[:120])
    match = _PATH.fullmatch(path)
    if match is None:
        await _refuse(ws, CLOSE_BAD_REQUEST, "bad path", log)
        return
    uuid, token = match.groups()
    session, code, reason = registry.lookup(uuid, token)
    if session is None:
        await _refuse(ws, code, reason, log.bind(call_uuid=uuid))
        return
    first: str | bytes | None = None
    with trio.move_on_after(METADATA_SECONDS):
        try:
            first = await ws.get_message()
        except trio_websocket.ConnectionClosed:
            return
    if not _metadata_matches(first, uuid):
        await _refuse(ws, CLOSE_BAD_REQUEST, "bad metadata", log.bind(call_uuid=uuid))
        return
    await session._serve(ws)


def _metadata_matches(first: str | bytes | None, uuid: str) -> bool:
    if not isinstance(first, str):
        return False
    try:
        meta = json.loads(first)
    except ValueError:
        return False
    return isinstance(meta, dict) and meta.get("uuid") == uuid


@attrs.define(eq=False)
class _Chunk:
    chunk_id: int
    item_id: str
    ms: float
    generation: int
    file: str | None = None
    started_at: float | None = None


class _CallerBatch:
    """The caller frames of every mod_audio_stream call, converted together once per loop turn.

    Each call's websocket has its own reader task, so frames come in one task at a time; a
    per-call ``Resampler`` costs 30-60 µs of numpy overhead per 20 ms frame. Instead each reader
    stages its frames in the shared ``BatchConverter`` of its format pair and a system task
    converts whatever was staged when it next runs: after every task already runnable, so the
    frames of all the streams read in one trio loop turn go through one numpy pass, and a frame
    waits for nothing but the rest of that turn. A stream appears at most once per batch (its
    resampler history is updated once): its second frame of a turn (the module often sends two
    together) goes in the next round of the same flush, so frames stay in order. A row given
    back while a batch is pending is only reused after that batch.
    """

    def __init__(self, src: AudioFormat, dst: AudioFormat) -> None:
        self.conv = BatchConverter(src, dst)
        self._rows: set[int] = set()  # of the batch being staged
        self._later: deque[tuple[bytes, int, AudioStreamTransport]] = deque()
        self._released: list[int] = []
        self._due = False
        self._wakeup = trio.lowlevel.ParkingLot()
        self._log = get_logger("callcontrol.media")
        self.flushes = 0
        trio.lowlevel.spawn_system_task(self._run, name="audio_stream caller frames")

    @classmethod
    def current(cls, src: AudioFormat, dst: AudioFormat) -> _CallerBatch:
        batches = _BATCHES.get(None)
        if batches is None:
            batches = {}
            _BATCHES.set(batches)
        batch = batches.get((src, dst))
        if batch is None:
            batch = batches[(src, dst)] = cls(src, dst)
        return batch

    def open(self) -> int:
        return self.conv.open()

    def release(self, row: int) -> None:
        if self._due:
            self._released.append(row)  # it may still be staged: free it after the flush
        else:
            self.conv.release(row)

    def stage(self, frame: bytes, row: int, owner: AudioStreamTransport) -> None:
        if row in self._rows:
            self._later.append((frame, row, owner))
        else:
            self._stage(frame, row, owner)
        if not self._due:
            self._due = True
            self._wakeup.unpark()

    def _stage(self, frame: bytes, row: int, owner: AudioStreamTransport) -> None:
        conv = self.conv
        if conv.pending == 0:
            conv.begin()
        self._rows.add(row)
        conv.stage(frame, row, owner)

    async def _run(self) -> None:
        while True:
            if not self._due:
                await self._wakeup.park()
                continue
            # Let every reader already runnable stage its frames first.
            await trio.lowlevel.cancel_shielded_checkpoint()
            self._flush()

    def _flush(self) -> None:
        self.flushes += 1
        conv = self.conv
        while conv.pending:
            owners = list(conv.owners)
            try:
                conv.finish()
            except Exception:
                self._log.exception("audio_stream.convert_failed", frames=len(owners))
                owners = []
            finally:
                conv.pending = 0
                self._rows.clear()
            for i, owner in enumerate(owners):
                try:
                    owner._deliver(bytes(conv.output_view(i)))
                except Exception:
                    self._log.exception("audio_stream.deliver_failed", call_uuid=owner.call.uuid)
            for _ in range(len(self._later)):
                frame, row, owner = self._later.popleft()
                if row in self._rows:
                    self._later.append((frame, row, owner))
                else:
                    self._stage(frame, row, owner)
        self._due = False
        for row in self._released:
            conv.release(row)
        self._released.clear()


_BATCHES: trio.lowlevel.RunVar[dict[tuple[AudioFormat, AudioFormat], _CallerBatch] | None] = (
    trio.lowlevel.RunVar("callcontrol_audio_stream_batches", default=None)
)


class AudioStreamTransport(TransportBase):
    """``MediaTransport`` over mod_audio_stream. Use ``async with`` and then ``start()``."""

    def __init__(
        self,
        call: OutboundCall,
        registry: AudioStreamRegistry,
        *,
        model_format: AudioFormat = PCM24K,
        lost_after: float = LOST_AFTER,
        batched: bool = True,
        log: Any = None,
    ) -> None:
        super().__init__(
            call, model_format=model_format, line_format=LINE, lost_after=lost_after, log=log
        )
        self.registry = registry
        self.token = generated.token_hex(16)
        self._ws: trio_websocket.WebSocketConnection | None = None
        self._ws_seen = False
        self._closing = False
        self._in: Converter = converter(LINE, model_format)
        self._out: Converter = converter(model_format, LINE)
        self._in_framer = Framer(frame_bytes(LINE))
        # Caller frames through the shared batch of their format pair (see _CallerBatch).
        self._batch: _CallerBatch | None = None
        self._batched = batched and batchable(LINE, model_format)
        self._row = -1
        self._bytes_per_ms = float(LINE.bytes_per_ms)
        self._pending = bytearray()
        self._pending_item: str | None = None
        self._last_play_at = 0.0
        self._flush_lock = trio.Lock()
        self._flush_wakeup = trio.Event()
        self._next_chunk = 0
        self._generation = 0
        self._inflight: dict[int, _Chunk] = {}
        self._ready: deque[_Chunk] = deque()
        self._current: _Chunk | None = None
        self._item: str | None = None  # the item whose audio the caller hears or last heard
        self._item_done_ms = 0.0
        self.files_played: list[str] = []

    # -- public API ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self._batched:
            self._batch = _CallerBatch.current(LINE, self.model_format)
            self._row = self._batch.open()
        self.registry.register(self)
        metadata = json.dumps({"uuid": self.call.uuid}, separators=(",", ":"))
        url = self.registry.url_for(self)
        try:
            reply = await self.call.api(
                "uuid_audio_stream", self.call.uuid, "start", url, "mono", "16k", metadata
            )
        except ConnectionClosed as exc:
            raise MediaUnavailable(f"socket closed: {exc}") from exc
        if not reply.startswith("+OK"):
            self.registry.unregister(self)
            raise MediaUnavailable(f"uuid_audio_stream start refused: {reply.strip()}")
        connected = await self._wait_state(
            lambda: self._ws_seen or self._finished, CONNECT_SECONDS
        )
        if not connected or self.media_lost.is_set() or self._ws is None:
            reason = self.lost_reason or "mod_audio_stream did not connect"
            raise MediaUnavailable(reason)
        self._grace()
        self.nursery.start_soon(self._player)
        self.nursery.start_soon(self._flusher)

    async def play(self, pcm: bytes, item_id: str) -> None:
        if self._suspended or self._finished:
            return
        if self._pending and item_id != self._pending_item:
            await self._flush()
        self._pending_item = item_id
        line = self._out.convert(pcm)
        room = PLAYBACK_CAP_MS - self._queued_ms()
        if len(line) / self._bytes_per_ms > room:
            keep = max(0, int(room * self._bytes_per_ms)) & ~1
            self.stats.playback_ms_dropped += (len(line) - keep) / self._bytes_per_ms
            line = line[:keep]
        self._pending += line
        self._last_play_at = trio.current_time()
        busy = self._current is not None or self._ready or self._inflight
        target = NEXT_CHUNK_MS if busy else FIRST_CHUNK_MS
        if len(self._pending) / self._bytes_per_ms >= target:
            await self._flush()
        else:
            self._flush_wakeup.set()

    async def interrupt(self) -> int:
        played = self._played_ms()
        current = self._discard()
        if current is not None:
            await self._break()
        return int(played)

    @property
    def playing(self) -> bool:
        current = self._current
        sounding = current is not None and current.generation == self._generation
        return bool(self._pending or self._inflight or self._ready or sounding)

    async def drained(self) -> None:
        await self._wait_state(lambda: not self.playing or self._finished, float("inf"))

    async def suspend(self) -> None:
        self._suspended = True
        self._caller.clear()
        if self._discard() is not None:
            await self._break()
            # Let our playback end before the hold music starts, or it would nest in ours.
            await self._wait_state(lambda: self._current is None, STOP_GRACE_SECONDS)

    async def resume(self) -> None:
        if self._suspended:
            self._suspended = False
            self._grace()
            self._touch_state()

    async def rearm(self) -> bool:
        return self._started and not self._finished

    async def close(self) -> None:
        if self._closed or self._closing:
            return
        self._closing = True
        self._discard()
        if self._started and not self.channel_state.hung_up and not self.call.conn.closed.is_set():
            try:
                # Never a blocking api here: stop holds FreeSWITCH's socket until TCP is gone.
                await self.call.conn.bgapi("uuid_audio_stream", self.call.uuid, "stop")
            except (CommandError, ConnectionClosed) as exc:
                self.log.info("audio_stream.stop_failed", error=str(exc))
            await self._wait_state(lambda: self._ws is None, STOP_GRACE_SECONDS)
        ws = self._ws
        if ws is not None:
            with trio.move_on_after(STOP_GRACE_SECONDS):
                await ws.aclose(CLOSE_NORMAL, "call ended")
        self.registry.unregister(self)
        self._closed = True
        batch, self._batch = self._batch, None
        if batch is not None:
            batch.release(self._row)
        self._end_frames()
        self._touch_state()

    # -- the websocket (called by the server's handler) ------------------------------------

    async def _serve(self, ws: trio_websocket.WebSocketConnection) -> None:
        if self._ws is not None or self._ws_seen:
            await _refuse(ws, CLOSE_DUPLICATE, "stream already open", self.log)
            return
        if self._finished or self._closing:
            await _refuse(ws, CLOSE_CALL_FINISHED, "call finished", self.log)
            return
        self._ws = ws
        self._ws_seen = True
        self.log.info("audio_stream.connected")
        self._touch_state()
        try:
            while True:
                message = await ws.get_message()
                if isinstance(message, bytes):
                    self._on_audio(message)
        except trio_websocket.ConnectionClosed as exc:
            code = exc.reason.code if exc.reason is not None else None
            # 1000 is the module's close at hangup (or someone's stop): the hangup event
            # follows within milliseconds, and if it does not, the silence watchdog decides.
            if not self._closing and code != CLOSE_NORMAL:
                self._lose(f"audio stream closed by FreeSWITCH (code {code})")
        finally:
            self._ws = None
            self._touch_state()

    def _on_audio(self, data: bytes) -> None:
        self._note_received()
        if self._suspended:
            return
        batch = self._batch
        for frame in self._in_framer.push(data):
            if batch is not None:
                batch.stage(frame, self._row, self)
            else:
                self._deliver(self._in.convert(frame))

    # -- channel events --------------------------------------------------------------------

    async def _on_event(self, event: Event, change: str | None) -> None:
        name = event.name
        if name == "CUSTOM":
            self._on_module_event(event.subclass or "", event.body_text)
        elif name == "CHANNEL_EXECUTE":
            current = self._current
            if current is not None and event.get("Application-Data") == current.file:
                current.started_at = trio.current_time()

    def _on_module_event(self, subclass: str, body: str) -> None:
        if subclass == "mod_audio_stream::play":
            self._on_play(body)
        elif subclass == "mod_audio_stream::json":
            chunk = self._inflight.pop(_chunk_id_of(body, nested=True), None)
            if chunk is not None:
                self.log.error("audio_stream.chunk_rejected", chunk=chunk.chunk_id)
                self._touch_state()
        elif (
            subclass in ("mod_audio_stream::error", "mod_audio_stream::disconnect")
            and not self._closing
        ):
            self._lose(f"{subclass}: {body[:200]}")

    def _on_play(self, body: str) -> None:
        chunk = self._inflight.pop(_chunk_id_of(body, nested=False), None)
        if chunk is None:
            return  # discarded by a barge-in, or not ours
        try:
            path = json.loads(body).get("file")
        except (ValueError, AttributeError):
            path = None
        if not self._valid_file(path):
            self.log.error("audio_stream.bad_file", file=str(path)[:200])
            self._touch_state()
            return
        chunk.file = path
        self._ready.append(chunk)
        self._touch_state()

    def _valid_file(self, path: object) -> bool:
        if not isinstance(path, str) or not _FILE.fullmatch(path) or "/../" in path:
            return False
        name = path.rsplit("/", 1)[-1]
        return name.startswith(self.call.uuid + "_") and name.endswith(_FILE_EXTENSIONS)

    # -- model audio: chunks, files, playback ----------------------------------------------

    def _queued_ms(self) -> float:
        queued = len(self._pending) / self._bytes_per_ms
        queued += sum(c.ms for c in self._inflight.values())
        queued += sum(c.ms for c in self._ready)
        if self._current is not None:
            queued += self._current.ms
        return queued

    async def _flush(self) -> None:
        async with self._flush_lock:
            if not self._pending or self._pending_item is None:
                return
            data, self._pending = bytes(self._pending), bytearray()
            chunk = _Chunk(
                self._next_chunk, self._pending_item, len(data) / self._bytes_per_ms,
                self._generation,
            )
            self._next_chunk += 1
            ws = self._ws
            if ws is None:
                return
            self._inflight[chunk.chunk_id] = chunk
            message = {
                "type": "streamAudio",
                "data": {
                    "audioDataType": "raw",
                    "sampleRate": LINE.rate,
                    "audioData": base64.b64encode(data).decode(),
                    "callcontrolChunk": chunk.chunk_id,
                },
            }
            try:
                await ws.send_message(json.dumps(message, separators=(",", ":")))
            except trio_websocket.ConnectionClosed:
                self._inflight.pop(chunk.chunk_id, None)
            self._touch_state()

    async def _flusher(self) -> None:
        while not self._finished:
            await self._flush_wakeup.wait()
            self._flush_wakeup = trio.Event()
            while self._pending and not self._finished:
                due = self._last_play_at + IDLE_FLUSH_MS / 1000
                if trio.current_time() >= due:
                    await self._flush()
                    break
                await trio.sleep_until(due)

    async def _player(self) -> None:
        while not self._finished:
            if not self._ready or self._suspended:
                await self.state_changed.wait()
                continue
            chunk = self._ready.popleft()
            if chunk.generation != self._generation or chunk.file is None:
                continue
            await self._play_chunk(chunk, chunk.file)

    async def _play_chunk(self, chunk: _Chunk, path: str) -> None:
        if chunk.item_id != self._item:
            self._item, self._item_done_ms = chunk.item_id, 0.0
        self._current = chunk
        try:
            execution = await self.call.conn.execute("playback", path)
            if chunk.generation != self._generation:
                await self._break()  # barge-in raced the sendmsg: stop it as it starts
            with trio.move_on_after(chunk.ms / 1000 + 10):
                await execution.completed()
        except (CommandError, ConnectionClosed) as exc:
            self.log.warning("audio_stream.playback_failed", error=str(exc))
        finally:
            self._current = None
            if chunk.generation == self._generation:
                self._item_done_ms += chunk.ms
                self.files_played.append(path)
            self._touch_state()

    def _played_ms(self) -> float:
        current = self._current
        played = self._item_done_ms if self._item is not None else 0.0
        if current is not None and current.started_at is not None:
            played += min(trio.current_time() - current.started_at, current.ms / 1000) * 1000
        return played

    def _discard(self) -> _Chunk | None:
        """Drop every chunk not yet heard; returns the chunk playing now, if any."""
        self._generation += 1
        self._pending.clear()
        self._pending_item = None
        self._inflight.clear()
        self._ready.clear()
        self._item, self._item_done_ms = None, 0.0
        self._out = converter(self.model_format, LINE)
        self._touch_state()
        return self._current

    async def _break(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.call.api("uuid_break", self.call.uuid, "all")


def _chunk_id_of(body: str, *, nested: bool) -> int:
    """Our ``callcontrolChunk`` tag from a play event body (or a rejected message, nested)."""
    try:
        obj = json.loads(body)
    except ValueError:
        return -1
    if nested and isinstance(obj, dict):
        obj = obj.get("data")
    value = obj.get("callcontrolChunk") if isinstance(obj, dict) else None
    return value if isinstance(value, int) else -1
