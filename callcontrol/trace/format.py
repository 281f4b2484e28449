"""The JSON-lines trace: a header object, then one ``{"t", "dir", "data"}`` object per line.

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
FORMAT_VERSION = 1

Mode = Literal["outbound", "inbound"]
Direction = Literal["recv", "send"]
_MODES: tuple[Mode, ...] = ("outbound", "inbound")
_DIRECTIONS: tuple[Direction, ...] = ("recv", "send")
_HEADER_KEYS = frozenset({"format", "version", "mode"})


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

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "mode": self.mode, **self.extra}


@attrs.frozen
class TraceLine:
    t: float
    dir: Direction
    data: bytes
    # 1-based line number in the file it was read from (0 when built in memory).
    lineno: int = attrs.field(default=0, eq=False)


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


def dump_header(header: TraceHeader) -> str:
    return json.dumps(header.to_json(), ensure_ascii=False)


def dump_line(line: TraceLine) -> str:
    obj: dict[str, Any] = {"t": round(line.t, 6), "dir": line.dir}
    try:
        obj["data"] = line.data.decode("utf-8")
    except UnicodeDecodeError:
        obj["data_b64"] = base64.b64encode(line.data).decode("ascii")
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
    return Trace(header, tuple(_parse_line(n, text, source) for n, text in numbered))


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
    if obj.get("version") != FORMAT_VERSION:
        raise TraceFormatError(
            number, f"unsupported trace version {obj.get('version')!r}", source
        )
    mode = obj.get("mode")
    if mode not in _MODES:
        raise TraceFormatError(number, f"mode must be one of {_MODES}, got {mode!r}", source)
    extra = {k: v for k, v in obj.items() if k not in _HEADER_KEYS}
    return TraceHeader(mode=mode, extra=extra)


def _parse_line(number: int, text: bytes, source: str) -> TraceLine:
    obj = _load_object(number, text, source)
    t = obj.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
        raise TraceFormatError(number, f"'t' must be a number >= 0, got {t!r}", source)
    direction = obj.get("dir")
    if direction not in _DIRECTIONS:
        raise TraceFormatError(number, f"'dir' must be 'recv' or 'send', got {direction!r}", source)
    return TraceLine(float(t), direction, _parse_data(number, obj, source), number)


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
