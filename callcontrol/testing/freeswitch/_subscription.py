"""Which events a socket receives: mod_event_socket's ``event_handler``, rule for rule.

Order of the checks (callflow.md §1.3): the event must be subscribed (its name, ``ALL``, or a
CUSTOM subclass); then, once any filter exists, it must match a positive filter on a header
it has (case-insensitive equality, ``/regex/``, ``-value`` vetoes); then, on a ``myevents``
socket, its Unique-ID must be the controlled channel, or its Job-Owner-UUID must be.
Filters come before myevents, so myevents plus a filter on another leg leaves the socket
silent — the behaviour a call-control server must not trip over.
"""

from __future__ import annotations

import re

import attrs

from callcontrol.testing.freeswitch._events import SimEvent

MYEVENTS = (
    "CHANNEL_ANSWER", "CHANNEL_APPLICATION", "CHANNEL_BRIDGE", "CHANNEL_CREATE", "CHANNEL_DATA",
    "CHANNEL_DESTROY", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE", "CHANNEL_ORIGINATE", "CHANNEL_UUID", "CHANNEL_OUTGOING",
    "CHANNEL_PARK", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_STATE",
    "CHANNEL_UNBRIDGE", "CHANNEL_UNPARK", "DETECTED_SPEECH", "DTMF", "NOTALK", "TALK",
)
FORMATS = ("plain", "json", "xml")


@attrs.define
class Subscription:
    fmt: str = "plain"
    names: set[str] = attrs.field(factory=set)
    all_events: bool = False
    custom: set[str] = attrs.field(factory=set)
    filters: list[tuple[str, str]] = attrs.field(factory=list)
    myevents_uuid: str | None = None

    @property
    def active(self) -> bool:
        return self.all_events or bool(self.names) or bool(self.custom)

    def subscribe(self, words: list[str]) -> None:
        if words and words[0].lower() in FORMATS:
            self.fmt = words.pop(0).lower()
        custom_mode = False
        for word in words:
            if custom_mode:
                # As in FreeSWITCH: every word after CUSTOM is a subclass name.
                self.custom.add(word)
                continue
            upper = word.upper()
            if upper == "ALL":
                self.all_events = True
            elif upper == "CUSTOM":
                custom_mode = True
                self.names.add("CUSTOM")
            else:
                self.names.add(upper)

    def unsubscribe(self, words: list[str]) -> None:
        for word in words:
            if word.upper() == "ALL":
                self.all_events = False
                self.names.clear()
                self.custom.clear()
            self.names.discard(word.upper())
            self.custom.discard(word)

    def clear(self) -> None:
        self.names.clear()
        self.custom.clear()
        self.all_events = False

    def add_filter(self, header: str, value: str) -> None:
        self.filters.append((header, value))

    def delete_filter(self, header: str, value: str | None) -> None:
        if header.lower() == "all":
            self.filters.clear()
            return
        self.filters = [
            (h, v) for h, v in self.filters
            if not (h.lower() == header.lower() and (value is None or v == value))
        ]

    def wants(self, event: SimEvent) -> bool:
        return self._subscribed(event) and self._filtered(event) and self._mine(event)

    def _subscribed(self, event: SimEvent) -> bool:
        if self.all_events:
            return True
        if event.name == "CUSTOM":
            sub = event.subclass
            return sub in self.custom if sub else "CUSTOM" in self.names
        return event.name in self.names

    def _filtered(self, event: SimEvent) -> bool:
        if not self.filters:
            return True
        matched = False
        for header, wanted in self.filters:
            value = event.get(header)
            if value is None:
                continue
            if wanted.startswith("-"):
                if _match(value, wanted[1:]):
                    return False
            elif _match(value, wanted):
                matched = True
        return matched

    def _mine(self, event: SimEvent) -> bool:
        if self.myevents_uuid is None:
            return True
        return self.myevents_uuid in (event.unique_id, event.get("Job-Owner-UUID"))


def _match(value: str, wanted: str) -> bool:
    if wanted.startswith("/"):
        pattern = wanted[1:-1] if wanted.endswith("/") and len(wanted) > 1 else wanted[1:]
        return re.search(pattern, value) is not None
    return value.lower() == wanted.lower()
