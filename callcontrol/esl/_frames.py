"""Frames (one ESL message) and the events they carry.

``Frame`` and ``Event`` are immutable by convention and use ``__slots__`` rather than attrs:
they are created for every message on every call, and a frozen attrs ``__init__`` costs more
than the routing of the frame itself.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from callcontrol.esl._errors import ProtocolError
from callcontrol.esl._headers import Headers, find_raw, parse_header_lines
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

    __slots__ = ("_event", "body", "content_type", "headers")

    def __init__(self, headers: Headers, body: bytes, content_type: str) -> None:
        self.headers = headers
        self.body = body
        self.content_type = content_type
        self._event: Event | None = None

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
            self._event = _event_of(self)
        return self._event

    def has_event(self) -> bool:
        return self.is_event or (
            self.content_type == COMMAND_REPLY and "Event-Name" in self.headers
        )

    def __repr__(self) -> str:
        return f"<Frame {self.content_type} {len(self.body)}B>"


def _event_of(frame: Frame) -> Event:
    ct = frame.content_type
    if ct == EVENT_PLAIN:
        return Event.from_plain(frame.body)
    if ct == EVENT_JSON:
        return Event.from_json(frame.body)
    if ct == EVENT_XML:
        return Event.from_xml(frame.body)
    if frame.has_event():
        return Event(frame.headers, None)
    raise ProtocolError(f"a {ct} frame carries no event")


_EVENT_NAME = b"Event-Name: "
_UNIQUE_ID = b"Unique-ID: "
_JOB_UUID = b"Job-UUID: "
_APP_UUID = b"Application-UUID: "


class Event:
    """A FreeSWITCH event: headers (decoded on read) and an optional inner body.

    ``name``, ``unique_id``, ``job_uuid`` and ``application_uuid`` are the routing keys; on a
    plain event they are found in the raw bytes without parsing the other ~100 headers.
    """

    __slots__ = ("_head", "_headers", "body")

    def __init__(self, headers: Headers | None, body: bytes | None, head: bytes = b"") -> None:
        self._headers = headers
        self._head = head
        self.body = body

    @classmethod
    def from_plain(cls, data: bytes) -> Event:
        end = data.find(b"\n\n")
        if end < 0:
            head, rest = data.rstrip(b"\n"), b""
        else:
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

    def _fast(self, key: bytes, name: str) -> str | None:
        if self._headers is None:
            raw = find_raw(self._head, key)
            return None if raw is None else url_decode(raw.decode("utf-8", "surrogateescape"))
        return self._headers.get(name)

    @property
    def name(self) -> str:
        return self._fast(_EVENT_NAME, "Event-Name") or ""

    @property
    def unique_id(self) -> str | None:
        return self._fast(_UNIQUE_ID, "Unique-ID")

    @property
    def job_uuid(self) -> str | None:
        return self._fast(_JOB_UUID, "Job-UUID")

    @property
    def application_uuid(self) -> str | None:
        return self._fast(_APP_UUID, "Application-UUID")

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
    """Eagerly parse a small outer block: it is two or three lines for every event."""
    pairs = parse_header_lines(block)
    return Headers.from_pairs(pairs, decoded=False), dict(pairs)
