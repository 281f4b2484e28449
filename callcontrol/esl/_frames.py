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
from callcontrol.esl._headers import Headers, find_raw
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


class Frame:
    """One message from FreeSWITCH: its outer header block and its body (maybe empty)."""

    __slots__ = ("_block", "_event", "_headers", "body", "content_type")

    def __init__(self, headers: Headers, body: bytes, content_type: str) -> None:
        self._headers: Headers | None = headers
        self._block = b""
        self.body = body
        self.content_type = content_type
        self._event: Event | None = None

    @classmethod
    def of_envelope(cls, block: bytes, body: bytes, content_type: str) -> Frame:
        """A frame whose header block the reader has checked but not split.

        The headers of an event's envelope (``Content-Length``, ``Content-Type``) are
        almost never read, so even their ``Headers`` object is made on first access.
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
            self._headers = Headers.of_envelope(self._block)
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
        if self._event is None:
            ct = self.content_type
            if ct == EVENT_PLAIN:
                self._event = Event.from_plain(self.body)
            elif ct == EVENT_JSON:
                self._event = Event.from_json(self.body)
            elif ct == EVENT_XML:
                self._event = Event.from_xml(self.body)
            elif self.has_event():
                self._event = Event(self.headers, None)
            else:
                raise ProtocolError(f"a {ct} frame carries no event")
        return self._event

    def has_event(self) -> bool:
        content_type = self.content_type
        return content_type in EVENT_TYPES or (
            content_type == COMMAND_REPLY and "Event-Name" in self.headers
        )

    def __repr__(self) -> str:
        return f"<Frame {self.content_type} {len(self.body)}B>"


# sre finds this two-byte literal about twice as fast as bytes.find does (CPython 3.11).
_BLANK_LINE = re.compile(b"\n\n")


class Event:
    """A FreeSWITCH event: headers (decoded on read) and an optional inner body.

    ``name``, ``unique_id``, ``job_uuid`` and ``application_uuid`` are the routing keys; on a
    plain event each is found in the raw bytes, when asked for, without parsing the other
    ~100 headers.
    """

    __slots__ = ("_head", "_headers", "body")

    def __init__(self, headers: Headers | None, body: bytes | None, head: bytes = b"") -> None:
        self._headers = headers
        self._head = head
        self.body = body

    @classmethod
    def from_plain(cls, data: bytes) -> Event:
        blank = _BLANK_LINE.search(data)
        if blank is None:
            head, rest = data.rstrip(b"\n"), b""
        else:
            end = blank.start()
            head, rest = data[:end], data[end + 2 :]
        body: bytes | None = None
        length = find_raw(head, b"Content-Length: ")
        if length is not None:
            if not length.isdigit() or int(length) != len(rest):
                raise ProtocolError("event inner Content-Length does not match its body")
            body = rest
        elif rest:
            raise ProtocolError("event has trailing bytes but no inner Content-Length")
        return cls(None, body, head)

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
            self._headers = Headers(self._head)
        return self._headers

    def _routing(self, key: bytes, line_key: bytes, name: str) -> str | None:
        """``self.get(name)``; on a plain event, found in the raw head without parsing it.

        ``key`` is ``b"Name: "`` and ``line_key`` ``b"\\nName: "``, as in ``find_raw``,
        whose lookup this repeats inline: it runs four times for every event routed.
        """
        if self._headers is not None:
            return self._headers.get(name)
        head = self._head
        if head.startswith(key):
            start = len(key)
        else:
            start = head.find(line_key)
            if start < 0:
                return None
            start += len(line_key)
        end = head.find(b"\n", start)
        raw = head[start:] if end < 0 else head[start:end]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        value = raw.decode("utf-8", "surrogateescape")
        return url_decode(value) if "%" in value else value

    @property
    def name(self) -> str:
        return self._routing(b"Event-Name: ", b"\nEvent-Name: ", "Event-Name") or ""

    @property
    def unique_id(self) -> str | None:
        return self._routing(b"Unique-ID: ", b"\nUnique-ID: ", "Unique-ID")

    @property
    def job_uuid(self) -> str | None:
        return self._routing(b"Job-UUID: ", b"\nJob-UUID: ", "Job-UUID")

    @property
    def application_uuid(self) -> str | None:
        return self._routing(b"Application-UUID: ", b"\nApplication-UUID: ", "Application-UUID")

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


def parse_outer_headers(block: bytes) -> tuple[Headers, Mapping[str, str]]:
    """Parse an outer block now (a malformed one fails at read time); the last value wins."""
    headers = Headers.parsed(block)
    return headers, dict(headers.raw_items())
