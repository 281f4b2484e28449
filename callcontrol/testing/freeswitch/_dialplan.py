"""What the caller's channel does once our socket is gone (mod_event_socket.c, read for 1.10).

In ``async`` mode the ``socket`` app parks the channel (``switch_ivr_park``) and returns when
that park ends, which is when the listener clears ``CF_CONTROLLED``; then it parses the
private events still queued, and the dialplan goes on with the extension's next action —
with or without ``resume`` (the real switch did exactly that 0.05 s after the answer, issue
12). What ``resume`` adds is at the listener's own end: ``CS_RESET`` unless the channel
hibernates or is being transferred, which takes a bridged channel out of its bridge and back
into its extension (the real switch: a live agent conversation unbridged and sent to the
fallback ``transfer``). So, modelled here:

* in the socket app's park: the app the server started is allowed to finish first — an
  endless ``playback(local_stream://moh)`` never does, and the caller hears it forever — then
  the queued executes, then the actions after ``socket`` (``after_socket``);
* bridged: without ``resume`` the bridge is FreeSWITCH's own and nothing changes; with it, A
  leaves the bridge (the agent's leg hangs up) and runs the actions after ``socket``;
* after ``uuid_transfer … park inline`` the extension with the fallback is gone: the inline
  ``park`` ends with the socket and the channel hangs up (by the source; not measured).

When a bridge ends because the agent hung up, A follows ``park_after_bridge`` (parked),
``hangup_after_bridge`` (hung up) or else goes back to its extension (``CS_EXECUTE``,
``switch_ivr_bridge.c``): the actions after ``socket`` once nobody controls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from callcontrol.testing.freeswitch._apps import run_app
from callcontrol.testing.freeswitch._channel import Channel

if TYPE_CHECKING:
    from callcontrol.testing.freeswitch._sim import FreeSwitchSim

# The shipped dialplan entry's fallback (dialplan/default/90_callcontrol_ai_secretary.xml).
SHIPPED_FALLBACK = ("transfer 9000 XML default", "hangup NORMAL_TEMPORARY_FAILURE")


def socket_gone(sim: FreeSwitchSim, ch: Channel, *, resumed: bool) -> None:
    """The outbound listener of ``ch`` ended (``exit``, EOF, a killed server)."""
    ch.controlled = False
    if ch.extra.get("reached") is not None or ch.extra.get("transferring"):
        return  # transferred into the dialplan (voicemail, a ring group): not ours any more
    if ch.bridged_to is not None:
        if resumed:
            sim.nursery.start_soon(_reset_out_of_bridge, sim, ch)
        return
    if ch.extra.get("transferred"):
        # The socket app ended with the transfer; its extension (and fallback) went with it.
        sim.flow.leave_park(ch)
        sim.flow.hangup(ch, "NORMAL_CLEARING")
        return
    sim.nursery.start_soon(_leave_socket_app, sim, ch)


async def _leave_socket_app(sim: FreeSwitchSim, ch: Channel) -> None:
    # switch_ivr_park returns only when the app it runs returns; the queued executes run next.
    await sim.wait_for(lambda: not ch.alive or (ch.app is None and not ch.queue)
                       or not ch.parked)  # fmt: skip
    if not ch.alive:
        return
    sim.flow.leave_park(ch)
    await run_after_socket(sim, ch)


async def _reset_out_of_bridge(sim: FreeSwitchSim, ch: Channel) -> None:
    await trio.sleep(sim.latency)
    partner = sim.channels.get(ch.bridged_to or "")
    ch.extra["unbridged_by_resume"] = True
    if partner is not None:
        sim.flow.hangup(partner, "NORMAL_CLEARING")
    if ch.alive:
        await run_after_socket(sim, ch)


async def after_bridge(sim: FreeSwitchSim, ch: Channel) -> None:
    """A's bridge ended (the agent hung up) with neither park_after_bridge nor a socket."""
    if ch.variables.get("hangup_after_bridge", "").lower() == "true":
        sim.flow.hangup(ch, "NORMAL_CLEARING")
        return
    await run_after_socket(sim, ch)


async def run_after_socket(sim: FreeSwitchSim, ch: Channel) -> None:
    """The extension's actions after ``socket``, in order; none left: the call ends."""
    actions: list[str] = ch.extra.setdefault("after_socket", [])
    ran: list[str] = ch.extra.setdefault("dialplan_after_socket", [])
    while ch.alive and actions:
        action = actions.pop(0)
        ran.append(action)
        app, _, arg = action.partition(" ")
        if app == "transfer":
            reach(sim, ch, arg)
            return
        await run_app(sim, ch, app, arg, sim.new_uuid())
    if ch.alive:
        sim.flow.hangup(ch, "NORMAL_CLEARING")


def reach(sim: FreeSwitchSim, ch: Channel, target: str) -> None:
    """A dialplan transfer to ``target`` (``9000 XML default``): the channel leaves our world
    alive, ringing whatever the PBX has there; tests read ``SimCall.reached``."""
    sim.flow.start_app(ch, "transfer", target, sim.new_uuid())
    sim.flow.finish_app(ch, "_none_")
    ch.extra["reached"] = target
    number = target.split(" ", 1)[0]
    ch.rdnis, ch.destination_number = ch.destination_number, number
    sim.flow.set_state(ch, "CS_ROUTING")
    sim.flow.set_state(ch, "CS_EXECUTE")
