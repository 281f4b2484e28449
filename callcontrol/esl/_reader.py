"""The frame reader: bytes in, frames out, no I/O.

A message is a block of ``Name: value`` lines ended by a blank line; when the block has
``Content-Length: N``, exactly N bytes of body follow. Header order is not fixed (events put
Content-Length first; the outbound ``connect`` reply puts Content-Type near the end), so the
whole block is collected before anything branches on it.
"""

from __future__ import annotations

from collections.abc import Iterator

from callcontrol.esl._errors import ProtocolError
from callcontrol.esl._frames import Frame, parse_outer_headers
from callcontrol.esl._headers import Headers

# FreeSWITCH refuses client bodies over 16 MiB; nothing it sends us is larger either.
MAX_BODY = 16 * 1024 * 1024
# The largest header block is the outbound connect reply (a few KiB of channel data).
MAX_HEADER_BLOCK = 1024 * 1024


class FrameReader:
    """Feed it bytes as they arrive; take complete frames with ``next_frame``.

    Any chunking of the same byte stream gives the same frames. Malformed input raises
    ``ProtocolError`` and leaves the reader unusable (``broken``), as the stream's framing
    can no longer be trusted.
    """

    __slots__ = ("_buf", "_keep_raw", "_pending", "_pos", "_start", "broken", "last_raw")

    def __init__(self, *, keep_raw: bool = False) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._start = 0
        # (headers, content-type, body length) of a frame whose body is still arriving
        self._pending: tuple[Headers, str, int] | None = None
        self.broken = False
        # With keep_raw, the exact bytes of the last frame returned (for trace recording).
        self._keep_raw = keep_raw
        self.last_raw = b""

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self.broken:
            raise ProtocolError("the stream already failed to parse")
        if self._pos and self._pending is None and self._pos >= len(self._buf) // 2:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes arrive."""
        try:
            return self._next()
        except ProtocolError:
            self.broken = True
            raise

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.next_frame()) is not None:
            yield frame

    def _next(self) -> Frame | None:
        buf = self._buf
        if self._pending is None:
            pos = self._pos
            # FreeSWITCH itself skips blank lines between messages; so do we.
            while pos < len(buf) and buf[pos] in (0x0A, 0x0D):
                pos += 1
            self._pos = pos
            end = buf.find(b"\n\n", pos)
            crlf = buf.find(b"\n\r\n", pos)
            if crlf >= 0 and (end < 0 or crlf < end):
                end, skip = crlf, 3
            else:
                skip = 2
            if end < 0:
                if len(buf) - pos > MAX_HEADER_BLOCK:
                    raise ProtocolError("header block larger than 1 MiB without a blank line")
                return None
            self._start = pos
            headers, plain = parse_outer_headers(bytes(buf[pos:end]))
            self._pos = end + skip
            content_type = plain.get("Content-Type")
            if content_type is None:
                raise ProtocolError("message without Content-Type")
            length_text = plain.get("Content-Length")
            length = 0
            if length_text is not None:
                if not length_text.isdigit() or not length_text.isascii():
                    raise ProtocolError(f"invalid Content-Length {length_text[:20]!r}")
                length = int(length_text)
                if length > MAX_BODY:
                    raise ProtocolError(f"Content-Length {length} exceeds {MAX_BODY}")
            self._pending = (headers, content_type, length)
        headers, content_type, length = self._pending
        start = self._pos
        if len(buf) - start < length:
            return None
        body = bytes(buf[start : start + length])
        self._pos = start + length
        self._pending = None
        if self._keep_raw:
            self.last_raw = bytes(buf[self._start : self._pos])
        return Frame(headers, body, content_type)
