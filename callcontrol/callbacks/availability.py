"""Is the agent at extension 1001 free to call a customer back? One snapshot answers it.

``Snapshot`` is what FreeSWITCH says at one moment — ``show registrations as json`` and
``show channels as json`` — and ``availability`` reads one extension out of it (sans-IO):

* DND when ``v_extensions.do_not_disturb`` says so (FusionPBX keeps DND in its database, and a
  DND phone would otherwise look merely busy);
* IN_CALL / RINGING when a channel's ``presence_id`` is exactly ``<extension>@<domain>`` (so
  "100" is never "1001", nor 1001 of another domain) and its callstate is answered / ringing;
* OFFLINE when no registration has that user and realm;
* AVAILABLE otherwise.

``AvailabilityMonitor`` keeps one inbound Event Socket connection (``esl.inbound``) and one
snapshot, marked stale by the events that can change an answer (registrations, channels
created, answered, hung up) and read again only when asked while stale — a scan of 10k
tickets costs one snapshot, not 10k requests. When FreeSWITCH cannot be asked the answer is
UNKNOWN, which is never treated as available.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import trio

from callcontrol.esl import ConnectionClosed, ProtocolError
from callcontrol.esl.inbound import InboundClient
from callcontrol.logs import get_logger

READ_TIMEOUT_SECONDS = 5.0


class Availability(enum.Enum):
    AVAILABLE = "available"
    IN_CALL = "in_call"
    RINGING = "ringing"
    DND = "dnd"
    OFFLINE = "offline"
    UNKNOWN = "unknown"

    @property
    def can_take_a_callback(self) -> bool:
        return self is Availability.AVAILABLE


_ANSWERED = frozenset({"ACTIVE", "HELD"})
_RINGING = frozenset({"RINGING", "EARLY", "DOWN"})
_EVENTS_THAT_CHANGE_IT = ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE")
_SUBCLASSES = ("sofia::register", "sofia::unregister", "sofia::expire")
# What can turn a phone from not available into available: it registered, or a call ended.
_FREEING_EVENT = "CHANNEL_HANGUP_COMPLETE"
_FREEING_SUBCLASS = "sofia::register"


def _key(user: str, domain: str) -> tuple[str, str]:
    return user.strip(), domain.strip().lower()


@attrs.frozen
class Snapshot:
    registered: frozenset[tuple[str, str]]
    answered: frozenset[tuple[str, str]]
    ringing: frozenset[tuple[str, str]]

    @classmethod
    def from_rows(
        cls, registrations: Iterable[Mapping[str, Any]], channels: Iterable[Mapping[str, Any]]
    ) -> Snapshot:
        registered = frozenset(
            _key(str(r.get("reg_user", "")), str(r.get("realm", ""))) for r in registrations
        )
        answered: set[tuple[str, str]] = set()
        ringing: set[tuple[str, str]] = set()
        for row in channels:
            user, at, domain = str(row.get("presence_id") or "").partition("@")
            if not at or not user:
                continue
            state = str(row.get("callstate", ""))
            if state in _ANSWERED:
                answered.add(_key(user, domain))
            elif state in _RINGING:
                ringing.add(_key(user, domain))
        return cls(registered, frozenset(answered), frozenset(ringing))

    @classmethod
    def parse(cls, registrations_json: str, channels_json: str) -> Snapshot:
        """From the two ``api show … as json`` replies; ``ValueError`` for anything else."""
        return cls.from_rows(_rows(registrations_json), _rows(channels_json))


def _rows(text: str) -> list[dict[str, Any]]:
    data = json.loads(text)  # an "-ERR …" reply is not JSON: ValueError
    if not isinstance(data, dict):
        raise ValueError(f"not a `show … as json` reply: {text[:60]!r}")  # noqa: TRY004
    rows = data.get("rows", [])
    if not isinstance(rows, list):
        raise ValueError("`rows` is not a list")  # noqa: TRY004 (a bad reply, like bad JSON)
    return [r for r in rows if isinstance(r, dict)]


def availability(
    snapshot: Snapshot | None, extension: str, domain: str, *, dnd: bool = False
) -> Availability:
    """One extension's availability in ``snapshot`` (None: FreeSWITCH could not be asked)."""
    if dnd:
        return Availability.DND
    if snapshot is None:
        return Availability.UNKNOWN
    key = _key(extension, domain)
    if key in snapshot.answered:
        return Availability.IN_CALL
    if key in snapshot.ringing:
        return Availability.RINGING
    if key not in snapshot.registered:
        return Availability.OFFLINE
    return Availability.AVAILABLE


class AvailabilityMonitor:
    """One FreeSWITCH's snapshot, kept fresh by its events; run ``run()`` in a nursery."""

    def __init__(self, client: InboundClient) -> None:
        self.client = client
        self.log: Any = get_logger("callcontrol.callbacks.availability")
        self._snapshot: Snapshot | None = None
        self._stale = True
        self.reads = 0
        self.failures_in_a_row = 0
        self.changed = trio.Event()  # set (and replaced) when an answer may have changed
        self.freed = trio.Event()  # set (and replaced) when an extension may have become free
        self._read_on_connection = 0  # the client's connection count the snapshot was read on

    @staticmethod
    def events() -> list[str]:
        """The inbound client's event subscription this monitor needs."""
        return [*_EVENTS_THAT_CHANGE_IT, "CUSTOM", *_SUBCLASSES]

    async def run(self) -> None:
        async for event in self.client.event_stream:
            subclass = event.get("Event-Subclass")
            if event.name in _EVENTS_THAT_CHANGE_IT or subclass in _SUBCLASSES:
                self._stale = True
                self.changed.set()
                self.changed = trio.Event()
            if event.name == _FREEING_EVENT or subclass == _FREEING_SUBCLASS:
                self.freed.set()
                self.freed = trio.Event()

    async def snapshot(self) -> Snapshot | None:
        """The current snapshot, read again if an event made it stale; None when FreeSWITCH
        cannot be asked (every answer is then UNKNOWN)."""
        # a reconnection means events may have been missed while the socket was down
        reconnected = self.client.connections != self._read_on_connection
        if not self._stale and not reconnected and self._snapshot is not None:
            return self._snapshot
        self._stale = False  # events arriving during the read make it stale again
        try:
            with trio.fail_after(READ_TIMEOUT_SECONDS):
                registrations = await self.client.api("show", "registrations", "as", "json",
                                                      timeout=READ_TIMEOUT_SECONDS)  # fmt: skip
                channels = await self.client.api("show", "channels", "as", "json",
                                                 timeout=READ_TIMEOUT_SECONDS)  # fmt: skip
            snapshot = Snapshot.parse(registrations, channels)
        except (trio.TooSlowError, ConnectionClosed, ProtocolError, ValueError) as exc:
            self._stale = True
            self._snapshot = None
            self.failures_in_a_row += 1
            self.log.warning("availability.unknown", error=repr(exc),
                             failures_in_a_row=self.failures_in_a_row)  # fmt: skip
            return None
        self.failures_in_a_row = 0
        self.reads += 1
        self._read_on_connection = self.client.connections
        self._snapshot = snapshot
        return snapshot

    async def of(self, extension: str, domain: str, *, dnd: bool = False) -> Availability:
        return availability(await self.snapshot(), extension, domain, dnd=dnd)
