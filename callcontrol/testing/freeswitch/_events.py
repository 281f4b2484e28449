"""The event factory: FreeSWITCH events built from templates extracted from real traces.

An event is the base block (Event-Name … Event-Sequence), the event-specific headers that
FreeSWITCH puts *before* the channel block (``Bridge-A-Unique-ID``, the first
``Hangup-Cause`` of HANGUP_COMPLETE, ``Job-*``), the channel block, the caller profile,
the other leg's profile, the channel variables, and the event-specific headers that come
*after* them (``Application*``, ``Playback-*``). Header names and their order come from
``callcontrol/testing/data/esl_templates.json``; only the values are ours.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import attrs

from callcontrol.esl import serialize

if TYPE_CHECKING:
    from callcontrol.testing.freeswitch._channel import Channel

Pairs = tuple[tuple[str, str], ...]

# Events the recordings never captured; their shape follows the same source functions.
_FALLBACK_CALLING = {
    "CHANNEL_DESTROY": ("switch_core_session.c", "switch_core_session_perform_destroy", "1591"),
    "CHANNEL_ORIGINATE": ("switch_ivr_originate.c", "switch_ivr_originate", "3896"),
    "CHANNEL_OUTGOING": ("switch_core_session.c", "switch_core_session_outgoing_channel", "739"),
    "CHANNEL_PROGRESS_MEDIA": ("switch_channel.c", "switch_channel_perform_mark_pre_answered",
                               "3676"),
    "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", "355"),
    "DTMF": ("switch_channel.c", "switch_channel_queue_dtmf", "565"),
}


@cache
def templates() -> dict[str, Any]:
    text = resources.files("callcontrol.testing").joinpath("data/esl_templates.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


@attrs.frozen
class SimEvent:
    """A fired event: decoded header pairs in wire order and an optional inner body."""

    name: str
    pairs: Pairs
    body: bytes | None = None

    def get(self, header: str) -> str | None:
        # switch_event_get_header compares names case-insensitively.
        lower = header.lower()
        for key, value in self.pairs:
            if key.lower() == lower:
                return value
        return None

    @property
    def unique_id(self) -> str | None:
        return self.get("Unique-ID")

    @property
    def subclass(self) -> str | None:
        return self.get("Event-Subclass")

    def encode(self, fmt: str) -> bytes:
        if fmt == "json":
            return serialize.event_json(self.pairs, self.body)
        if fmt == "xml":
            return serialize.event_xml(self.pairs, self.body)
        return serialize.event_plain(self.pairs, self.body)


def _usec(epoch: float) -> str:
    return str(int(epoch * 1_000_000))


def date_pairs(epoch: float) -> list[tuple[str, str]]:
    local = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
    gmt = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(epoch))
    return [("Event-Date-Local", local), ("Event-Date-GMT", gmt),
            ("Event-Date-Timestamp", _usec(epoch))]


@attrs.define
class EventFactory:
    """Stamps events with this switch's identity, the (trio) clock and a rising sequence."""

    core_uuid: str
    hostname: str = "callcontrol-sim"
    ipv4: str = "192.0.2.10"
    ipv6: str = "::1"
    sequence: int = 1000
    clock: Any = None  # () -> epoch seconds; set by the simulator

    def now(self) -> float:
        return float(self.clock()) if self.clock is not None else time.time()

    def _base(self, name: str) -> list[tuple[str, str]]:
        spec = templates()["events"].get(name) or templates()["events"].get("CUSTOM", {})
        calling = spec.get("calling") or _FALLBACK_CALLING.get(name, ("switch_event.c", "", "0"))
        if name in _FALLBACK_CALLING:
            calling = _FALLBACK_CALLING[name]
        self.sequence += 1
        return [
            ("Event-Name", name), ("Core-UUID", self.core_uuid),
            ("FreeSWITCH-Hostname", self.hostname), ("FreeSWITCH-Switchname", self.hostname),
            ("FreeSWITCH-IPv4", self.ipv4), ("FreeSWITCH-IPv6", self.ipv6),
            *date_pairs(self.now()),
            ("Event-Calling-File", calling[0]), ("Event-Calling-Function", calling[1]),
            ("Event-Calling-Line-Number", calling[2]), ("Event-Sequence", str(self.sequence)),
        ]

    def channel_event(
        self,
        name: str,
        channel: Channel,
        extra: Iterable[tuple[str, str]] = (),
        *,
        subclass: str | None = None,
        body: bytes | None = None,
    ) -> SimEvent:
        """An event about ``channel``; ``extra`` holds the event-specific headers by name."""
        key = "CUSTOM" if subclass else name
        spec = templates()["events"].get(key, {"prefix": [], "suffix": [], "variables": True})
        extras = dict(extra)
        pairs = self._base(name)
        if subclass:
            pairs.insert(0, ("Event-Subclass", subclass))
        pairs += _pick(spec["prefix"], extras)
        pairs += channel_block(channel)
        if spec.get("variables", True):
            pairs += [(f"variable_{k}", v) for k, v in channel.variables.items() if v != ""]
        pairs += _pick(spec["suffix"], extras)
        known = set(spec["prefix"]) | set(spec["suffix"])
        pairs += [(k, v) for k, v in extras.items() if k not in known]
        return SimEvent(name, tuple(pairs), body)

    def plain_event(self, name: str, headers: Sequence[tuple[str, str]],
                    body: bytes | None = None) -> SimEvent:
        """An event with no channel (BACKGROUND_JOB, HEARTBEAT, …)."""
        spec = templates()["events"].get(name, {"prefix": []})
        extras = dict(headers)
        pairs = self._base(name) + _pick(spec["prefix"], extras)
        pairs += [(k, v) for k, v in headers if k not in spec["prefix"]]
        return SimEvent(name, tuple(pairs), body)

    def channel_data(self, channel: Channel) -> Pairs:
        """The CHANNEL_DATA block of the outbound ``connect`` reply (no outer envelope)."""
        self.sequence += 1
        pairs = [
            ("Event-Name", "CHANNEL_DATA"), ("Core-UUID", self.core_uuid),
            ("FreeSWITCH-Hostname", self.hostname), ("FreeSWITCH-Switchname", self.hostname),
            ("FreeSWITCH-IPv4", self.ipv4), ("FreeSWITCH-IPv6", self.ipv6),
            *date_pairs(self.now()),
            ("Event-Calling-File", "mod_event_socket.c"),
            ("Event-Calling-Function", "parse_command"),
            ("Event-Calling-Line-Number", "2021"), ("Event-Sequence", str(self.sequence)),
        ]
        pairs += profile_pairs("Channel-", channel, templates()["caller_profile"])
        pairs += channel_block(channel)
        pairs += [(f"variable_{k}", v) for k, v in channel.variables.items() if v != ""]
        return tuple(pairs)


def _pick(names: Sequence[str], extras: dict[str, str]) -> list[tuple[str, str]]:
    return [(n, extras[n]) for n in names if n in extras and extras[n] != ""]


def channel_block(ch: Channel) -> list[tuple[str, str]]:
    values = {
        "Channel-State": ch.state,
        "Channel-Call-State": ch.call_state,
        "Channel-State-Number": str(ch.state_number),
        "Channel-Name": ch.name,
        "Unique-ID": ch.uuid,
        "Call-Direction": ch.direction,
        "Presence-Call-Direction": ch.direction,
        "Channel-HIT-Dialplan": "true" if ch.direction == "inbound" else "false",
        "Channel-Presence-ID": ch.variables.get("presence_id", ""),
        "Channel-Call-UUID": ch.call_uuid,
        "Answer-State": ch.answer_state,
    }
    pairs = [(n, values[n]) for n in templates()["channel_block"] if values.get(n)]
    if ch.hangup_cause:
        pairs.append(("Hangup-Cause", ch.hangup_cause))
    if ch.read_codec:
        bit_rate = str(ch.read_rate * 16) if ch.read_codec == "L16" else "64000"
        pairs += [
            ("Channel-Read-Codec-Name", ch.read_codec),
            ("Channel-Read-Codec-Rate", str(ch.read_rate)),
            ("Channel-Read-Codec-Bit-Rate", bit_rate),
            ("Channel-Write-Codec-Name", ch.read_codec),
            ("Channel-Write-Codec-Rate", str(ch.read_rate)),
            ("Channel-Write-Codec-Bit-Rate", bit_rate),
        ]
    pairs += profile_pairs("Caller-", ch, templates()["caller_profile"])
    other = ch.other_profile
    if other is not None:
        pairs.append(("Other-Type", "originatee" if ch.originator else "originator"))
        pairs += [(f"Other-Leg-{n}", other[n]) for n in templates()["other_leg_profile"]
                  if other.get(n, "") != ""]
    return pairs


def profile_pairs(prefix: str, ch: Channel, order: Sequence[str]) -> list[tuple[str, str]]:
    values = ch.profile_values()
    return [(prefix + n, values[n]) for n in order if values.get(n, "") != ""]
