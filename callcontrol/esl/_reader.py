"""The frame reader: bytes in, frames out, no I/O.

A message is a block of ``Name: value`` lines ended by a blank line; when the block has
``Content-Length: N``, exactly N bytes of body follow. Header order is not fixed (events put
Content-Length first; the outbound ``connect`` reply puts Content-Type near the end), so the
whole block is collected before anything branches on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from callcontrol.esl._errors import ProtocolError
from callcontrol.esl._frames import (
    API_RESPONSE,
    AUTH_REQUEST,
    COMMAND_REPLY,
    COMMAND_REPLY_BLOCK,
    DISCONNECT_NOTICE,
    EVENT_JSON,
    EVENT_PLAIN,
    EVENT_XML,
    LOG_DATA,
    RUDE_REJECTION,
    Event,
    Frame,
    parse_outer_headers,
    plain_event,
)
from callcontrol.esl._headers import Headers

_new = object.__new__

# FreeSWITCH refuses client bodies over 16 MiB; nothing it sends us is larger either.
MAX_BODY = 16 * 1024 * 1024
# The largest header block is the outbound connect reply (a few KiB of channel data).
MAX_HEADER_BLOCK = 1024 * 1024


# sre finds this two-byte literal about twice as fast as bytes.find does (CPython 3.11).
_BLANK_LINE = re.compile(b"\n\n")
# FreeSWITCH's envelope of a plain event, the commonest frame by far: matched in one go.
_EVENT_ENVELOPE = re.compile(
    rb"Content-Length: ([1-9][0-9]{0,7}|0)\nContent-Type: text/event-plain\n\n"
)

class FrameReader:
    """Feed it bytes as they arrive; take complete frames with ``next_frame``.

    Any chunking of the same byte stream gives the same frames. Malformed input raises
    ``ProtocolError`` and leaves the reader unusable (``broken``), as the stream's framing
    can no longer be trusted.

    The unread bytes are one immutable ``bytes``: frames and events are sliced out of it
    with one copy each, and a chunk fed after everything was read becomes the buffer as it
    is. Chunks fed while a frame is incomplete wait in a list until they complete it, so a
    large frame arriving in many pieces is joined once, not once per piece.
    """

    __slots__ = ("_buf", "_keep_raw", "_pos", "_tail", "_tail_size", "_want", "broken", "last_raw")

    def __init__(self, *, keep_raw: bool = False) -> None:
        self._buf = b""
        self._pos = 0
        self._tail: list[bytes] = []
        self._tail_size = 0
        # bytes from _pos the incomplete frame needs (0: unknown, look again on any feed)
        self._want = 0
        self.broken = False
        # With keep_raw, the exact bytes of the last frame returned (for trace recording).
        self._keep_raw = keep_raw
        self.last_raw = b""

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self.broken:
            raise ProtocolError("the stream already failed to parse")
        if not data:
            return
        if self._pos >= len(self._buf) and not self._tail:
            self._buf = bytes(data)
            self._pos = 0
        else:
            self._tail.append(bytes(data))
            self._tail_size += len(data)

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos + self._tail_size

    def _join(self, need: int) -> bool:
        """Join the waiting chunks onto the unread bytes if that makes ``need`` of them."""
        if not self._tail or self.buffered < need:
            return False
        self._buf = b"".join([self._buf[self._pos :], *self._tail])
        self._pos = 0
        self._tail = []
        self._tail_size = 0
        return True

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes arrive."""
        try:
            return self._next()
        except ProtocolError:
            self.broken = True
            raise

    def __iter__(self) -> Iterator[Frame]:
        # next_frame() inlined, and the frames FreeSWITCH writes in its own fixed forms (a
        # plain event in its envelope, a command reply, a frame written type first) read
        # right here: this loop is the hot path of every connection.
        match = _EVENT_ENVELOPE.match
        reply_match = COMMAND_REPLY_BLOCK.match
        typed_match = _TYPED_BLOCK.match
        keep_raw = self._keep_raw
        try:
            while True:
                if not self._want:
                    buf = self._buf
                    pos = self._pos
                    envelope = match(buf, pos)
                    if envelope is not None:
                        start, length = envelope.end(), int(envelope[1])
                        stop = start + length
                        if stop <= len(buf) and length <= MAX_BODY:
                            self._pos = stop
                            if keep_raw:
                                self.last_raw = buf[pos:stop]
                            body = buf[start:stop]
                            frame = _new(Frame)
                            frame._headers = frame._block = None
                            frame.body = body
                            frame.content_type = EVENT_PLAIN
                            frame._event = plain_event(buf, start, stop, body)
                            yield frame
                            continue
                    reply = reply_match(buf, pos)
                    if reply is not None:
                        stop = reply.end()
                        self._pos = stop
                        raw = buf[pos:stop]
                        if keep_raw:
                            self.last_raw = raw
                        # its headers are made from the block when asked (reply_text)
                        frame = _new(Frame)
                        frame._headers = frame._event = None
                        frame._block = raw
                        frame.body = b""
                        frame.content_type = COMMAND_REPLY
                        yield frame
                        continue
                    typed = typed_match(buf, pos)
                    if typed is not None and (framed := self._typed(buf, pos, typed)) is not None:
                        yield framed
                        continue
                # the envelope was looked for already, unless a frame waits for its bytes
                other = self._next() if self._want else self._next_other()
                if other is None:
                    return
                yield other
        except ProtocolError:
            self.broken = True
            raise

    def _typed(self, buf: bytes, pos: int, typed: re.Match[bytes]) -> Frame | None:
        """The frame at ``pos`` that ``_TYPED_BLOCK`` matched, if its body is here."""
        start = typed.end()
        last = typed.lastindex or 1  # 2 or 4: the group of its length (1 always matches)
        stop = start if last in {1, 3} else start + int(typed[last])
        if stop > len(buf) or stop - start > MAX_BODY:
            return None
        self._pos = stop
        if self._keep_raw:
            self.last_raw = buf[pos:stop]
        content_type = _KNOWN_TYPES[typed[1]]
        block = buf[pos : start - 2]
        body = buf[start:stop]
        if last <= 2:  # its type and its length: an envelope
            frame = Frame.of_envelope(block, body, content_type)
        else:  # its other lines are split when read: none of them frames or routes it
            frame = Frame(Headers(block), body, content_type)
        if content_type == EVENT_PLAIN:
            frame._event = plain_event(buf, start, stop, body)
        return frame

    def _next(self) -> Frame | None:
        if self._want:
            if not self._join(self._want):
                return None
            self._want = 0
        buf = self._buf
        pos = self._pos
        envelope = _EVENT_ENVELOPE.match(buf, pos)
        if envelope is not None:
            start = envelope.end()
            length = int(envelope[1])
            stop = start + length
            if stop <= len(buf) and length <= MAX_BODY:
                self._pos = stop
                if self._keep_raw:
                    self.last_raw = buf[pos:stop]
                body = buf[start:stop]
                frame = Frame.of_envelope(None, body, EVENT_PLAIN)
                frame._event = plain_event(buf, start, stop, body)
                return frame
        return self._next_other()

    def _next_other(self) -> Frame | None:
        """``_next`` for any frame but a complete plain event in FreeSWITCH's envelope."""
        head = self._read_head()
        if head is None:
            return None
        headers, content_type, start, length, event = head
        stop = start + length
        buf = self._buf
        if len(buf) < stop:
            if not self._join(stop - self._pos):
                self._want = stop - self._pos
                return None
            return self._next()  # the joined buffer starts at this frame: read it again
        pos = self._pos
        self._pos = stop
        if self._keep_raw:
            self.last_raw = buf[pos:stop]
        body = buf[start:stop]
        if isinstance(headers, Headers):
            frame = Frame(headers, body, content_type)
            if content_type == COMMAND_REPLY:
                frame._event = event  # the connect reply's channel data, checked and routed
        else:
            frame = Frame.of_envelope(headers, body, content_type)
        if content_type == EVENT_PLAIN:
            # checked here, so that a malformed event breaks the stream, not its subscriber
            frame._event = plain_event(buf, start, stop, body)
        return frame

    def _read_head(self) -> tuple[Headers | bytes, str, int, int, Event | None] | None:
        """The next header block: (headers, content type, body start, body length, event).

        Consumes only the blank lines before it; None if the block is not complete yet. For
        one of FreeSWITCH's bare envelopes the headers are left as the block's bytes.
        """
        buf = self._buf
        pos = self._pos
        # FreeSWITCH itself skips blank lines between messages; so do we.
        while pos < len(buf) and buf[pos] in (0x0A, 0x0D):
            pos += 1
        self._pos = pos
        reply = COMMAND_REPLY_BLOCK.match(buf, pos)
        if reply is not None:
            return buf[pos : reply.end()], COMMAND_REPLY, reply.end(), 0, None
        typed = _TYPED_BLOCK.match(buf, pos)
        if typed is not None:
            start, last = typed.end(), typed.lastindex or 1
            length = 0 if last in {1, 3} else int(typed[last])
            if length > MAX_BODY:  # eight digits: up to 99999999
                raise ProtocolError(f"Content-Length {length} exceeds {MAX_BODY}")
            block = buf[pos : start - 2]
            lines = block if last <= 2 else Headers(block)
            return lines, _KNOWN_TYPES[typed[1]], start, length, None
        blank = _BLANK_LINE.search(buf, pos)
        end = -1 if blank is None else blank.start()
        # A CRLF blank line counts only if it comes first. Look for it within this block
        # alone (searching the whole buffer for every frame made reading quadratic), and
        # only if the block has a CR at all (one memchr).
        limit = len(buf) if end < 0 else end + 1
        crlf = buf.find(b"\n\r\n", pos, limit) if buf.find(b"\r", pos, limit) >= 0 else -1
        if crlf >= 0:
            end, skip = crlf, 3
        else:
            skip = 2
        if end < 0:
            if self._join(0):
                return self._read_head()
            if len(buf) - pos > MAX_HEADER_BLOCK:
                raise ProtocolError("header block larger than 1 MiB without a blank line")
            return None
        block = buf[pos:end]
        headers: Headers | bytes
        event = None
        envelope = _envelope(block)
        if envelope is None:
            # a malformed block fails here
            headers, plain, event = parse_outer_headers(block)
            content_type, length = _content(plain)
        else:
            # only routed, the envelope's own headers are seldom read: split them lazily
            headers, (content_type, length) = block, envelope
        if length > MAX_BODY:
            raise ProtocolError(f"Content-Length {length} exceeds {MAX_BODY}")
        return headers, content_type, end + skip, length, event


_KNOWN_TYPES = {
    t.encode(): t
    for t in (
        AUTH_REQUEST, COMMAND_REPLY, API_RESPONSE, EVENT_PLAIN, EVENT_JSON, EVENT_XML,
        DISCONNECT_NOTICE, RUDE_REJECTION, LOG_DATA,
    )
}
# A frame FreeSWITCH writes type first: an api response, the auth request, a disconnect
# notice, a rude rejection, matched in one go like the event's envelope. Its Content-Type,
# then its Content-Length if it has a body (groups 1, 2); or the type, then other lines (the
# outbound disconnect and linger notices', group 3), then the length (group 4). Those lines
# are as the strict parser reads them (a name without whitespace or colon, then ": ") and
# none is another Content-Type or Content-Length (the last of each would count).
_LENGTH_LINE = rb"Content-Length: ([1-9][0-9]{0,7}|0)\n"
_TYPED_BLOCK = re.compile(
    rb"Content-Type: (" + b"|".join(re.escape(t) for t in _KNOWN_TYPES) + rb")\n"
    rb"(?:(?:" + _LENGTH_LINE + rb")?\n"
    rb"|((?:(?!Content-(?:Type|Length):)[^\s:]+: [^\r\n]*\n)+)(?:" + _LENGTH_LINE + rb")?\n)"
)


_LENGTH = b"Content-Length: "
# Longer than any envelope but one with leading zeros in its Content-Length, which the line
# parser reads as well (to the same frame).
_ENVELOPE_MAX = 128
_TYPE = b"Content-Type: "


def _envelope(block: bytes) -> tuple[str, int] | None:
    """(content type, length) if ``block`` is one of FreeSWITCH's bare envelopes.

    Events come as ``Content-Length: N\\nContent-Type: T``, api responses and disconnect
    notices as ``Content-Type: T\\nContent-Length: N``, the auth request as ``Content-Type:
    T`` alone, T from a short list. Those need neither the line parser nor a new str per
    content type. Anything else (other headers or spacing, a CR, an unknown type) gives None.
    """
    if len(block) > _ENVELOPE_MAX:  # (a connect reply's block is ~4 KiB: not copied below)
        return None
    first, newline, second = block.partition(b"\n")
    if first.startswith(_LENGTH):
        type_line, length_line = second, first
    elif first.startswith(_TYPE):
        type_line, length_line = first, second
        if not newline:
            content_type = _KNOWN_TYPES.get(type_line[len(_TYPE) :])
            return None if content_type is None else (content_type, 0)
    else:
        return None
    digits = length_line[len(_LENGTH) :]
    if not (
        type_line.startswith(_TYPE) and length_line.startswith(_LENGTH) and digits.isdigit()
    ):
        return None
    content_type = _KNOWN_TYPES.get(type_line[len(_TYPE) :])
    return None if content_type is None else (content_type, int(digits))


def _content(plain: Mapping[str, str]) -> tuple[str, int]:
    """Content type and body length from any other block's headers (the last of each wins)."""
    content_type = plain.get("Content-Type")
    if content_type is None:
        raise ProtocolError("message without Content-Type")
    length_text = plain.get("Content-Length")
    if length_text is None:
        return content_type, 0
    if not length_text.isdigit() or not length_text.isascii():
        raise ProtocolError(f"invalid Content-Length {length_text[:20]!r}")
    return content_type, int(length_text)
