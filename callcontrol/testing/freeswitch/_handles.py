"""Handles a test holds: ``SimLeg`` for any channel, ``SimCall`` for a caller's leg dialled
into the server (with its Event Socket connection)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import trio

from callcontrol.esl import Frame, FrameReader
from callcontrol.testing.freeswitch._channel import Channel, Unicast
from callcontrol.testing.freeswitch._parser import ClientCommand

if TYPE_CHECKING:
    from callcontrol.testing.freeswitch._listener import Listener
    from callcontrol.testing.freeswitch._media import ChannelMedia
    from callcontrol.testing.freeswitch._sim import FreeSwitchSim


@attrs.define(eq=False)
class SimLeg:
    sim: FreeSwitchSim
    channel: Channel

    @property
    def uuid(self) -> str:
        return self.channel.uuid

    @property
    def state(self) -> str:
        return self.channel.state

    @property
    def answer_state(self) -> str:
        return self.channel.answer_state

    @property
    def alive(self) -> bool:
        return self.channel.alive

    @property
    def hangup_cause(self) -> str | None:
        return self.channel.hangup_cause

    @property
    def bridged_to(self) -> str | None:
        return self.channel.bridged_to

    @property
    def playing(self) -> str | None:
        return self.channel.playing

    @property
    def parked(self) -> bool:
        return self.channel.parked

    @property
    def unicast(self) -> Unicast:
        return self.channel.unicast

    @property
    def unicast_armed(self) -> bool:
        return self.channel.unicast_armed

    @property
    def variables(self) -> dict[str, str]:
        return self.channel.variables

    @property
    def media(self) -> ChannelMedia | None:
        """The media peers' side of this leg (``media_peers=True`` or ``caller_audio=``):
        unicast peer, caller's voice, what the caller heard."""
        return self.channel.media

    @property
    def reached(self) -> str | None:
        """Where a dialplan ``transfer`` sent this channel (``"9000 XML default"``), if any."""
        value = self.channel.extra.get("reached")
        return value if isinstance(value, str) else None

    @property
    def dialplan_after_socket(self) -> list[str]:
        """The actions after ``socket`` that ran once our socket was gone, in order."""
        return list(self.channel.extra.get("dialplan_after_socket", []))

    @property
    def ringing(self) -> bool:
        return "ringing" in self.channel.extra

    def press(self, digits: str) -> None:
        """Queue DTMF the caller will key in at the next ``play_and_get_digits``."""
        self.channel.extra.setdefault("dtmf", []).append(digits)

    async def answer(self) -> None:
        """Answer a ringing leg now (any outcome); answer a parked one with CHANNEL_ANSWER."""
        ringing = self.channel.extra.get("ringing")
        if ringing is not None:
            ringing.decide("answer")
        else:
            self.sim.flow.mark_answered(self.channel)
        await trio.lowlevel.checkpoint()

    async def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        """The far end hangs up (or, for a ringing leg, declines with ``cause``)."""
        self.sim.flow.hangup(self.channel, cause)
        await trio.lowlevel.checkpoint()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        await self.sim.wait_for(predicate)

    async def wait_gone(self) -> None:
        await self.channel.gone.wait()


@attrs.define(eq=False)
class SimCall(SimLeg):
    """The caller's leg, and the outbound socket FreeSWITCH opened for it."""

    listener: Listener | None = None

    @property
    def commands(self) -> list[ClientCommand]:
        """Every command the server sent on this call's socket, parsed, in order."""
        return self.listener.commands if self.listener is not None else []

    @property
    def sent(self) -> list[tuple[float, bytes]]:
        """Every frame the simulator wrote on the socket, with its trio time."""
        return self.listener.sent if self.listener is not None else []

    def frames(self) -> list[Frame]:
        reader = FrameReader()
        out: list[Frame] = []
        for _, data in self.sent:
            reader.feed(data)
            out.extend(reader)
        return out

    @property
    def closed(self) -> bool:
        return self.listener is None or self.listener.closed.is_set()

    async def wait_closed(self) -> None:
        if self.listener is not None:
            await self.listener.closed.wait()

    async def wait_for_command(self, predicate: Callable[[ClientCommand], bool]
                               ) -> ClientCommand:
        """The first command (already received or still to come) that satisfies
        ``predicate``, e.g. ``lambda c: c.line.startswith("bgapi originate")``."""
        seen = 0
        while True:
            for command in self.commands[seen:]:
                if predicate(command):
                    return command
            seen = len(self.commands)
            if self.closed:
                raise trio.EndOfChannel("the call's socket closed")
            await self.sim.wait_changed()
