"""``serve --record DIR``: a ``trio.abc.Stream`` wrapper that writes the connection's trace.

Every frame FreeSWITCH sends becomes one ``recv`` line (the received bytes are split with the
same FrameReader the server uses, so the lines concatenate to exactly the bytes received),
and every ``send_all`` one ``send`` line; ``t`` is trio time since the wrapper was created. End of
stream from FreeSWITCH is a ``recv`` line with empty data.

The same stream records the rest of the call (trace format 2) while ``call_context()`` is
entered (``handle_call`` does it): the AI's websocket frames through ``_wsbase.wire_tap`` and
the values the call generates through ``callcontrol.generated``. The header holds the settings
that shape a call (``settings_snapshot``), never a secret.

Lines are buffered in memory and written by a worker thread, in a shielded scope, when the
buffer passes ``flush_bytes`` and when the stream is closed: the event loop never waits on the
disk, and a cancelled call (``aclose_forcefully``) still gets its trace. A failure to write is
logged once and recording of that call stops; the call itself never sees it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
import trio

from callcontrol import generated
from callcontrol.ai import _wsbase
from callcontrol.config import Settings
from callcontrol.esl import FrameReader, ProtocolError
from callcontrol.logs import get_logger
from callcontrol.trace.format import (
    Direction,
    Mode,
    TraceHeader,
    TraceLine,
    dump_header,
    dump_line,
    is_caller_audio,
)

FLUSH_BYTES = 256 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


_URL_SCHEMES = ("http://", "https://", "ws://", "wss://")


def settings_snapshot(settings: Settings) -> dict[str, Any]:
    """The settings a replay needs to decide like the recorded call, by field name.

    A secret is never in it: fields kept out of ``repr`` (keys, tokens, passwords) are left
    out, ``database_url`` too, and URLs lose their user info and query (some gateways take the
    key as a query parameter). What is left is whether an API key was set, not the key.
    """
    snapshot: dict[str, Any] = {}
    for field in attrs.fields(Settings):
        if not field.repr or field.name == "database_url":
            continue
        value = getattr(settings, field.name)
        if isinstance(value, str) and value.startswith(_URL_SCHEMES):
            value = _without_credentials(value)
        elif value is not None and not isinstance(value, str | int | float | bool):
            value = str(value)  # HostPort, PortRange: their variable's own spelling
        snapshot[field.name] = value
    snapshot["openai_api_key_set"] = bool(settings.openai_api_key)
    return snapshot


def _without_credentials(url: str) -> str:
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<unparseable URL>"


class TraceFile:
    """One trace file, created on its first write and named ``<UTC time>-<call uuid>.jsonl``.

    Its methods do blocking file I/O and run in a worker thread.
    """

    def __init__(self, directory: Path, started: dt.datetime, header: TraceHeader) -> None:
        self.directory = directory
        self.started = started
        self.header = header
        self.path: Path | None = None

    def _name(self, unique_id: str | None) -> str:
        stamp = self.started.strftime("%Y%m%dT%H%M%S.%fZ")
        return f"{stamp}-{_SAFE_NAME.sub('_', unique_id or 'unknown')}"

    def append(self, text: str, unique_id: str | None) -> None:
        if self.path is None:
            self.path = self._create(unique_id)
            text = dump_header(self.header) + "\n" + text
        with self.path.open("a", encoding="utf-8") as f:
            f.write(text)

    def _create(self, unique_id: str | None) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = self._name(unique_id)
        for n in itertools.count():
            path = self.directory / (f"{stem}.jsonl" if n == 0 else f"{stem}-{n}.jsonl")
            try:
                path.open("x").close()
            except FileExistsError:
                continue
            return path
        raise AssertionError("unreachable")

    def rename_for(self, unique_id: str | None) -> None:
        """Give the file the call's UUID when it was learned after the file was created."""
        if self.path is None or unique_id is None:
            return
        stem = self._name(unique_id)
        if self.path.name.startswith(stem):
            return
        target = self.path.with_name(f"{stem}.jsonl")
        if not target.exists():
            self.path = self.path.rename(target)


class RecordingStream(trio.abc.Stream):
    """Wraps the server's stream to FreeSWITCH and records it; create it inside trio."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        directory: str | Path,
        *,
        mode: Mode = "outbound",
        meta: Mapping[str, Any] | None = None,
        flush_bytes: int = FLUSH_BYTES,
        settings: Settings | None = None,
        inline: bool = False,
    ) -> None:
        self.stream = stream
        # write on the trio thread (tests on an autojump MockClock: while a worker thread
        # writes, trio looks idle and the clock jumps to the call's next deadline)
        self._inline = inline
        self._start = trio.current_time()
        started = dt.datetime.now(dt.UTC)
        extra: dict[str, Any] = {"recorder": "callcontrol", "started": started.isoformat()}
        if settings is not None:
            extra["settings"] = settings_snapshot(settings)
        extra.update(meta or {})
        self.file = TraceFile(Path(directory), started, TraceHeader(mode, extra))
        self.unique_id: str | None = None
        self._flush_bytes = flush_bytes
        self._pending: list[str] = []
        self._pending_size = 0
        self._failed = False
        self._write_lock = trio.Lock()
        self._reader: FrameReader | None = FrameReader()
        self._unsplit = bytearray()  # received bytes not yet written as a recv line
        self._eof = False

    @property
    def path(self) -> Path | None:
        """The trace file, once something has been written."""
        return self.file.path

    # trio.abc.Stream

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._guarded(self._add, "send", bytes(data))
        await self.stream.send_all(data)
        await self._flush_if_large()

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.stream.receive_some(max_bytes)
        self._guarded(self._received, bytes(data))
        await self._flush_if_large()
        return data

    async def aclose(self) -> None:
        try:
            await self.stream.aclose()
        finally:
            self._guarded(self._emit_unsplit)
            await self._flush(final=True)

    # the rest of the call: the AI's frames and the generated values (trace format 2)

    @contextlib.contextmanager
    def call_context(self) -> Iterator[None]:
        """While entered, this call's AI frames and generated values go into this trace."""
        with generated.using(generated.RecordingSource(self._generated)):
            token = _wsbase.wire_tap.set(self)
            try:
                yield
            finally:
                _wsbase.wire_tap.reset(token)

    def frame(self, direction: Direction, data: str | bytes) -> None:
        """``_wsbase.WireTap``: one websocket message (the caller's audio only counted)."""
        if direction == "ai_send" and is_caller_audio(data):
            self._guarded(self._caller_audio, data)
            return
        binary = isinstance(data, bytes)
        raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
        self._guarded(self._add, direction, raw, {"binary": True} if binary else {})

    def _caller_audio(self, data: str | bytes) -> None:
        # The caller's voice stays out of the trace (size, privacy); replay does not feed it
        message = json.loads(data)
        size = len(base64.b64decode(message.get("audio") or ""))
        text = json.dumps({**message, "audio": ""}, ensure_ascii=False)
        self._add("ai_send", text.encode(), {"audio_bytes": size})

    def event(self, direction: Direction, **fields: Any) -> None:
        """``_wsbase.WireTap``: the websocket opened or ended, a delegated tool resolved."""
        self._guarded(self._add, direction, b"", fields)

    def note_server(self, what: str) -> None:
        """What ``serve`` did to the call from outside it (SIGTERM, the hand-back)."""
        self._guarded(self._add, "server", b"", {"what": what})

    def _generated(self, kind: str, value: str) -> None:
        self._guarded(self._add, "gen", b"", {"kind": kind, "value": value})

    # recording

    def _guarded(self, record: Callable[..., None], *args: Any) -> None:
        try:
            record(*args)
        except Exception as exc:  # a recorder bug must not end the call it records
            self._fail("trace.record_failed", exc)

    def _fail(self, what: str, exc: Exception) -> None:
        self._failed = True
        self._pending.clear()
        get_logger("callcontrol.trace").error(
            what, error=repr(exc), directory=str(self.file.directory), path=str(self.path)
        )

    def _add(
        self, direction: Direction, data: bytes, fields: Mapping[str, Any] | None = None
    ) -> None:
        if self._failed:
            return
        line = TraceLine(trio.current_time() - self._start, direction, data, fields=fields or {})
        text = dump_line(line) + "\n"
        self._pending.append(text)
        self._pending_size += len(text)

    def _received(self, data: bytes) -> None:
        if not data:
            # A frame cut short is still part of what was received; the empty line after it
            # tells replay that FreeSWITCH closed the socket here.
            self._emit_unsplit()
            if not self._eof:
                self._eof = True
                self._add("recv", b"")
            return
        self._unsplit += data
        if self._reader is None:
            self._emit_unsplit()
            return
        try:
            self._split_frames(data)
        except ProtocolError as exc:
            get_logger("callcontrol.trace").warning(
                "trace.unparsable_stream", error=str(exc), path=str(self.path)
            )
            # From here on the stream is recorded chunk by chunk, still byte-exact.
            self._reader = None
            self._emit_unsplit()

    def _split_frames(self, data: bytes) -> None:
        assert self._reader is not None
        self._reader.feed(data)
        for frame in self._reader:
            # Bytes up to the end of this frame (incl. any blank lines before it).
            cut = len(self._unsplit) - self._reader.buffered
            self._add("recv", bytes(self._unsplit[:cut]))
            del self._unsplit[:cut]
            if self.unique_id is None and frame.has_event():
                self.unique_id = frame.event.unique_id

    def _emit_unsplit(self) -> None:
        if self._unsplit:
            self._add("recv", bytes(self._unsplit))
            self._unsplit.clear()

    async def _flush_if_large(self) -> None:
        if self._pending_size >= self._flush_bytes and not self._write_lock.locked():
            await self._flush(final=False)

    async def _flush(self, *, final: bool) -> None:
        # Shielded: the lines are already taken from the call, and a cancelled call
        # (aclose_forcefully) must still leave its trace behind.
        with trio.CancelScope(shield=True):
            async with self._write_lock:
                if self._failed:
                    return
                text = "".join(self._pending)
                self._pending.clear()
                self._pending_size = 0
                try:
                    if self._inline:
                        self._write(text, final)
                    else:
                        await trio.to_thread.run_sync(self._write, text, final)
                except Exception as exc:  # disk full, permissions...: the call goes on
                    self._fail("trace.write_failed", exc)

    def _write(self, text: str, final: bool) -> None:
        if text or self.file.path is None:
            self.file.append(text, self.unique_id)
        if final:
            self.file.rename_for(self.unique_id)


def recording_wrapper(
    directory: str | Path,
    *,
    mode: Mode = "outbound",
    settings: Settings | None = None,
    inline: bool = False,
) -> Callable[[trio.abc.Stream], trio.abc.Stream]:
    """What ``serve --record DIR`` installs: wrap each call's stream in a RecordingStream."""
    target = Path(directory)

    def wrap(stream: trio.abc.Stream) -> trio.abc.Stream:
        return RecordingStream(stream, target, mode=mode, settings=settings, inline=inline)

    return wrap
