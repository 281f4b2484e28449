"""What happens to channels, with the events a real FreeSWITCH 1.10 fires, in its order.

Every sequence here is copied from a recording (../shared/traces, callflow.md):

* caller hangup while parked (trace d): HANGUP, [EXECUTE_COMPLETE of the running app with
  PLAYBACK ERROR (a)], UNPARK, EXECUTE_COMPLETE socket, STATE CS_HANGUP, STATE CS_REPORTING,
  HANGUP_COMPLETE, then the linger notice;
* ``uuid_bridge A B`` (c, q3): on A UNPARK, EXECUTE_COMPLETE socket, STATE CS_HIBERNATE /
  CS_RESET / CS_SOFT_EXECUTE, then 40 ms later EXECUTE uuid_bridge and CHANNEL_BRIDGE (with
  Other-Leg-* = B); B leaves its park the same way;
* B killed while bridged (q3): B's HANGUP, A's UNBRIDGE, then A's STATE CS_PARK and
  CHANNEL_PARK when A has ``park_after_bridge=true``, else A hangs up too;
* ``uuid_transfer A park inline`` (q2b): UNPARK, EXECUTE_COMPLETE of the socket (or park)
  app, STATE CS_ROUTING, STATE CS_EXECUTE, EXECUTE park, CHANNEL_PARK.

The response of the socket/park app's EXECUTE_COMPLETE is the channel's last app response
(``current_application_response``), which is why it reads ``FILE PLAYED`` after a playback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from callcontrol.testing.freeswitch._channel import Q850, Channel, RunningApp, Unicast
from callcontrol.testing.freeswitch._dialplan import after_bridge

if TYPE_CHECKING:
    from callcontrol.testing.freeswitch._sim import FreeSwitchSim


class CallFlow:
    def __init__(self, sim: FreeSwitchSim) -> None:
        self.sim = sim

    # -- firing -------------------------------------------------------------------------

    def fire(self, name: str, ch: Channel, extra: tuple[tuple[str, str], ...] = (),
             body: bytes | None = None, subclass: str | None = None) -> None:
        self.sim.publish(self.sim.factory.channel_event(name, ch, extra, body=body,
                                                        subclass=subclass))

    def set_state(self, ch: Channel, state: str, *, fire: bool = True) -> None:
        ch.set_state(state)
        if fire:
            self.fire("CHANNEL_STATE", ch)

    # -- apps ---------------------------------------------------------------------------

    def start_app(self, ch: Channel, name: str, arg: str, app_uuid: str, *,
                  host: bool = False) -> RunningApp:
        app = RunningApp(name, arg, app_uuid or self.sim.new_uuid(), nested=host)
        app.is_playback = name in ("playback", "endless_playback")
        if host:
            ch.host_app = app
            ch.variables.pop("current_application_response", None)
        else:
            ch.app = app
        ch.variables["current_application_data"] = arg
        ch.variables["current_application"] = name
        ch.last_app, ch.last_arg = name, arg
        extra = [("Application", name), ("Application-Data", arg),
                 ("Application-UUID", app.app_uuid)]
        self.fire("CHANNEL_EXECUTE", ch, tuple(extra))
        return app

    def finish_app(self, ch: Channel, response: str) -> None:
        """End the app running on ``ch`` (if any) with ``response``."""
        app = ch.app
        if app is None:
            return
        ch.app = None
        app.response = response
        ch.variables["current_application_response"] = response
        self._complete(ch, app)
        if app.is_playback:
            # An ending playback tears down native unicast for the rest of this park.
            if ch.unicast is Unicast.ARMED:
                ch.set_unicast(Unicast.DEAD, trio.current_time())
            if ch.media is not None:
                ch.media.playback_ended(response)
        app.done.set()

    def finish_host(self, ch: Channel, response: str | None = None) -> None:
        host = ch.host_app
        if host is None:
            return
        ch.host_app = None
        host.response = response or ch.variables.get("current_application_response", "_none_")
        self._complete(ch, host)
        host.done.set()

    def _complete(self, ch: Channel, app: RunningApp) -> None:
        extra = [("Application", app.name), ("Application-Data", app.arg),
                 ("Application-Response", app.response), ("Application-UUID", app.app_uuid)]
        self.fire("CHANNEL_EXECUTE_COMPLETE", ch, tuple(extra))

    # -- answer / park ------------------------------------------------------------------

    def mark_ring(self, ch: Channel) -> None:
        ch.progress = self.sim.now()
        self.fire("CHANNEL_PROGRESS", ch)

    def mark_answered(self, ch: Channel) -> None:
        if ch.answer_state == "answered" or not ch.alive:
            return
        ch.answered = self.sim.now()
        ch.answer_state = "answered"
        ch.call_state = "ACTIVE"
        ch.variables["endpoint_disposition"] = "ANSWER"
        self.fire("CHANNEL_ANSWER", ch)

    def park(self, ch: Channel) -> None:
        ch.parked = True
        ch.in_transit = False
        # A new park invocation: one new unicast allowed (the old one is gone).
        ch.unicast_park_used = False
        if ch.media is not None:
            ch.media.parked()
        self.fire("CHANNEL_PARK", ch)
        ch.wakeup.set()

    def leave_park(self, ch: Channel, *, response: str | None = None) -> None:
        """Stop what runs and leave the park: the start of bridge, transfer and hangup."""
        self.finish_app(ch, "PLAYBACK ERROR" if ch.playing else "_none_")
        if ch.parked:
            ch.parked = False
            self.fire("CHANNEL_UNPARK", ch)
            self.stop_unicast(ch)
        self.finish_host(ch, response)

    def stop_unicast(self, ch: Channel) -> None:
        """The park loop that serviced native unicast is left (unpark, bridge, hangup)."""
        if ch.unicast is Unicast.ARMED:
            ch.set_unicast(Unicast.DEAD, trio.current_time())
        if ch.media is not None:
            ch.media.teardown()

    # -- hangup -------------------------------------------------------------------------

    def hangup(self, ch: Channel, cause: str = "NORMAL_CLEARING") -> None:
        if not ch.alive:
            return
        cause = normalise_cause(cause)
        listener = self.sim.listener_for(ch)
        if listener is not None:
            listener.session_hangup_begins()
        ch.hangup_cause = cause
        ch.answer_state = "hangup"
        ch.call_state = "HANGUP"
        ch.hungup_at = self.sim.now()
        self.fire("CHANNEL_HANGUP", ch)
        if ch.media is not None:
            ch.media.teardown()
        if self.sim.audio_stream is not None and not self.sim.closing:
            self.sim.audio_stream.on_hangup(ch.uuid)
        hook: Callable[[str], None] | None = ch.extra.pop("on_hangup", None)
        if hook is not None:
            hook(cause)
        partner = self._unbridge_on_hangup(ch)
        self.finish_app(ch, "PLAYBACK ERROR" if ch.playing else "_none_")
        if ch.parked:
            ch.parked = False
            self.fire("CHANNEL_UNPARK", ch)
        self.finish_host(ch, "_none_" if ch.host_app and ch.host_app.name == "park" else None)
        self.set_state(ch, "CS_HANGUP")
        self.set_state(ch, "CS_REPORTING")
        ch.variables.update(cdr_variables(ch))
        self.fire("CHANNEL_HANGUP_COMPLETE", ch, (("Hangup-Cause", cause),))
        if listener is not None:
            listener.session_hangup_ends()
        ch.set_state("CS_DESTROY")
        self.fire("CHANNEL_DESTROY", ch)
        if ch.unicast is Unicast.ARMED:
            ch.set_unicast(Unicast.NONE, trio.current_time())
        self.sim.channel_gone(ch)
        if partner is not None:
            self._after_partner_hangup(partner)

    def _unbridge_on_hangup(self, ch: Channel) -> Channel | None:
        partner_uuid = ch.bridged_to
        if partner_uuid is None:
            return None
        partner = self.sim.channels.get(partner_uuid)
        ch.bridged_to = None
        if partner is None:
            return None
        partner.bridged_to = None
        originator = ch if ch.originator else partner
        other = partner if originator is ch else ch
        self.fire("CHANNEL_UNBRIDGE", originator,
                  (("Bridge-A-Unique-ID", originator.uuid), ("Bridge-B-Unique-ID", other.uuid)))
        if partner.variables.get("park_after_bridge", "").lower() == "true":
            self.set_state(partner, "CS_PARK")
            self.park(partner)
            return None
        if partner.originator and not partner.controlled:
            # uuid_bridge's originator goes back to its extension (CS_EXECUTE)
            self.sim.nursery.start_soon(after_bridge, self.sim, partner)
            return None
        return partner

    def _after_partner_hangup(self, partner: Channel) -> None:
        if partner.alive:
            self.hangup(partner, "NORMAL_CLEARING")

    # -- bridge -------------------------------------------------------------------------

    async def bridge(self, a: Channel, b: Channel) -> None:
        a.originator, b.originator = True, False
        a_before, b_before = a.profile_values(), b.profile_values()
        # Each side sees the other's profile as it was; A sees B's caller/callee flipped.
        a.other_profile = _flipped(b_before)
        b.other_profile = a_before
        now = self.sim.now()
        for leg, seen in ((a, b_before), (b, a_before)):
            # uuid_bridge transfers both legs: each gets a new profile (Transfer-Source).
            leg.new_profile(f"{int(now)}:{self.sim.new_uuid()}:uuid_br:{seen['Unique-ID']}", now)
            leg.callee_id_name = seen["Caller-ID-Name"]
            leg.callee_id_number = seen["Caller-ID-Number"]
        for ch in (a, b):
            self.leave_park(ch)
            self.stop_unicast(ch)
        for state in ("CS_HIBERNATE", "CS_RESET", "CS_SOFT_EXECUTE"):
            self.set_state(a, state)
        b.set_state("CS_SOFT_EXECUTE")
        await trio.sleep(2 * self.sim.latency)
        if not (a.alive and b.alive):
            return
        self.start_app(a, "uuid_bridge", b.uuid, "")
        a.app = None
        self.start_app(b, "uuid_bridge", a.uuid, "")
        b.app = None
        now = self.sim.now()
        for ch, other in ((a, b), (b, a)):
            ch.bridged_to = other.uuid
            ch.bridged_at = now
            ch.variables.update({"bridge_channel": other.name, "bridge_uuid": other.uuid,
                                 "signal_bond": other.uuid, "last_bridge_to": other.uuid})
        b.set_state("CS_EXCHANGE_MEDIA")
        self.fire("CHANNEL_BRIDGE", a, (("Bridge-A-Unique-ID", a.uuid),
                                        ("Bridge-B-Unique-ID", b.uuid)))

    # -- transfer / park -----------------------------------------------------------------

    async def transfer_park_inline(self, ch: Channel) -> None:
        await trio.sleep(self.sim.latency)
        if not ch.alive:
            return
        partner = self._unbridge_on_hangup(ch) if ch.bridged_to else None
        ch.transfer_at = self.sim.now()
        ch.extra["transferred"] = True  # the extension after `socket` is gone
        ch.new_profile(f"{int(ch.transfer_at)}:{self.sim.new_uuid()}:bl_xfer:park/"
                       f"{ch.context}/inline", ch.transfer_at)
        ch.rdnis, ch.destination_number = ch.destination_number, "park"
        self.leave_park(ch)
        ch.call_state = "RINGING"
        self.set_state(ch, "CS_ROUTING")
        # The inline dialplan restores the destination once it runs (q2b).
        ch.destination_number, ch.rdnis = ch.rdnis, ""
        ch.call_state = "ACTIVE" if ch.answer_state == "answered" else "RINGING"
        self.set_state(ch, "CS_EXECUTE")
        self.start_app(ch, "park", "", "", host=True)
        self.park(ch)
        if partner is not None:
            self._after_partner_hangup(partner)

    async def uuid_park(self, ch: Channel) -> None:
        await trio.sleep(self.sim.latency)
        if not ch.alive:
            return
        if ch.state == "CS_PARK":
            # A second park of a channel already in CS_PARK wedges it (callflow.md §2.5).
            ch.parked = False
            ch.extra["wedged"] = True
            self.fire("CHANNEL_UNPARK", ch)
            self.stop_unicast(ch)
            return
        self.leave_park(ch)
        self.set_state(ch, "CS_PARK")
        self.park(ch)


def _flipped(profile: dict[str, str]) -> dict[str, str]:
    out = dict(profile)
    out["Caller-ID-Name"], out["Callee-ID-Name"] = profile["Callee-ID-Name"], \
        profile["Caller-ID-Name"]
    out["Caller-ID-Number"], out["Callee-ID-Number"] = profile["Callee-ID-Number"], \
        profile["Caller-ID-Number"]
    out["ANI"] = profile["ANI"]
    return out


def normalise_cause(cause: str) -> str:
    text = cause.strip().upper()
    if text.isdigit():
        for name, number in Q850.items():
            if number == int(text):
                return name
    return text or "NORMAL_CLEARING"


def cdr_variables(ch: Channel) -> dict[str, str]:
    start, answer, end = ch.created, ch.answered, ch.hungup_at

    def stamp(t: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""

    def ep(t: float) -> str:
        return str(int(t)) if t else "0"

    def uep(t: float) -> str:
        return str(int(t * 1_000_000)) if t else "0"

    billsec = end - answer if answer else 0.0
    cause = ch.hangup_cause or "NORMAL_CLEARING"
    return {
        "hangup_cause": cause, "hangup_cause_q850": str(Q850.get(cause, 16)),
        "digits_dialed": "none", "start_stamp": stamp(start),
        "profile_start_stamp": stamp(start), "answer_stamp": stamp(answer),
        "end_stamp": stamp(end), "start_epoch": ep(start), "start_uepoch": uep(start),
        "profile_start_epoch": ep(start), "profile_start_uepoch": uep(start),
        "answer_epoch": ep(answer), "answer_uepoch": uep(answer),
        "bridge_epoch": ep(ch.bridged_at), "bridge_uepoch": uep(ch.bridged_at),
        "progress_epoch": ep(ch.progress), "progress_uepoch": uep(ch.progress),
        "end_epoch": ep(end), "end_uepoch": uep(end),
        "last_app": ch.last_app, "last_arg": ch.last_arg, "caller_id": ch.caller_id_number,
        "duration": str(int(end - start)), "billsec": str(int(billsec)),
        "mduration": str(int((end - start) * 1000)), "billmsec": str(int(billsec * 1000)),
        "uduration": str(int((end - start) * 1_000_000)),
        "billusec": str(int(billsec * 1_000_000)),
    }
