"""``ScriptedRealtime``: a local speech-model server that follows a script, for tests.

It speaks the OpenAI Realtime GA wire protocol over a real trio-websocket server on localhost
(``ScriptedLive`` speaks GPT-Live), so the production client is tested end to end. A script is a
list of steps run in order, per connection::

    script = [
        Hear(ms=200),                              # wait for 200 ms of caller audio
        Say("Olá, em que posso ajudar?", ms=1200), # real PCM frames + transcript
        CallerSpeechStarted(),                     # VAD: the caller barges in
        AwaitClient("conversation.item.truncate"), # ... and the client truncates
        CallerSpeechStopped(),
        CallerSaid("quero falar com o suporte"),   # caller transcript
        CallTool("request_handoff", {"destination": "Suporte", "reason": "dúvida"}),
        AwaitToolOutput(),                         # function_call_output (+ response.create)
        Close(code=1011, reason="boom"),           # or SendError(...), GoSilent()
    ]
    server = ScriptedRealtime(script)
    async with server as url:
        ...  # point the client at url
    server.last.truncates, server.last.tool_outputs, server.last.instructions, ...

Everything the client sent is recorded per connection (``SessionRecord``): session.update
contents, truncates, tool outputs, response.create calls, and caller audio as a byte count (the
audio itself is kept in ``caller_audio`` for assertions). Like the real server, it answers
``session.update`` with ``session.updated``, encodes its speech in the configured output format
(PCM16 24 kHz, μ-law or A-law), and rejects a truncate beyond the audio it sent.

A step that waits and times out records a failure; ``strict`` servers raise ``ScriptFailed`` on
exit, so a test cannot pass while the script was not followed.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    wrap_server_stream,
)

from callcontrol.media.codecs import PCM24K, AudioFormat, alaw_encode, ulaw_encode

DEFAULT_TIMEOUT = 5.0

# --- audio -------------------------------------------------------------------------------------


def synth_speech(
    ms: int, frequency: float = 440.0, rate: int = 24000, amplitude: int = 8000
) -> bytes:
    """A tone with 5 ms fades: deterministic audio tests can recognise (PCM16 LE)."""
    n = rate * ms // 1000
    t = np.arange(n) / rate
    wave = amplitude * np.sin(2 * math.pi * frequency * t)
    fade = min(n // 2, rate // 200)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        wave[:fade] *= ramp
        wave[n - fade :] *= ramp[::-1]
    samples: npt.NDArray[np.int16] = np.rint(wave).astype("<i2")
    return samples.tobytes()


def encode_for(fmt: AudioFormat, ms: int, frequency: float) -> bytes:
    pcm = synth_speech(ms, frequency, rate=fmt.rate)
    if fmt.encoding == "pcmu":
        return ulaw_encode(pcm)
    if fmt.encoding == "pcma":
        return alaw_encode(pcm)
    return pcm


# --- script steps ------------------------------------------------------------------------------


@attrs.frozen
class Hear:
    """Wait until ``ms`` of caller audio arrived since this step started."""

    ms: int
    timeout: float = DEFAULT_TIMEOUT


@attrs.frozen
class Say:
    """Speak: ``ms`` of tone (or ``pcm`` at 24 kHz) in ``chunk_ms`` deltas, with a transcript.

    ``paced`` sends one chunk per ``chunk_ms`` of clock time, like a real model, so a barge-in
    can land in the middle; otherwise the whole utterance goes out at once.
    """

    text: str
    ms: int = 1000
    chunk_ms: int = 40
    frequency: float = 440.0
    paced: bool = False
    pcm: bytes | None = attrs.field(default=None, repr=False)


@attrs.frozen
class CallerSpeechStarted:
    pass


@attrs.frozen
class CallerSpeechStopped:
    pass


@attrs.frozen
class CallerSaid:
    """The caller's transcript for the last turn."""

    text: str


@attrs.frozen
class CallTool:
    """Ask for a tool; ``arguments`` may be a dict or a raw (even broken) JSON string."""

    name: str
    arguments: Mapping[str, Any] | str
    call_id: str | None = None


@attrs.frozen
class AwaitToolOutput:
    """Wait for the tool output of ``call_id`` (default: the last ``CallTool``)."""

    call_id: str | None = None
    timeout: float = DEFAULT_TIMEOUT


@attrs.frozen
class AwaitClient:
    """Wait for a client event of this ``type`` (counted from the start of this step)."""

    type: str
    timeout: float = DEFAULT_TIMEOUT


@attrs.frozen
class SendError:
    code: str
    message: str = "scripted error"
    type: str = "invalid_request_error"


@attrs.frozen
class Send:
    """Send a raw server event (for cases the other steps do not cover)."""

    event: Mapping[str, Any]


@attrs.frozen
class Close:
    """Close the websocket: the close frame, the client's answer, then the TCP close.

    ``while_sending`` first waits for the client's next audio append, so the close lands while
    it is streaming. ``linger`` keeps the TCP connection open that long after the close frame, as
    the real peer did while the client kept sending audio (its 10 s close timeout): a client that
    waits for the server's TCP close waits that long.
    """

    code: int = 1000
    reason: str = ""
    linger: float = 0.0
    while_sending: bool = False
    timeout: float = DEFAULT_TIMEOUT


@attrs.frozen
class Drop:
    """The connection dies without a close frame (network loss, a crashed server)."""


@attrs.frozen
class Stall:
    """The server stops reading and writing; the connection stays open. Once the transport's
    buffer is full (``PIPE_CAPACITY`` in memory, the kernel's over TCP) the client's sends block."""


@attrs.frozen
class GoSilent:
    """Stop here: send nothing more, keep the connection open and keep recording."""


Step = (
    Hear
    | Say
    | CallerSpeechStarted
    | CallerSpeechStopped
    | CallerSaid
    | CallTool
    | AwaitToolOutput
    | AwaitClient
    | SendError
    | Send
    | Close
    | Drop
    | Stall
    | GoSilent
)


class ScriptFailed(AssertionError):
    """The client did not do what the script waited for."""


# --- what the client did -----------------------------------------------------------------------


@attrs.define
class SessionRecord:
    path: str
    headers: dict[str, str]
    events: list[dict[str, Any]] = attrs.field(factory=list)
    session_updates: list[dict[str, Any]] = attrs.field(factory=list)
    truncates: list[dict[str, Any]] = attrs.field(factory=list)
    tool_outputs: dict[str, str] = attrs.field(factory=dict)
    response_creates: list[dict[str, Any]] = attrs.field(factory=list)
    caller_audio: bytearray = attrs.field(factory=bytearray, repr=False)
    input_format: AudioFormat = PCM24K
    output_format: AudioFormat = PCM24K
    failures: list[str] = attrs.field(factory=list)
    close_code: int | None = None
    # when the script made the server go away (Close, Drop, Stall, SendError), on trio's clock
    gone_at: float | None = None
    # assistant item id -> ms of audio sent, for truncate validation
    items: dict[str, float] = attrs.field(factory=dict)

    @property
    def audio_bytes(self) -> int:
        return len(self.caller_audio)

    @property
    def audio_ms(self) -> float:
        return self.input_format.duration_ms(len(self.caller_audio))

    @property
    def session(self) -> dict[str, Any]:
        """The effective session: every update merged, like ``session.updated`` reports."""
        merged: dict[str, Any] = {}
        for update in self.session_updates:
            merged.update(update)
        return merged

    @property
    def instructions(self) -> str:
        return str(self.session.get("instructions", ""))

    def types(self) -> list[str]:
        return [str(e.get("type")) for e in self.events]


# --- dialects ----------------------------------------------------------------------------------


# Called with (protocol, direction, frame) for every JSON frame a scripted server sends
# ("server") or receives ("client"): protocol is "realtime" or "live". Tests use it to check the
# frames against the official API types.
FrameObserver = Callable[[str, str, Mapping[str, Any]], None]
frame_observers: list[FrameObserver] = []


def _observe(protocol: str, direction: str, frame: Mapping[str, Any]) -> None:
    for observer in frame_observers:
        observer(protocol, direction, frame)


class _Dialect:
    """How the script's steps look on the wire, and what client events mean."""

    protocol = "realtime"
    start_event: str | None = None  # GPT-Live: the client must open with this
    no_event_id: frozenset[str] = frozenset()  # every other server event carries an event_id

    def greeting(self, rec: SessionRecord) -> list[dict[str, Any]]:
        session = {"type": "realtime", "model": "gpt-realtime"}
        return [{"type": "session.created", "session": session}]

    def audio_of(self, event: Mapping[str, Any]) -> str | None:
        if event.get("type") == "input_audio_buffer.append":
            return str(event.get("audio", ""))
        return None

    def on_client(self, conn: _Connection, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        rec = conn.rec
        if kind == "session.update":
            session = dict(event.get("session") or {})
            rec.session_updates.append(session)
            rec.input_format = _format_of(session, "input", rec.input_format)
            rec.output_format = _format_of(session, "output", rec.output_format)
            return [{"type": "session.updated", "session": rec.session}]
        if kind == "conversation.item.truncate":
            return self._truncate(rec, event)
        if kind == "conversation.item.create":
            item = event.get("item") or {}
            if item.get("type") == "function_call_output":
                rec.tool_outputs[str(item.get("call_id"))] = str(item.get("output"))
        if kind == "response.create":
            rec.response_creates.append(dict(event.get("response") or {}))
        return []

    def _truncate(self, rec: SessionRecord, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        rec.truncates.append(
            {k: event.get(k) for k in ("item_id", "content_index", "audio_end_ms")}
        )
        item_id, end = str(event.get("item_id")), event.get("audio_end_ms")
        sent = rec.items.get(item_id)
        if sent is None:
            return [_error("item_not_found", f"Item {item_id} not found", event)]
        if not isinstance(end, int) or end < 0 or end > sent + 1:
            return [_error("invalid_value", f"audio_end_ms {end} beyond {sent:.0f} ms", event)]
        index = int(event.get("content_index") or 0)
        return [{"type": "conversation.item.truncated", "item_id": item_id,
                 "content_index": index, "audio_end_ms": end}]  # fmt: skip

    def say(self, conn: _Connection, step: Say) -> list[list[dict[str, Any]]]:
        """The utterance as batches of events; a paced say sleeps between batches."""
        n = conn.next_id()
        rid, iid = f"resp_{n}", f"item_{n}"
        fmt = conn.rec.output_format
        audio = _utterance(step, fmt)
        conn.rec.items[iid] = fmt.duration_ms(len(audio))
        item: dict[str, Any] = {"id": iid, "type": "message", "role": "assistant",
                                "object": "realtime.item"}  # fmt: skip
        done_item = {**item, "status": "completed",
                     "content": [{"type": "output_audio", "transcript": step.text}]}  # fmt: skip
        where = {"response_id": rid, "item_id": iid, "output_index": 0, "content_index": 0}
        head: list[dict[str, Any]] = [
            {"type": "response.created", "response": {"id": rid, "status": "in_progress"}},
            {
                "type": "response.output_item.added",
                "response_id": rid,
                "output_index": 0,
                "item": {**item, "status": "in_progress", "content": []},
            },
            {"type": "conversation.item.added", "previous_item_id": None,
             "item": {**item, "status": "in_progress", "content": []}},
            {"type": "response.content_part.added", "response_id": rid, "item_id": iid,
             "output_index": 0, "content_index": 0, "part": {"type": "audio", "transcript": ""}},
        ]  # fmt: skip
        chunks = [
            [
                {
                    "type": "response.output_audio.delta",
                    **where,
                    "delta": _b64(chunk),
                }
            ]
            for chunk in _chunks(audio, fmt, step.chunk_ms)
        ]
        words: list[dict[str, Any]] = [
            {"type": "response.output_audio_transcript.delta", **where, "delta": w}
            for w in _words(step.text)
        ]
        tail: list[dict[str, Any]] = [
            {"type": "response.output_audio.done", **where},
            {"type": "response.output_audio_transcript.done", **where, "transcript": step.text},
            {"type": "response.content_part.done", **where,
             "part": {"type": "audio", "transcript": step.text}},
            {"type": "response.output_item.done", "response_id": rid, "output_index": 0,
             "item": done_item},
            {"type": "conversation.item.done", "previous_item_id": None, "item": done_item},
            {"type": "response.done", "response": {"id": rid, "object": "realtime.response",
                                                   "status": "completed", "output": [done_item]}},
            _rate_limits(),
        ]  # fmt: skip
        return [head + words, *chunks, tail]

    def speech_started(self, conn: _Connection) -> dict[str, Any]:
        return {
            "type": "input_audio_buffer.speech_started",
            "audio_start_ms": int(conn.rec.audio_ms),
            "item_id": f"caller_{conn.next_id()}",
        }

    def speech_stopped(self, conn: _Connection) -> list[dict[str, Any]]:
        iid = f"caller_{conn.counter}"
        item = {"id": iid, "type": "message", "role": "user", "object": "realtime.item",
                "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
        return [
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": int(conn.rec.audio_ms),
             "item_id": iid},
            {"type": "input_audio_buffer.committed", "item_id": iid, "previous_item_id": None},
            {"type": "conversation.item.added", "previous_item_id": None, "item": item},
            {"type": "conversation.item.done", "previous_item_id": None, "item": item},
        ]  # fmt: skip

    def caller_said(self, conn: _Connection, text: str) -> list[dict[str, Any]]:
        iid = f"caller_{conn.counter}"
        return [
            {
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": iid,
                "content_index": 0,
                "delta": text,
            },
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": iid,
                "content_index": 0,
                "transcript": text,
                "usage": {"type": "duration", "seconds": round(conn.rec.audio_ms / 1000, 3)},
            },
        ]

    def call_tool(self, conn: _Connection, step: CallTool, call_id: str) -> list[dict[str, Any]]:
        n = conn.next_id()
        rid, iid = f"resp_{n}", f"item_{n}"
        raw = step.arguments if isinstance(step.arguments, str) else json.dumps(step.arguments)
        item: dict[str, Any] = {"id": iid, "type": "function_call", "object": "realtime.item",
                                "call_id": call_id, "name": step.name}  # fmt: skip
        done_item = {**item, "status": "completed", "arguments": raw}
        where = {"response_id": rid, "item_id": iid, "output_index": 0, "call_id": call_id}
        return [
            {"type": "response.created", "response": {"id": rid, "status": "in_progress"}},
            {"type": "response.output_item.added", "response_id": rid, "output_index": 0,
             "item": {**item, "status": "in_progress", "arguments": ""}},
            {"type": "conversation.item.added", "previous_item_id": None,
             "item": {**item, "status": "in_progress", "arguments": ""}},
            {"type": "response.function_call_arguments.delta", **where, "delta": raw},
            {"type": "response.function_call_arguments.done", **where, "name": step.name,
             "arguments": raw},
            {"type": "response.output_item.done", "response_id": rid, "output_index": 0,
             "item": done_item},
            {"type": "conversation.item.done", "previous_item_id": None, "item": done_item},
            {"type": "response.done", "response": {"id": rid, "object": "realtime.response",
                                                   "status": "completed", "output": [done_item]}},
            _rate_limits(),
        ]  # fmt: skip

    def has_tool_output(self, rec: SessionRecord, call_id: str) -> bool:
        return call_id in rec.tool_outputs

    def error(self, step: SendError) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {"type": step.type, "code": step.code, "message": step.message},
        }

    def before_close(self, step: Close, rec: SessionRecord | None = None) -> list[dict[str, Any]]:
        return []


def _rate_limits() -> dict[str, Any]:
    return {"type": "rate_limits.updated", "rate_limits": [
        {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
        {"name": "tokens", "limit": 100000, "remaining": 99000, "reset_seconds": 0.6},
    ]}  # fmt: skip


def _error(code: str, message: str, event: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "event_id": event.get("event_id"),
        },
    }


def _format_of(session: Mapping[str, Any], direction: str, default: AudioFormat) -> AudioFormat:
    fmt = ((session.get("audio") or {}).get(direction) or {}).get("format")
    if not isinstance(fmt, Mapping):
        return default
    kind = str(fmt.get("type", "audio/pcm")).removeprefix("audio/")
    if kind == "pcm":
        return AudioFormat("pcm", int(fmt.get("rate", 24000)))
    return AudioFormat("pcmu" if kind == "pcmu" else "pcma", 8000)


def _utterance(step: Say, fmt: AudioFormat) -> bytes:
    if step.pcm is None:
        return encode_for(fmt, step.ms, step.frequency)
    if fmt != PCM24K:
        raise ValueError("Say(pcm=...) is 24 kHz PCM16; the session asked for another format")
    return step.pcm


def _chunks(audio: bytes, fmt: AudioFormat, chunk_ms: int) -> list[bytes]:
    size = int(fmt.bytes_per_ms * max(20, min(100, chunk_ms)))
    return [audio[i : i + size] for i in range(0, len(audio), size)]


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _LiveDialect(_Dialect):
    """GPT-Live: session.start/started, session.* audio and transcripts, client delegation."""

    protocol = "live"
    no_event_id = frozenset({"session.output_audio.delta"})  # the API's audio has none
    start_event = "session.start"

    def greeting(self, rec: SessionRecord) -> list[dict[str, Any]]:
        return []

    def audio_of(self, event: Mapping[str, Any]) -> str | None:
        if event.get("type") == "session.input_audio.append":
            return str(event.get("audio", ""))
        return None

    def on_client(self, conn: _Connection, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind, rec = event.get("type"), conn.rec
        if kind == "session.start":
            session = dict(event.get("session") or {})
            rec.session_updates.append(session)
            fmt = _format_of({"audio": {"input": (session.get("audio") or {})}}, "input", PCM24K)
            rec.input_format = rec.output_format = fmt
            return [{"type": "session.started", "session": _live_session(session)}]
        if kind in ("session.commentary.append", "session.thinking.append"):
            delegation = event.get("delegation_id")
            if delegation is not None:
                rec.tool_outputs[str(delegation)] = str(event.get("content"))
            else:
                rec.response_creates.append({"instructions": event.get("content")})
            at = int(rec.audio_ms)
            appended: dict[str, Any] = {"type": kind.replace(".append", ".appended"),
                                        "start_ms": at, "end_ms": at}  # fmt: skip
            if event.get("event_id") is not None:
                appended["client_event_id"] = event["event_id"]
            return [appended]
        if kind == "session.close":
            return [_live_closed(rec, "close_requested")]
        return []

    def say(self, conn: _Connection, step: Say) -> list[list[dict[str, Any]]]:
        fmt = conn.rec.output_format
        audio = _utterance(step, fmt)
        chunks = [
            [{"type": "session.output_audio.delta", "delta": _b64(c)}]
            for c in _chunks(audio, fmt, step.chunk_ms)
        ]
        at = int(conn.rec.audio_ms)
        words = [{"type": "session.output_transcript.delta", "delta": w, "start_ms": at,
                  "end_ms": at + step.ms} for w in _words(step.text)]  # fmt: skip
        return [words, *chunks]

    def speech_started(self, conn: _Connection) -> dict[str, Any]:
        raise ScriptFailed("GPT-Live has no speech_started event")

    def speech_stopped(self, conn: _Connection) -> list[dict[str, Any]]:
        raise ScriptFailed("GPT-Live has no speech_stopped event")

    def caller_said(self, conn: _Connection, text: str) -> list[dict[str, Any]]:
        end = int(conn.rec.audio_ms)
        return [{"type": "session.input_transcript.delta", "delta": text,
                 "start_ms": max(0, end - 1000), "end_ms": end}]  # fmt: skip

    def call_tool(self, conn: _Connection, step: CallTool, call_id: str) -> list[dict[str, Any]]:
        # Client delegation carries no task text: the client infers the tool from the transcript.
        return [
            {
                "type": "session.delegation.created",
                "offset_ms": int(conn.rec.audio_ms),
                "delegation": {"id": call_id, "type": "delegation", "target": "client"},
            }
        ]

    def error(self, step: SendError) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {"type": step.type, "code": step.code, "message": step.message},
        }

    def before_close(self, step: Close, rec: SessionRecord | None = None) -> list[dict[str, Any]]:
        reason = step.reason if step.reason in _LIVE_CLOSE_REASONS else "connection_lost"
        return [_live_closed(rec, reason)]


# session.closed's reasons in the Live API
_LIVE_CLOSE_REASONS = ("close_requested", "expired", "content", "remote_hangup", "connection_lost")
LIVE_SESSION_SECONDS = 3600  # expires_at: the session's duration limit from its start


def _live_session(requested: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": "sess_live", **requested, "status": "active", "expires_at": LIVE_SESSION_SECONDS}


def _live_closed(rec: SessionRecord | None, reason: str) -> dict[str, Any]:
    requested = rec.session_updates[0] if rec and rec.session_updates else {}
    seconds = round(rec.audio_ms / 1000, 3) if rec else 0.0
    return {"type": "session.closed", "reason": reason, "session": _live_session(requested),
            "usage": {"seconds": float(seconds)}}  # fmt: skip


# --- the transport under the websocket ---------------------------------------------------------

PIPE_CAPACITY = 8 * 1024  # bytes in flight one way before a sender blocks (a small TCP window)


class _Pipe:
    """One direction of an in-memory connection, bounded like a TCP window."""

    def __init__(self, capacity: int = PIPE_CAPACITY) -> None:
        self.data = bytearray()
        self.capacity = capacity
        self.send_closed = False
        self.receive_closed = False
        self._changed = trio.Event()

    def notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def changed(self) -> None:
        await self._changed.wait()


class _PipeSend(trio.abc.SendStream):
    def __init__(self, pipe: _Pipe) -> None:
        self.pipe = pipe

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        pipe, view = self.pipe, memoryview(data)
        while view:
            if pipe.send_closed:
                raise trio.ClosedResourceError
            if pipe.receive_closed:
                raise trio.BrokenResourceError
            room = pipe.capacity - len(pipe.data)
            if room <= 0:
                await pipe.changed()
                continue
            pipe.data += view[:room]
            view = view[room:]
            pipe.notify()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.pipe.send_closed = True
        self.pipe.notify()
        await trio.lowlevel.checkpoint()


class _PipeReceive(trio.abc.ReceiveStream):
    def __init__(self, pipe: _Pipe) -> None:
        self.pipe = pipe

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        pipe = self.pipe
        while not pipe.data and not pipe.send_closed and not pipe.receive_closed:
            await pipe.changed()
        if pipe.receive_closed:
            raise trio.ClosedResourceError
        n = max_bytes or 65536
        chunk = bytes(pipe.data[:n])
        del pipe.data[:n]
        pipe.notify()
        return chunk  # b"" once the sender closed: end of stream

    async def aclose(self) -> None:
        self.pipe.receive_closed = True
        self.pipe.notify()
        await trio.lowlevel.checkpoint()


def memory_connection() -> tuple[trio.abc.Stream, trio.abc.Stream]:
    """(client, server) ends of a bounded in-memory byte stream."""
    up, down = _Pipe(), _Pipe()
    return (
        trio.StapledStream(_PipeSend(up), _PipeReceive(down)),
        trio.StapledStream(_PipeSend(down), _PipeReceive(up)),
    )


class _ServerStream(trio.abc.Stream):
    """The server's end, which the script can stall, drop, or keep open after its close."""

    def __init__(self, inner: trio.abc.Stream, nursery: trio.Nursery) -> None:
        self.inner = inner
        self.stalled = False
        self.linger = 0.0
        self._lingering = False
        self._nursery = nursery  # the server's: a lingering close outlives the connection's

    def stall(self) -> None:
        self.stalled = True

    async def drop(self) -> None:
        await trio.aclose_forcefully(self.inner)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.stalled:
            await trio.sleep_forever()
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.stalled:
            await trio.sleep_forever()
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        if self.linger > 0:
            # every later close (the server's websocket teardown) waits for this one
            if not self._lingering:
                self._lingering = True
                self._nursery.start_soon(self._close_later, self.linger)
            await trio.lowlevel.checkpoint()
            return
        await trio.aclose_forcefully(self.inner)

    async def _close_later(self, delay: float) -> None:
        try:
            await trio.sleep(delay)
        finally:
            await trio.aclose_forcefully(self.inner)


# --- one connection ----------------------------------------------------------------------------


class _Connection:
    def __init__(
        self,
        ws: WebSocketConnection,
        rec: SessionRecord,
        dialect: _Dialect,
        stream: _ServerStream,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.ws, self.rec, self.dialect, self.stream = ws, rec, dialect, stream
        self.on_change = on_change
        self.observed = True  # frames go to frame_observers
        self.events_sent = 0
        self.counter = 0
        self._changed = trio.Event()
        self._last_call_id: str | None = None

    def next_id(self) -> int:
        self.counter += 1
        return self.counter

    async def send(self, event: Mapping[str, Any]) -> None:
        # The client may leave at any moment; the reader sees it and ends the connection.
        if "event_id" not in event and event.get("type") not in self.dialect.no_event_id:
            self.events_sent += 1
            event = {"event_id": f"event_{self.events_sent}", **event}
        if self.observed:
            _observe(self.dialect.protocol, "server", event)
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send_message(json.dumps(event, ensure_ascii=False))

    async def read(self) -> None:
        while True:
            try:
                raw = await self.ws.get_message()
            except ConnectionClosed as exc:
                self.rec.close_code = exc.reason.code if exc.reason else None
                self.on_change()
                return
            event = json.loads(raw)
            if self.observed:
                _observe(self.dialect.protocol, "client", event)
            audio = self.dialect.audio_of(event)
            if audio is not None:
                pcm = base64.b64decode(audio)
                self.rec.caller_audio += pcm
                event = {"type": event["type"], "bytes": len(pcm)}
            self.rec.events.append(event)
            for reply in self.dialect.on_client(self, event):
                await self.send(reply)
            self._changed.set()
            self._changed = trio.Event()
            self.on_change()

    async def wait_until(self, what: str, ready: Callable[[], bool], timeout: float) -> bool:
        with trio.move_on_after(timeout):
            while not ready():
                await self._changed.wait()
            return True
        self.rec.failures.append(f"timed out after {timeout} s waiting for {what}")
        return False

    async def run(self, script: Sequence[Step]) -> None:
        for reply in self.dialect.greeting(self.rec):
            await self.send(reply)
        if self.dialect.start_event and not await self._await_start():
            await self.ws.aclose(1008, "expected session.start")
            return
        for step in script:
            if not await self._step(step):
                break
        await trio.sleep_forever()  # silent: the reader records until the client leaves

    async def _await_start(self) -> bool:
        return (
            await self.wait_until("session.start", lambda: bool(self.rec.events), DEFAULT_TIMEOUT)
            and self.rec.events[0].get("type") == self.dialect.start_event
        )

    async def _step(self, step: Step) -> bool:
        match step:
            case Hear(ms=ms, timeout=timeout):
                target = self.rec.audio_ms + ms
                return await self.wait_until(
                    f"{ms} ms of caller audio", lambda: self.rec.audio_ms >= target, timeout
                )
            case Say():
                await self._say(step)
            case CallerSpeechStarted():
                await self.send(self.dialect.speech_started(self))
            case CallerSpeechStopped():
                for event in self.dialect.speech_stopped(self):
                    await self.send(event)
            case CallerSaid(text=text):
                for event in self.dialect.caller_said(self, text):
                    await self.send(event)
            case CallTool():
                self._last_call_id = step.call_id or f"call_{self.next_id()}"
                for event in self.dialect.call_tool(self, step, self._last_call_id):
                    await self.send(event)
            case AwaitToolOutput(call_id=call_id, timeout=timeout):
                wanted = call_id or self._last_call_id or ""
                return await self.wait_until(
                    f"tool output for {wanted}",
                    lambda: self.dialect.has_tool_output(self.rec, wanted),
                    timeout,
                )
            case AwaitClient(type=kind, timeout=timeout):
                seen = len(self.rec.events)
                return await self.wait_until(
                    f"client event {kind}",
                    lambda: any(e.get("type") == kind for e in self.rec.events[seen:]),
                    timeout,
                )
            case SendError():
                self.rec.gone_at = trio.current_time()
                await self.send(self.dialect.error(step))
            case Send(event=event):
                await self.send(event)
            case Close():
                return await self._close(step)
            case Drop():
                self.rec.gone_at = trio.current_time()
                await self.stream.drop()
                return False
            case Stall():
                self.rec.gone_at = trio.current_time()
                self.stream.stall()
                return False
            case GoSilent():
                return False
        return True

    async def _close(self, step: Close) -> bool:
        if step.while_sending:
            seen = self.rec.audio_bytes
            if not await self.wait_until(
                "caller audio to close on", lambda: self.rec.audio_bytes > seen, step.timeout
            ):
                return False
        for event in self.dialect.before_close(step, self.rec):
            await self.send(event)
        self.stream.linger = step.linger
        self.rec.gone_at = trio.current_time()
        with contextlib.suppress(ConnectionClosed):
            await self.ws.aclose(step.code, step.reason)
        return False

    async def _say(self, step: Say) -> None:
        batches = self.dialect.say(self, step)
        for i, batch in enumerate(batches):
            for event in batch:
                await self.send(event)
            is_audio = 0 < i < len(batches) - 1
            if step.paced and is_audio:
                await trio.sleep(step.chunk_ms / 1000)


# --- the server --------------------------------------------------------------------------------


class ScriptedRealtime:
    """A scripted Realtime GA server on localhost. ``async with server as url``."""

    dialect: _Dialect = _Dialect()
    path = "/v1/realtime"

    def __init__(
        self,
        script: Sequence[Step] = (),
        *,
        reject_status: int | None = None,
        strict: bool = True,
        check_wire: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        self.script = list(script)
        self.reject_status = reject_status
        self.strict = strict
        self.check_wire = check_wire  # False: frames skip frame_observers (a deliberate mismatch)
        self.host = host
        self.sessions: list[SessionRecord] = []
        self.url = ""
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._changed = trio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait (event-driven) until ``predicate()`` holds: e.g. a tool output arrived.
        Raises ``trio.TooSlowError`` after ``timeout`` seconds."""
        with trio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()

    @property
    def last(self) -> SessionRecord:
        if not self.sessions:
            raise ScriptFailed("no client connected")
        return self.sessions[-1]

    @property
    def failures(self) -> list[str]:
        return [failure for rec in self.sessions for failure in rec.failures]

    async def __aenter__(self) -> str:
        self._stack = AsyncExitStack()
        self.url = await self._stack.enter_async_context(self._serve())
        return self.url

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None
        await self._stack.aclose()
        if exc is None and self.strict and self.failures:
            raise ScriptFailed("; ".join(self.failures))

    @asynccontextmanager
    async def _serve(self) -> AsyncIterator[str]:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, self._serve_stream, 0, host=self.host)
            )
            port = listeners[0].socket.getsockname()[1]
            yield f"ws://{self.host}:{port}{self.path}"
            nursery.cancel_scope.cancel()

    async def open_stream(self, host: str, port: int, tls: bool) -> trio.abc.Stream:
        """A ``StreamOpener`` for the client: an in-memory connection to this server, whatever
        the URL says. Nothing goes through the kernel, so ``MockClock`` tests stay exact."""
        if self._nursery is None:
            raise ScriptFailed("the server is not running (use `async with server`)")
        client, server = memory_connection()
        self._nursery.start_soon(self._serve_stream, server)
        return client

    async def _serve_stream(self, inner: trio.abc.Stream) -> None:
        assert self._nursery is not None
        stream = _ServerStream(inner, self._nursery)
        try:
            async with trio.open_nursery() as nursery:
                request = await wrap_server_stream(nursery, stream)
                await self._handle(request, stream)
                nursery.cancel_scope.cancel()
        finally:
            await trio.aclose_forcefully(stream)

    async def _handle(self, request: WebSocketRequest, stream: _ServerStream) -> None:
        if self.reject_status is not None:
            await request.reject(self.reject_status, body=b"scripted rejection")
            return
        ws = await request.accept()
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        rec = SessionRecord(path=request.path, headers=headers)
        self.sessions.append(rec)
        self._notify()
        conn = _Connection(ws, rec, self.dialect, stream, self._notify)
        conn.observed = self.check_wire
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.run, self.script)
            await conn.read()
            nursery.cancel_scope.cancel()


class ScriptedLive(ScriptedRealtime):
    """The same, speaking GPT-Live (``session.start``, client delegation)."""

    dialect = _LiveDialect()
    path = "/v1/live/sessions"
