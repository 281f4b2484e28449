"""Dialplan applications run by ``sendmsg execute`` and the channel's private queue.

A parked channel (the socket app's park, a ``park`` app after ``uuid_transfer … park
inline``, or CS_PARK after ``park_after_bridge``) takes queued messages one at a time; an app
runs to its end before the next starts (``event-lock``, which every product command uses).
``hangup`` and ``unicast`` messages are not queued behind a running app: FreeSWITCH parses
them inside the park and playback loops, so they act at once (callflow.md §2.3 (d)).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import attrs
import trio

from callcontrol.testing.freeswitch._channel import Channel, Message, Unicast
from callcontrol.testing.freeswitch._media import playback_plan

if TYPE_CHECKING:
    from callcontrol.testing.freeswitch._sim import FreeSwitchSim

_ENDLESS = ("local_stream://", "silence_stream://-1")
_TONE = re.compile(r"%\((\d+),(\d+)")
_LOOPS = re.compile(r"loops=(-?\d+)")


@attrs.define
class Media:
    """How long each file plays (seconds; ``math.inf`` = until broken) and which are missing."""

    durations: dict[str, float] = attrs.field(factory=dict)
    missing: set[str] = attrs.field(factory=set)
    default: float = 2.0

    def duration(self, path: str) -> float:
        if path in self.durations:
            return self.durations[path]
        if path.startswith(_ENDLESS):
            return math.inf
        if path.startswith("silence_stream://"):
            ms = path[len("silence_stream://"):].split(",", maxsplit=1)[0]
            return int(ms) / 1000 if ms.isdigit() else self.default
        if path.startswith("tone_stream://"):
            return _tone_seconds(path)
        return self.default


def _tone_seconds(path: str) -> float:
    segments = _TONE.findall(path)
    one = sum(int(on) + int(off) for on, off in segments) / 1000 or 1.0
    loops = _LOOPS.search(path)
    if loops is None:
        return one
    count = int(loops.group(1))
    return math.inf if count < 0 else one * count


async def run_queue(sim: FreeSwitchSim, ch: Channel) -> None:
    """The channel's message pump: runs queued executes while the channel is parked."""
    while ch.alive:
        if not ch.queue or not ch.parked or ch.in_transit or ch.extra.get("wedged"):
            ch.wakeup = trio.Event()
            await ch.wakeup.wait()
            continue
        # The park loop picks a queued execute up on its next pass (~20 ms): until then it
        # is still a private event, which `uuid_break <a> all` flushes unplayed.
        await trio.sleep(sim.latency)
        if not ch.alive:
            return
        if not ch.queue or not ch.parked or ch.in_transit:
            continue
        message = ch.queue.popleft()
        runs = 0
        while message.loops < 0 or runs < message.loops:
            runs += 1
            started = trio.current_time()
            await run_app(sim, ch, message.app, message.arg, message.event_uuid)
            # FreeSWITCH stops repeating an app whose run lasted under half a second.
            if not (ch.alive and ch.parked) or trio.current_time() - started < 0.5:
                break


async def run_app(sim: FreeSwitchSim, ch: Channel, name: str, arg: str, app_uuid: str) -> str:
    flow = sim.flow
    if name == "park" and ch.controlled:
        # "Cannot park channels that are under control already." (switch_ivr.c:975)
        app = flow.start_app(ch, name, arg, app_uuid)
        flow.finish_app(ch, "_none_")
        return app.response
    app = flow.start_app(ch, name, arg, app_uuid)
    impl = _APPS.get(name, _noop)
    await impl(sim, ch, arg)
    if ch.app is app:
        flow.finish_app(ch, app.response)
    return app.response


async def _noop(sim: FreeSwitchSim, ch: Channel, arg: str) -> None:
    return None


async def _answer(sim: FreeSwitchSim, ch: Channel, arg: str) -> None:
    sim.flow.mark_answered(ch)


async def _pre_answer(sim: FreeSwitchSim, ch: Channel, arg: str) -> None:
    if ch.answer_state == "ringing":
        ch.answer_state = "early"
        ch.call_state = "EARLY"
        sim.flow.fire("CHANNEL_PROGRESS_MEDIA", ch)


async def _ring_ready(sim: FreeSwitchSim, ch: Channel, arg: str) -> None:
    sim.flow.mark_ring(ch)


async def _set(sim: FreeSwitchSim, ch: Channel, arg: str) -> None:
    name, _, value = arg.partition("=")
    if value:
        ch.variables[name.strip()] = value
    else:
        ch.variables.pop(name.strip(), None)


async def _unset(sim: FreeSwitchSim, ch: Channel, arg: str) -> None:
    ch.variables.pop(arg.strip(), None)


async def _hangup(sim: FreeSwitchSim, ch: Channel, arg: str) -> None:
    sim.flow.hangup(ch, arg or "NORMAL_CLEARING")


async def _sleep(sim: FreeSwitchSim, ch: Channel, arg: str) -> None:
    app = ch.app
    assert app is not None
    with trio.move_on_after(int(arg) / 1000 if arg.strip().isdigit() else 0):
        await app.done.wait()


async def _playback(sim: FreeSwitchSim, ch: Channel, arg: str) -> None:
    app = ch.app
    assert app is not None
    seconds, played, missing = playback_plan(sim, arg)
    if missing:
        app.response = "FILE NOT FOUND"
        return
    play = (("Playback-File-Path", arg),)
    sim.flow.fire("PLAYBACK_START", ch, play)
    if ch.media is not None and played is not None:
        played.app = app.name
        ch.media.playback_started(played)
    with trio.move_on_after(seconds):
        await app.done.wait()
    if ch.app is app:
        sim.flow.fire("PLAYBACK_STOP", ch, (*play, ("Playback-Status", "done")))
        sim.flow.finish_app(ch, "FILE PLAYED")


async def _play_and_get_digits(sim: FreeSwitchSim, ch: Channel, arg: str) -> None:
    """``min max tries timeout terminators file invalid_file var_name regexp``: the digits a
    test queued with ``SimLeg.press`` are taken at once; none queued → the caller stays
    silent for every try and the variable is left unset, as on a real switch."""
    app = ch.app
    assert app is not None
    words = arg.split()
    if len(words) < 9 or not words[3].isdigit() or not words[2].isdigit():
        app.response = "-ERR bad arguments"
        return
    tries, timeout_ms, var = int(words[2]), int(words[3]), words[7]
    queued: list[str] = ch.extra.setdefault("dtmf", [])
    if queued:
        ch.variables[var] = queued.pop(0)
        return
    with trio.move_on_after(tries * timeout_ms / 1000):
        await app.done.wait()


_APPS = {
    "play_and_get_digits": _play_and_get_digits,
    "answer": _answer,
    "pre_answer": _pre_answer,
    "ring_ready": _ring_ready,
    "set": _set,
    "export": _set,
    "unset": _unset,
    "hangup": _hangup,
    "sleep": _sleep,
    "playback": _playback,
    "endless_playback": _playback,
}


def unicast(sim: FreeSwitchSim, ch: Channel, message: Message) -> None:
    """Native unicast, by the measured rules: armed only in a park, with nothing playing,
    once per park (media.md §1.4, §1.6)."""
    now = trio.current_time()
    ch.extra["unicast_request"] = dict(message.headers)
    taken = False
    if ch.in_transit or ch.extra.get("wedged"):
        # Consumed between parks: nothing is created.
        ch.set_unicast(Unicast.LOST, now)
    elif ch.playing is not None:
        # Accepted, but the ending playback will kill it and leak the old port.
        ch.set_unicast(Unicast.DEAD, now)
        taken = True
    elif ch.parked and ch.bridged_to is None:
        # A second unicast in one park binds, dies 20 ms later and takes the first with it.
        ch.set_unicast(Unicast.DEAD if ch.unicast_park_used else Unicast.ARMED, now)
        taken = True
    else:
        # Bridged (or outside any park loop): bound, but nothing services it.
        ch.set_unicast(Unicast.DEAD, now)
    if taken:
        ch.unicast_park_used = True
        if ch.media is not None:
            ch.media.unicast_taken(dict(message.headers))
