"""The outbound side: FreeSWITCH's ``socket`` application connected to us for one call.

What a real FreeSWITCH allows on this socket is narrower than its documentation suggests
(docs: callflow.md, measured). The rules this module follows:

* never ``myevents``: with any filter for another leg it silences the socket. Instead an
  explicit ``event plain ...`` list plus ``filter Unique-ID <a>`` and
  ``filter Job-Owner-UUID <a>`` (the only way to learn of originate failures that create no
  channel), and one ``filter Unique-ID <b>`` per agent leg, added *before* its originate;
* ``linger`` so the hangup events and late job results still arrive; we send ``exit``
  ourselves at the end, since plain linger never closes the socket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

from callcontrol.esl import _commands as commands
from callcontrol.esl._errors import ProtocolError
from callcontrol.esl._frames import Event
from callcontrol.esl.connection import EslConnection, raise_on_err

# Events a call's socket needs: its own life cycle, agent legs, job results, media module.
CALL_EVENTS: tuple[str, ...] = (
    "CHANNEL_CREATE",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_ANSWER",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_PARK",
    "CHANNEL_UNPARK",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "DTMF",
    "BACKGROUND_JOB",
)
# CUSTOM must come last: every word after it is a subclass name.
CUSTOM_SUBCLASSES: tuple[str, ...] = (
    "mod_audio_stream::connect",
    "mod_audio_stream::disconnect",
    "mod_audio_stream::error",
    "mod_audio_stream::json",
    "mod_audio_stream::play",
)

# The subscription line for the default lists, built (and checked) once: every call sends it.
_DEFAULT_SUBSCRIPTION = commands.event("plain", [*CALL_EVENTS, "CUSTOM", *CUSTOM_SUBCLASSES])


class OutboundCall:
    """The controlled channel (the A-leg) of one outbound socket connection."""

    def __init__(self, conn: EslConnection, channel: Event) -> None:
        self.conn = conn
        self.channel = channel
        # We sent a dialplan transfer (``uuid_transfer``): the extension that ran ``socket``,
        # and the fallback after it, are gone; a hand-back must name where to go.
        self.transferred = False
        uid = channel.unique_id
        if not uid:
            raise ProtocolError("connect reply carries no Unique-ID")
        self.uuid: str = uid
        self.watched_legs: set[str] = set()
        # The cause of the ``hangup`` we sent, if we hung the call up: the record stores it
        # when the CHANNEL_HANGUP it causes has not arrived before the record is written.
        self.hangup_cause_sent: str | None = None

    @classmethod
    async def handshake(
        cls,
        conn: EslConnection,
        *,
        events: Sequence[str] = CALL_EVENTS,
        custom: Sequence[str] = CUSTOM_SUBCLASSES,
        linger: bool = True,
    ) -> OutboundCall:
        """``connect``, the explicit subscription, the A-leg filters and ``linger``."""
        reply = await conn.send(commands.connect())
        if not reply.has_event():
            raise ProtocolError("connect reply carries no channel data")
        call = cls(conn, reply.event)
        if events is CALL_EVENTS and custom is CUSTOM_SUBCLASSES:
            subscription = _DEFAULT_SUBSCRIPTION
        else:
            names = [*events, "CUSTOM", *custom] if custom else list(events)
            subscription = commands.event("plain", names)
        # Filters first: subscribed before them, the socket would get every channel's events
        # until they land. All in one round trip; FreeSWITCH applies them in order.
        setup = [
            commands.filter_add("Unique-ID", call.uuid),
            commands.filter_add("Job-Owner-UUID", call.uuid),
            subscription,
        ]
        if linger:
            setup.append(commands.linger())
        raise_on_err(setup, await conn.send_many(*setup))
        return call

    def variable(self, name: str, default: str | None = None) -> str | None:
        """A channel variable from the connect data (``variable_<name>``)."""
        return self.channel.get("variable_" + name, default)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.channel.get(name, default)

    async def originate_watched(self, b_uuid: str, argument: str, job_uuid: str) -> Any:
        """``filter Unique-ID <b>`` then ``bgapi originate`` in one round trip; returns the job."""
        self.watched_legs.add(b_uuid)
        return await self.conn.bgapi(
            "originate", argument, job_uuid=job_uuid,
            before=[commands.filter_add("Unique-ID", b_uuid)],
        )  # fmt: skip

    async def watch_leg(self, b_uuid: str) -> None:
        """Receive the events of another leg on this socket (add before originating it)."""
        if b_uuid not in self.watched_legs:
            await self.conn.send_ok(commands.filter_add("Unique-ID", b_uuid))
            self.watched_legs.add(b_uuid)

    async def unwatch_leg(self, b_uuid: str) -> None:
        if b_uuid in self.watched_legs:
            self.watched_legs.discard(b_uuid)
            await self.conn.send(commands.filter_delete("Unique-ID", b_uuid))

    async def answer(self) -> Event:
        execution = await self.conn.execute("answer")
        return await execution.completed()

    async def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        self.hangup_cause_sent = cause
        await self.conn.send(commands.hangup(cause))

    async def api(self, command: str, *args: str) -> str:
        if command == "uuid_transfer":
            self.transferred = True
        return await self.conn.api(command, *args)

    async def exit(self) -> None:
        """Say goodbye on the socket; tolerate a socket that is already gone."""
        if self.conn.closed.is_set():
            return
        with trio.move_on_after(2):
            try:
                await self.conn.send(commands.exit_())
            except Exception:  # the connection is ending either way
                return

    def describe(self) -> dict[str, Any]:
        """The call's identity for logs: bound once per call."""
        return {
            "call_uuid": self.uuid,
            "caller": self.header("Caller-Caller-ID-Number"),
            "domain": self.variable("domain_name"),
        }
