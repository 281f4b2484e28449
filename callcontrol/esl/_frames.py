"""Frames (one ESL message) and the events they carry.

``Frame`` and ``Event`` are immutable by convention and use ``__slots__`` rather than attrs:
they are created for every message on every call, and a frozen attrs ``__init__`` costs more
than the routing of the frame itself.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from callcontrol.esl._errors import ProtocolError
from callcontrol.esl._headers import _NOT_SHAPE, _SHAPES_END, Headers, _text, block_shape
from callcontrol.esl._urlcode import url_decode

AUTH_REQUEST = "auth/request"
COMMAND_REPLY = "command/reply"
API_RESPONSE = "api/response"
EVENT_PLAIN = "text/event-plain"
EVENT_JSON = "text/event-json"
EVENT_XML = "text/event-xml"
DISCONNECT_NOTICE = "text/disconnect-notice"
RUDE_REJECTION = "text/rude-rejection"
LOG_DATA = "log/data"

EVENT_TYPES = frozenset({EVENT_PLAIN, EVENT_JSON, EVENT_XML})


# FreeSWITCH's reply to a command (to bgapi: with its Job-UUID), matched in one go; a CR, or
# any other header, takes the line parser.
COMMAND_REPLY_BLOCK = re.compile(
    rb"Content-Type: command/reply\nReply-Text: ([^\r\n]*)\n(?:Job-UUID: ([^\r\n]*)\n)?\n"
)



def _reply_headers(text: bytes, job_uuid: bytes | None) -> Headers:
    """The headers of a block ``COMMAND_REPLY_BLOCK`` matched, as the line parser gives them."""
    reply = _text(text)
    pairs = [("Content-Type", COMMAND_REPLY), ("Reply-Text", reply)]
    fields = {"Content-Type": COMMAND_REPLY, "Reply-Text": url_decode(reply)}
    if job_uuid is not None:
        job = _text(job_uuid)
        pairs.append(("Job-UUID", job))
        fields["Job-UUID"] = url_decode(job)
    headers = Headers.from_pairs(pairs, decoded=False)
    headers._fields = fields  # what is routed on (has_event, reply_text) without an index
    return headers



class Frame:
    """One message from FreeSWITCH: its outer header block and its body (maybe empty)."""

    __slots__ = ("_block", "_event", "_headers", "body", "content_type")

    def __init__(self, headers: Headers, body: bytes, content_type: str) -> None:
        self._headers: Headers | None = headers
        self._block: bytes | None = b""
        self.body = body
        self.content_type = content_type
        self._event: Event | None = None

    @classmethod
    def of_envelope(cls, block: bytes | None, body: bytes, content_type: str) -> Frame:
        """A frame whose header block the reader has checked but not split.

        The headers of an event's envelope (``Content-Length``, ``Content-Type``) are
        almost never read, so even their ``Headers`` object is made on first access. A
        ``block`` of None stands for FreeSWITCH's own ``Content-Length: N`` (N the body's
        length, written without leading zeros) then ``Content-Type: T``.
        """
        frame = cls.__new__(cls)
        frame._headers = None
        frame._block = block
        frame.body = body
        frame.content_type = content_type
        frame._event = None
        return frame

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            block = self._block
            if block is None:
                length = str(len(self.body))
                pairs = [("Content-Length", length), ("Content-Type", self.content_type)]
                self._headers = Headers.from_pairs(pairs, decoded=True)
                self._headers._fields = dict(pairs)
            elif (reply := COMMAND_REPLY_BLOCK.fullmatch(block)) is not None:
                self._headers = _reply_headers(reply[1], reply[2])
            else:
                self._headers = Headers.of_envelope(block)
        return self._headers

    @property
    def reply_text(self) -> str:
        """``Reply-Text`` of a command/reply, or the body of an api/response, decoded."""
        if self.content_type == API_RESPONSE:
            return self.body.decode("utf-8", errors="replace")
        return self.headers.get("Reply-Text", "")

    @property
    def ok(self) -> bool:
        return self.reply_text.startswith("+OK")

    @property
    def is_event(self) -> bool:
        return self.content_type in EVENT_TYPES

    @property
    def event(self) -> Event:
        """The event this frame carries (the channel data, for an outbound ``connect`` reply)."""
        event = self._event
        if event is not None:  # every plain event's: made when it was read
            return event
        ct = self.content_type
        if ct == EVENT_PLAIN:
            event = Event.from_plain(self.body)
        elif ct == EVENT_JSON:
            event = Event.from_json(self.body)
        elif ct == EVENT_XML:
            event = Event.from_xml(self.body)
        elif self.has_event():
            event = Event(self.headers, None)
        else:
            raise ProtocolError(f"a {ct} frame carries no event")
        self._event = event
        return event

    def has_event(self) -> bool:
        if self._event is not None:
            return True
        content_type = self.content_type
        if content_type in EVENT_TYPES:
            return True
        # a block the reader matched whole (an envelope, a plain reply) has no Event-Name
        if content_type != COMMAND_REPLY or (self._headers is None and self._block):
            return False
        return "Event-Name" in self.headers

    def __repr__(self) -> str:
        return f"<Frame {self.content_type} {len(self.body)}B>"


# sre finds this two-byte literal about twice as fast as bytes.find does (CPython 3.11).
_BLANK_LINE = re.compile(b"\n\n")
# The lines a plain event is routed and framed by, found in one pass over its head (each
# line's value as the strict parser takes it); a lone colon stands for a line that starts
# with it (an empty name, which the strict parser refuses). Each alternative ends with its
# colon: sre then drops a line at its first byte that differs, where an empty alternative
# would be tried on every line (measured ~20% faster on the real traces).
_KEY_LINES = re.compile(
    rb"\n(:|Event-Name:|Unique-ID:|Job-UUID:|Application-UUID:|Content-Length:) ?([^\n]*)"
)


def _value(keys: dict[bytes, bytes], key: bytes) -> str | None:
    """The decoded value of a routing key picked out of a shaped (so ASCII) head."""
    raw = keys.get(key)
    if raw is None:
        return None
    value = raw.decode()
    return url_decode(value) if "%" in value else value


class Event:
    """A FreeSWITCH event: headers (decoded on read) and an optional inner body.

    ``name``, ``unique_id``, ``job_uuid`` and ``application_uuid`` are the routing keys,
    decoded when the event is made (plain attributes: every event is routed by two or more
    of them). A plain event is checked whole when it is made (a malformed one raises
    ProtocolError and reaches nobody), but of its ~100 headers only those keys are picked
    out, in one pass; the rest are cut and decoded when first read.
    """

    __slots__ = (
        "_data", "_end", "_headers", "_shape", "application_uuid", "body", "job_uuid", "name",
        "unique_id",
    )  # fmt: skip

    def __init__(self, headers: Headers, body: bytes | None) -> None:
        self._headers: Headers | None = headers
        # a plain event's bytes and where its head ends in them (read when headers are asked)
        self._data = b""
        self._end = 0
        self._shape: tuple[int, int] | bytes = (0, 0)
        self.body = body
        self.name: str = headers.get("Event-Name") or ""
        self.unique_id: str | None = headers.get("Unique-ID")
        self.job_uuid: str | None = headers.get("Job-UUID")
        self.application_uuid: str | None = headers.get("Application-UUID")

    @classmethod
    def from_plain(cls, data: bytes) -> Event:
        return plain_event(b"\n" + data, 1, len(data) + 1, data)

    @classmethod
    def _shaped(
        cls,
        data: bytes,
        end: int,
        shape: tuple[int, int] | bytes,
        keys: dict[bytes, bytes],
        body: bytes | None,
    ) -> Event:
        event = _new(cls)
        event._data = data
        event._end = end
        event._headers = None
        event._shape = shape
        event.body = body
        # _value inlined for the two keys every event has; the other two looked up only if
        # the head has more keys (a third of the routing's time went to these lookups)
        raw = keys.get(b"Event-Name:")
        more = len(keys)
        if raw is None:
            event.name = ""
        else:
            more -= 1
            name = raw.decode()  # a shaped head is ASCII: decode()'s own fast path
            event.name = url_decode(name) if "%" in name else name
        raw = keys.get(b"Unique-ID:")
        if raw is None:
            event.unique_id = None
        else:
            more -= 1
            uid = raw.decode()
            event.unique_id = url_decode(uid) if "%" in uid else uid
        event.job_uuid = _value(keys, b"Job-UUID:") if more else None
        event.application_uuid = _value(keys, b"Application-UUID:") if more else None
        return event

    @classmethod
    def _checked(cls, data: bytes) -> Event:
        """Any plain event (with an inner body, or not in FreeSWITCH's shape), checked now."""
        blank = _BLANK_LINE.search(data)
        if blank is None:
            head, rest = data.rstrip(b"\n"), b""
        else:
            end = blank.start()
            head, rest = data[:end], data[end + 2 :]
        shape = block_shape(head)
        if shape is not None:
            keys = dict(_KEY_LINES.findall(b"\n" + head)[::-1])
            if b":" in keys:
                raise ProtocolError("event header line with an empty name")
            length = keys.get(b"Content-Length:")
        else:
            headers = Headers.parsed(head)  # a malformed head fails here
            raw = headers.raw("Content-Length")
            length = None if raw is None else raw.encode("utf-8", "surrogateescape")
        body: bytes | None = None
        if length is not None:
            if not length.isdigit() or int(length) != len(rest):
                raise ProtocolError("event inner Content-Length does not match its body")
            body = rest
        elif rest:
            raise ProtocolError("event has trailing bytes but no inner Content-Length")
        if shape is not None:
            return cls._shaped(head, len(head), shape, keys, body)
        return cls(headers, body)

    @classmethod
    def from_json(cls, data: bytes) -> Event:
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"invalid JSON event: {exc}") from None
        if not isinstance(obj, dict):
            raise ProtocolError("a JSON event must be an object")
        body = obj.pop("_body", None)
        pairs = [(str(k), _json_value(v)) for k, v in obj.items()]
        return cls(Headers.from_pairs(pairs, decoded=True), _body_bytes(body))

    @classmethod
    def from_xml(cls, data: bytes) -> Event:
        try:
            # FreeSWITCH is the trusted peer of this socket; its XML carries no DTD.
            root = ET.fromstring(data)  # noqa: S314
        except ET.ParseError as exc:
            raise ProtocolError(f"invalid XML event: {exc}") from None
        headers_el = root.find("headers")
        if root.tag != "event" or headers_el is None:
            raise ProtocolError("an XML event must be <event><headers>...")
        pairs = [(child.tag, url_decode(child.text or "")) for child in headers_el]
        body_el = root.find("body")
        body = None if body_el is None else _body_bytes(body_el.text or "")
        return cls(Headers.from_pairs(pairs, decoded=True), body)

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            data, end, shape = self._data, self._end, self._shape
            block = data if end == len(data) else data[:end]
            if isinstance(shape, bytes):
                self._headers = Headers.of_plain_shape(block, shape)
            else:
                self._headers = Headers.shaped(block, shape)
        return self._headers

    @property
    def subclass(self) -> str | None:
        return self.get("Event-Subclass")

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def __getitem__(self, name: str) -> str:
        return self.headers[name]

    @property
    def body_text(self) -> str:
        return "" if self.body is None else self.body.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"<Event {self.name} {self.unique_id}>"


def _json_value(value: Any) -> str:
    if isinstance(value, list):
        # Multi-value headers: keep FreeSWITCH's own plain-text spelling of an array.
        return "ARRAY::" + "|:".join(str(v) for v in value)
    return str(value)


def _body_bytes(body: object) -> bytes | None:
    if body is None:
        return None
    return str(body).encode("utf-8")


_new = object.__new__

def plain_event(
    buf: bytes,
    start: int,
    stop: int,
    data: bytes,
    translate: Any = bytes.translate,
    findall: Any = _KEY_LINES.findall,
    shapes_end: Any = _SHAPES_END.endswith,
) -> Event:
    """The plain event ``data``, which is ``buf[start:stop]``; ``buf[start - 1]`` is a line end.

    FreeSWITCH's events without an inner body (nearly all of them) are checked here in two
    C passes over the reader's buffer: one translate for the head's shape (``block_shape``,
    inlined), one regex pass for the routing keys, an empty name, or an inner
    Content-Length (a body after all: the slow path looks again). Reading the buffer, not a
    copy, lets that pass see the event's first line after a line end like every other line,
    and the event keeps ``data`` itself (the frame's body, no second copy of its head).
    """
    if data.endswith(b"\n\n"):
        shape = translate(data, None, _NOT_SHAPE)
        # the shape of a head of N lines and its blank line: ": \n" N times, then "\n",
        # once the '%' are left out (compared in place, as the end of _SHAPES_END)
        bare = shape.replace(b"%", b"")  # the same object if there is none
        if len(bare) % 3 == 1 and shapes_end(bare):
            found = findall(buf, start - 1, stop - 2)
            keys = dict(found)
            if len(keys) != len(found):  # a key twice: its first value is the header's
                keys = dict(found[::-1])
            if b":" not in keys and b"Content-Length:" not in keys:
                # the shape's '%' are counted (and a name's looked for) when it is decoded
                return Event._shaped(data, len(data) - 2, shape, keys, None)
    return Event._checked(data)


# The outer lines the reader frames and routes by (see _KEY_LINES), for an outer block in
# FreeSWITCH's shape: the outbound connect reply, ~4 KiB of channel data.
_OUTER_KEY_LINES = re.compile(
    rb"\n(:|Content-Type:|Content-Length:|Event-Name:|Unique-ID:|Job-UUID:|Application-UUID:)"
    rb" ?([^\n]*)"
)
# Below this size the strict parser is as fast: it is a few lines.
_SMALL_BLOCK = 256


def parse_outer_headers(block: bytes) -> tuple[Headers, Mapping[str, str], Event | None]:
    """Parse an outer block now (a malformed one fails at read time); the last value wins.

    Gives the headers, the raw values of Content-Type and Content-Length, and the event
    the block carries (the channel data of a connect reply), if it has an Event-Name. A
    large block in FreeSWITCH's shape is checked like a plain event's head (one translate,
    one regex pass) and left to be cut and decoded when read.
    """
    if (shape := block_shape(block)) is not None:
        found = _OUTER_KEY_LINES.findall(b"\n" + block)
        last = dict(found)
        if b":" not in last:  # else an empty name: the strict parser says where
            plain = {
                name: last[key].decode("ascii")
                for key, name in ((b"Content-Type:", "Content-Type"),
                                  (b"Content-Length:", "Content-Length"))
                if key in last
            }  # fmt: skip
            headers = Headers.shaped(block, shape)
            first = dict(found[::-1])
            if b"Event-Name:" not in first:
                return headers, plain, None
            event = Event._shaped(block, len(block), shape, first, None)
            event._headers = headers
            return headers, plain, event
    headers = Headers.parsed(block)
    return headers, dict(headers.raw_items()), None
