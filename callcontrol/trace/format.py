"""The JSON-lines trace: a header object, then one ``{"t", "dir", ...}`` object per line.

Version 1 holds the Event Socket only: ``recv`` (what FreeSWITCH sent) and ``send`` (what we
sent), each with ``data``. Version 2 (what ``serve --record`` writes now) adds what else decided
the call, so that ``replay`` can reproduce it (docs/operations.md, "Recording calls"):

- ``ai_open`` (``url`` without its query, or ``error``), ``ai_send`` / ``ai_recv`` (one websocket
  text frame each, in ``data``; a message carrying the caller's audio keeps its type and
  ``audio_bytes``, not the audio), ``ai_close`` (``code``, ``reason``, ``by``: ``peer`` or ``us``);
  ``ai_resolve`` (``value``: the delegated tool GPT-Live's resolver chose, or null);
- ``gen``: a value the server generated (``kind``: ``uuid4``, ``token_hex``, ``now``, ``port``;
  ``value``: its text), in the order the call asked for them;
- ``server``: what the server did to the call from outside it (``what``: ``shutting_down`` on
  SIGTERM, ``stop_now`` on a second one, ``hand_back`` when the drain is over).

``data`` is the exact bytes as text when they are UTF-8; otherwise ``data_b64`` holds them in
base64, so a trace always gives back the bytes that crossed the socket. Lines are split on
``\\n`` only: ``json.dumps`` escapes CR and LF inside strings, but a text-mode reader would also
split on other characters (U+2028, lone CR) that may appear unescaped.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

FORMAT_NAME = "callcontrol-esl-trace"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

Mode = Literal["outbound", "inbound"]
Direction = Literal[
    "recv", "send", "ai_open", "ai_send", "ai_recv", "ai_close", "ai_resolve", "gen", "server"
]
_MODES: tuple[Mode, ...] = ("outbound", "inbound")
_ESL_DIRECTIONS: tuple[Direction, ...] = ("recv", "send")
_DIRECTIONS: dict[int, tuple[Direction, ...]] = {
    1: _ESL_DIRECTIONS,
    2: (*_ESL_DIRECTIONS, "ai_open", "ai_send", "ai_recv", "ai_close", "ai_resolve", "gen",
        "server"),
}
# lines whose payload is bytes (``data`` / ``data_b64``); the others carry ``fields`` only
_WITH_DATA = frozenset({"recv", "send", "ai_send", "ai_recv"})
GENERATED_KINDS = ("uuid4", "token_hex", "now", "port")
# the caller's audio on its way to the AI (Realtime, GPT-Live): recorded without the audio
CALLER_AUDIO_TYPES = ("input_audio_buffer.append", "session.input_audio.append")
SERVER_EVENTS = ("shutting_down", "stop_now", "hand_back")
_HEADER_KEYS = frozenset({"format", "version", "mode"})
_LINE_KEYS = frozenset({"t", "dir", "data", "data_b64"})


class TraceFormatError(ValueError):
    """The file is not a valid trace; the message names the line (1-based) and the problem."""

    def __init__(self, line: int, problem: str, source: str = "") -> None:
        self.line = line
        self.problem = problem
        where = f"{source}:{line}" if source else f"line {line}"
        super().__init__(f"{where}: {problem}")


@attrs.frozen
class TraceHeader:
    mode: Mode
    # Free-form fields a recorder adds (source, start time, unique_id, notes...), kept as read.
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    # what the file says; a trace built in memory is written as the current version
    version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "version": self.version, "mode": self.mode, **self.extra}


@attrs.frozen
class TraceLine:
    t: float
    dir: Direction
    data: bytes = b""
    # 1-based line number in the file it was read from (0 when built in memory).
    lineno: int = attrs.field(default=0, eq=False)
    # the other keys of the line (v2: ``kind``/``value`` of a ``gen``, ``code``/``reason`` of
    # an ``ai_close``...), as JSON values
    fields: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def esl(self) -> bool:
        return self.dir in _ESL_DIRECTIONS


@attrs.frozen
class Trace:
    header: TraceHeader
    lines: tuple[TraceLine, ...]

    @property
    def mode(self) -> Mode:
        return self.header.mode

    def data(self, direction: Direction) -> bytes:
        """Every line of one direction concatenated: the byte stream as it crossed the socket."""
        return b"".join(line.data for line in self.lines if line.dir == direction)

    @property
    def esl_lines(self) -> tuple[TraceLine, ...]:
        """The Event Socket lines only (all of a version-1 trace)."""
        return tuple(line for line in self.lines if line.esl)

    def of(self, *directions: Direction) -> tuple[TraceLine, ...]:
        return tuple(line for line in self.lines if line.dir in directions)

    def generated(self, kind: str) -> list[str]:
        """The recorded generated values of one kind, in the order they were asked for."""
        return [str(line.fields["value"]) for line in self.lines
                if line.dir == "gen" and line.fields.get("kind") == kind]  # fmt: skip


def is_caller_audio(data: bytes | str) -> bool:
    """An ``ai_send`` message that carries the caller's audio (by its leading ``type``)."""
    head = data[:80] if isinstance(data, str) else data[:80].decode("utf-8", "replace")
    return any(f'"type": "{kind}"' in head for kind in CALLER_AUDIO_TYPES)


def dump_header(header: TraceHeader) -> str:
    return json.dumps(header.to_json(), ensure_ascii=False)


def dump_line(line: TraceLine) -> str:
    obj: dict[str, Any] = {"t": round(line.t, 6), "dir": line.dir}
    if line.dir in _WITH_DATA:
        try:
            obj["data"] = line.data.decode("utf-8")
        except UnicodeDecodeError:
            obj["data_b64"] = base64.b64encode(line.data).decode("ascii")
    obj.update((k, v) for k, v in line.fields.items() if k not in _LINE_KEYS)
    return json.dumps(obj, ensure_ascii=False)


def dumps(trace: Trace) -> bytes:
    out = [dump_header(trace.header)]
    out.extend(dump_line(line) for line in trace.lines)
    return ("\n".join(out) + "\n").encode("utf-8")


def write_trace(path: str | Path, trace: Trace) -> None:
    Path(path).write_bytes(dumps(trace))


def read_trace(path: str | Path) -> Trace:
    """Read and validate a trace file; raises ``TraceFormatError`` naming the bad line."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TraceFormatError(0, f"cannot read trace: {exc.strerror or exc}", str(path)) from None
    return loads(raw, source=str(path))


def loads(raw: bytes, *, source: str = "") -> Trace:
    numbered = _numbered_lines(raw)
    first = next(numbered, None)
    if first is None:
        raise TraceFormatError(1, "empty file: expected the trace header", source)
    header = _parse_header(*first, source)
    return Trace(header, tuple(_parse_line(n, text, source, header.version)
                               for n, text in numbered))  # fmt: skip


def _numbered_lines(raw: bytes) -> Iterator[tuple[int, bytes]]:
    for number, text in enumerate(raw.split(b"\n"), start=1):
        if text.strip():
            yield number, text


def _load_object(number: int, text: bytes, source: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TraceFormatError(number, f"not valid JSON ({exc})", source) from None
    if not isinstance(obj, dict):
        raise TraceFormatError(number, "expected a JSON object", source)
    return obj


def _parse_header(number: int, text: bytes, source: str) -> TraceHeader:
    obj = _load_object(number, text, source)
    if obj.get("format") != FORMAT_NAME:
        raise TraceFormatError(
            number, f"not a trace header: expected format {FORMAT_NAME!r}", source
        )
    version = obj.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise TraceFormatError(
            number, f"unsupported trace version {obj.get('version')!r}", source
        )
    mode = obj.get("mode")
    if mode not in _MODES:
        raise TraceFormatError(number, f"mode must be one of {_MODES}, got {mode!r}", source)
    extra = {k: v for k, v in obj.items() if k not in _HEADER_KEYS}
    return TraceHeader(mode=mode, extra=extra, version=version)


def _parse_line(number: int, text: bytes, source: str, version: int = FORMAT_VERSION) -> TraceLine:
    obj = _load_object(number, text, source)
    t = obj.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
        raise TraceFormatError(number, f"'t' must be a number >= 0, got {t!r}", source)
    direction = obj.get("dir")
    allowed = _DIRECTIONS[version]
    if direction not in allowed:
        names = " or ".join(repr(d) for d in allowed)
        raise TraceFormatError(number, f"'dir' must be {names}, got {direction!r}", source)
    fields = {k: v for k, v in obj.items() if k not in _LINE_KEYS}
    if direction == "gen":
        _check_generated(number, fields, source)
    if direction == "server" and fields.get("what") not in SERVER_EVENTS:
        raise TraceFormatError(number, f"a 'server' line's 'what' must be one of "
                               f"{SERVER_EVENTS}, got {fields.get('what')!r}", source)  # fmt: skip
    if direction not in _WITH_DATA:
        if "data" in obj or "data_b64" in obj:
            raise TraceFormatError(number, f"a {direction!r} line has no 'data'", source)
        return TraceLine(float(t), direction, b"", number, fields)
    return TraceLine(float(t), direction, _parse_data(number, obj, source), number, fields)


def _check_generated(number: int, fields: Mapping[str, Any], source: str) -> None:
    kind = fields.get("kind")
    if kind not in GENERATED_KINDS:
        raise TraceFormatError(
            number, f"a 'gen' line's 'kind' must be one of {GENERATED_KINDS}, got {kind!r}", source
        )
    if not isinstance(fields.get("value"), str):
        raise TraceFormatError(number, "a 'gen' line's 'value' must be a string", source)


def _parse_data(number: int, obj: Mapping[str, Any], source: str) -> bytes:
    if ("data" in obj) == ("data_b64" in obj):
        raise TraceFormatError(number, "a line needs exactly one of 'data' or 'data_b64'", source)
    if "data" in obj:
        data = obj["data"]
        if not isinstance(data, str):
            raise TraceFormatError(number, "'data' must be a string", source)
        try:
            return data.encode("utf-8")
        except UnicodeEncodeError:
            raise TraceFormatError(
                number, "'data' holds a lone surrogate; non-UTF-8 bytes go in 'data_b64'", source
            ) from None
    encoded = obj["data_b64"]
    if not isinstance(encoded, str):
        raise TraceFormatError(number, "'data_b64' must be a string", source)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise TraceFormatError(number, "'data_b64' is not valid base64", source) from None
