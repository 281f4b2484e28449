"""Hold music on the caller's leg, and the two ways of taking a call off hold.

Which one applies depends on the media transport (media.md, callflow.md, measured):

* ``BreakHold`` (mod_audio_stream, or no AI audio on the leg): the music is a ``playback`` on
  A; ``uuid_break <a> all`` stops it and the audio stream carries on.
* ``ReparkHold`` (native ``unicast``): an ending playback tears unicast down for the rest of
  that park, and a new ``unicast`` works only in a new park. So the music is stopped with
  ``uuid_transfer <a> park inline`` (it stops the playback itself), we wait for A's
  CHANNEL_PARK, and only then may the media layer arm a new ``unicast`` (``on_reparked``).

Before a bridge both use ``uuid_break``: the bridge ends the park anyway, and
``park_after_bridge`` gives a fresh one afterwards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from callcontrol.esl import commands
from callcontrol.esl.connection import Execution
from callcontrol.esl.outbound import OutboundCall

STOP_SECONDS = 3.0
# The park loop starts a queued execute within ~20 ms; a break sent before that flushes the
# queued music unplayed, and its end is then never reported (mod_audio_stream, real switch:
# 3.0 s of silence after an instant busy). So the break waits for the music to be playing.
START_SECONDS = 1.0


class HoldMusic(Protocol):
    async def start(self, *, with_next: bool = False) -> None:
        """``with_next``: the music's command may wait to go in the next command's write."""
        ...

    async def stop(self) -> None: ...

    def stop_with_bridge(self) -> list[bytes]:
        """Commands that stop the music, to be written together with the bridge."""
        ...


class BreakHold:
    """Music by ``playback``; off hold by ``uuid_break``."""

    def __init__(self, call: OutboundCall, music: str) -> None:
        self.call = call
        self.music = music
        self.playing: Execution | None = None

    async def start(self, *, with_next: bool = False) -> None:
        # Not waiting for the reply takes a round trip off the way to ``bgapi originate``: the
        # switch reads this socket's commands in order, so the music is queued on A before the
        # originate after it is even read, and still starts before the agent's phone rings.
        # With the originate next, the music goes in its write: no schedule point (a wait
        # behind every other call's runnable task, under load) between the two.
        self.playing = await self.call.conn.execute("playback", self.music, wait_reply=False,
                                                    defer=with_next)  # fmt: skip

    def stop_with_bridge(self) -> list[bytes]:
        # The bridge queued right behind the break ends the park anyway: no need to wait for
        # the playback to report its end before the caller meets the agent.
        if self.playing is None:
            return []
        self.playing = None
        return [commands.api("uuid_break", self.call.uuid, "all")]

    async def stop(self) -> None:
        playing, self.playing = self.playing, None
        if playing is None:
            return
        if playing.refused:
            return  # never queued: nothing to stop
        started = await playing.wait_started(START_SECONDS)
        await self.call.api("uuid_break", self.call.uuid, "all")
        if not started:
            return  # it never played: no end of it will be reported
        with trio.move_on_after(STOP_SECONDS):
            await playing.completed()


class ReparkHold(BreakHold):
    """Music by ``playback``; off hold by a re-park, so native unicast can be armed again."""

    def __init__(
        self,
        call: OutboundCall,
        music: str,
        on_reparked: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(call, music)
        self.on_reparked = on_reparked

    async def stop(self) -> None:
        if self.playing is None:
            return
        playing, self.playing = self.playing, None
        # A transfer while the music is still queued would leave it to start in the new park.
        await playing.wait_started(START_SECONDS)
        conn = self.call.conn
        async with conn.subscribe(self.call.uuid) as events:
            await self.call.api("uuid_transfer", self.call.uuid, "park", "inline")
            with trio.move_on_after(STOP_SECONDS):
                async for event in events:
                    if event.name == "CHANNEL_PARK":
                        break
        if self.on_reparked is not None:
            await self.on_reparked()


class NoHold:
    """For flows that keep the caller in silence (or tests of the machine's own timing)."""

    async def start(self, *, with_next: bool = False) -> None:
        return None

    async def stop(self) -> None:
        return None

    def stop_with_bridge(self) -> list[bytes]:
        return []
