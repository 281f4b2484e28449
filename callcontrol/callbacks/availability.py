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

Several boxes (``ESL_HOST=fs1,fs2``): ``Boxes`` keeps one monitor per box and ``merge`` makes
their snapshots one. An extension is answered from the box it is registered on (the first in
``ESL_HOST``'s order when on two: ``Snapshot.box_of``, where click-to-call rings it); the
channels of every box count for IN_CALL / RINGING. A box that cannot be asked makes UNKNOWN
only what could be on it: an extension registered on a live box is answered as usual, and one
registered nowhere is OFFLINE only when its domain's registrations are on live boxes and were
not on the box that is down when it was last read (a box never read could hold any domain:
UNKNOWN). A domain is thus answered from the box its registrations are on.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import trio

from callcontrol.config import Settings
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


Key = tuple[str, str]  # (extension, domain)


@attrs.frozen
class Snapshot:
    registered: frozenset[Key]
    answered: frozenset[Key]
    ringing: frozenset[Key]
    # several boxes (``merge``): the registrations of each box read, in ESL_HOST's order,
    # the boxes that could not be read, and the domains that could be on them (None: any,
    # a box down was never read)
    boxes: tuple[tuple[str, frozenset[Key]], ...] = attrs.field(default=(), eq=False)
    down: frozenset[str] = frozenset()
    hidden_domains: frozenset[str] | None = frozenset()
    # what is worked out once, when first asked (``domains``)
    _cache: dict[str, frozenset[str]] = attrs.field(factory=dict, init=False, eq=False,
                                                    repr=False)  # fmt: skip

    @property
    def domains(self) -> frozenset[str]:
        """The domains with a registration here (asked for every answer while a box is
        down: worked out once)."""
        found = self._cache.get("domains")
        if found is None:
            found = self._cache["domains"] = frozenset(d for _, d in self.registered)
        return found

    def box_of(self, extension: str, domain: str) -> str | None:
        """The box the extension is registered on, the first of ``ESL_HOST`` when on two
        (None: nowhere that could be read, or a snapshot of one box, which does not name
        it)."""
        key = _key(extension, domain)
        return next((name for name, registered in self.boxes if key in registered), None)

    def could_hide(self, domain: str) -> bool:
        """Could an extension of ``domain`` be registered on a box that cannot be asked?"""
        if not self.down:
            return False
        if self.hidden_domains is None:
            return True
        domain = domain.strip().lower()
        return domain in self.hidden_domains or domain not in self.domains

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
        return Availability.UNKNOWN if snapshot.could_hide(domain) else Availability.OFFLINE
    return Availability.AVAILABLE


def merge(
    read: Sequence[tuple[str, Snapshot | None]], last_domains: Mapping[str, frozenset[str]]
) -> Snapshot | None:
    """One snapshot of several boxes, in ``ESL_HOST``'s order (None: none could be read);
    ``last_domains``: each box's domains when it was last read."""
    live = [(name, snapshot) for name, snapshot in read if snapshot is not None]
    if not live:
        return None
    down = frozenset(name for name, snapshot in read if snapshot is None)
    hidden: frozenset[str] | None = frozenset()
    if any(name not in last_domains for name in down):
        hidden = None
    else:
        hidden = frozenset().union(*(last_domains[name] for name in down))
    return Snapshot(
        frozenset().union(*(s.registered for _, s in live)),
        frozenset().union(*(s.answered for _, s in live)),
        frozenset().union(*(s.ringing for _, s in live)),
        boxes=tuple((name, s.registered) for name, s in live), down=down,
        hidden_domains=hidden,
    )  # fmt: skip


class Signals:
    """Events set (and replaced) when an answer may have changed, and when an extension may
    have become free: one monitor's, or shared by the monitors of every box."""

    def __init__(self) -> None:
        self.changed = trio.Event()
        self.freed = trio.Event()

    def fire(self, *, freed: bool) -> None:
        self.changed.set()
        self.changed = trio.Event()
        if freed:
            self.freed.set()
            self.freed = trio.Event()


class _Signalled:
    """What the scanner waits on, for one box or all of them."""

    signals: Signals

    @property
    def changed(self) -> trio.Event:
        """Set (and replaced) when an answer may have changed."""
        return self.signals.changed

    @property
    def freed(self) -> trio.Event:
        """Set (and replaced) when an extension may have become free."""
        return self.signals.freed


class AvailabilityMonitor(_Signalled):
    """One FreeSWITCH's snapshot, kept fresh by its events; run ``run()`` in a nursery."""

    def __init__(self, client: InboundClient, *, box: str | None = None,
                 signals: Signals | None = None) -> None:  # fmt: skip
        self.client = client
        self.box = box or f"{client.host}:{client.port}"
        self.log: Any = get_logger("callcontrol.callbacks.availability", box=self.box)
        self._snapshot: Snapshot | None = None
        self._stale = True
        self.reads = 0
        self.failures_in_a_row = 0
        self.signals = signals or Signals()
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
                self.signals.fire(freed=event.name == _FREEING_EVENT
                                  or subclass == _FREEING_SUBCLASS)  # fmt: skip
    async def snapshot(self) -> Snapshot | None:
        """The current snapshot, read again if an event made it stale; None when FreeSWITCH
        cannot be asked (every answer is then UNKNOWN)."""
        # a reconnection means events may have been missed while the socket was down; and
        # while it is down, what was read before is no answer (UNKNOWN, not the old one)
        reconnected = self.client.connections != self._read_on_connection
        if (not self._stale and not reconnected and self._snapshot is not None
                and self.client.connected):  # fmt: skip
            return self._snapshot
        self._stale = False  # events arriving during the read make it stale again
        try:
            snapshot = await self._read()
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

    async def _read(self) -> Snapshot:
        if self.client.in_outage:
            # known down: UNKNOWN now, rather than every question waiting for a reconnect
            # (with several boxes, one that is down would slow every answer)
            raise ConnectionClosed("not connected (reconnecting)")
        with trio.fail_after(READ_TIMEOUT_SECONDS):
            registrations = await self.client.api("show", "registrations", "as", "json",
                                                  timeout=READ_TIMEOUT_SECONDS)  # fmt: skip
            channels = await self.client.api("show", "channels", "as", "json",
                                             timeout=READ_TIMEOUT_SECONDS)  # fmt: skip
        return Snapshot.parse(registrations, channels)

    async def of(self, extension: str, domain: str, *, dnd: bool = False) -> Availability:
        return availability(await self.snapshot(), extension, domain, dnd=dnd)


class Boxes(_Signalled):
    """Every FreeSWITCH of ``ESL_HOST``: an inbound client and a monitor each (run
    ``run_clients`` and ``run_monitors``), one merged snapshot (``snapshot``)."""

    def __init__(self, clients: Sequence[tuple[str, InboundClient]]) -> None:
        if not clients:
            raise ValueError("no FreeSWITCH box")
        self.names = tuple(name for name, _ in clients)
        self.clients = dict(clients)
        self.signals = Signals()
        self.monitors = {name: AvailabilityMonitor(client, box=name, signals=self.signals)
                         for name, client in clients}  # fmt: skip
        self._last_read: dict[str, Snapshot] = {}
        self._merged: tuple[list[tuple[str, Snapshot | None]], Snapshot | None] | None = None

    @classmethod
    def connect(cls, settings: Settings, *, events: Sequence[str] | None = None,
                used_for: str | None = None) -> Boxes:  # fmt: skip
        """One client per box of ``ESL_HOST``, subscribed to ``events`` (the monitor's by
        default), with ``ESL_PASSWORD``."""
        events = AvailabilityMonitor.events() if events is None else events
        return cls([(box.name, InboundClient(box.host, box.port, settings.esl_password,
                                             events=events, used_for=used_for))
                    for box in settings.esl_boxes])  # fmt: skip

    async def run_clients(self) -> None:
        async with trio.open_nursery() as nursery:
            for client in self.clients.values():
                nursery.start_soon(client.run)

    async def run_monitors(self) -> None:
        async with trio.open_nursery() as nursery:
            for monitor in self.monitors.values():
                nursery.start_soon(monitor.run)

    async def snapshot(self) -> Snapshot | None:
        """Every box's snapshot (each read again only when stale), at once, merged; None when
        no box could be asked."""
        read: dict[str, Snapshot | None] = {}

        async def one(name: str) -> None:
            read[name] = await self.monitors[name].snapshot()

        async with trio.open_nursery() as nursery:
            for name in self.names:
                nursery.start_soon(one, name)
        boxes = [(name, read[name]) for name in self.names]
        if self._merged is not None and len(boxes) == len(self._merged[0]) and all(
                a is b for (_, a), (_, b) in zip(boxes, self._merged[0], strict=True)):
            return self._merged[1]  # nothing read again: the same answer, not merged anew
        for name, snapshot in boxes:
            if snapshot is not None:
                self._last_read[name] = snapshot
        # the domains of a box that is down, from what it said last (worked out only then)
        last = {name: self._last_read[name].domains for name, snapshot in boxes
                if snapshot is None and name in self._last_read}  # fmt: skip
        merged = merge(boxes, last)
        self._merged = (boxes, merged)
        return merged

    async def of(self, extension: str, domain: str, *, dnd: bool = False) -> Availability:
        return availability(await self.snapshot(), extension, domain, dnd=dnd)
