"""A simulated FreeSWITCH 1.10 that speaks real Event Socket bytes.

Theory of operation
-------------------
The simulator plays the switch's side of both Event Socket modes:

* **Outbound** — ``sim.place_call(host, port, …)`` (TCP) or ``sim.attach_outbound(stream, …)``
  (any trio stream, e.g. one end of ``trio.testing.memory_stream_pair``) does what the
  dialplan's ``socket <addr> async full`` does: it creates the caller's channel, runs the
  ``socket`` app, waits for ``connect``, answers with the channel data, and parks the channel
  20 ms later (CHANNEL_PARK). From then on the server under test drives the call.
* **Inbound** — ``sim.serve_inbound(host, port)`` / ``sim.attach_inbound(stream)`` greets with
  ``auth/request`` and serves ``api``, ``bgapi``, ``event``, ``filter``… for every channel.

Each connection is a ``Listener`` (``_listener``): it parses client command blocks
(``_parser``), answers socket commands itself, and hands ``api``/``bgapi``/``sendmsg`` to the
switch. Replies are written before any event the command caused, and an ``api`` blocks its
socket until it returns, as in mod_event_socket's listener thread. Every fired event goes
through each listener's ``Subscription`` (``_subscription``: subscriptions, then filters,
then the ``myevents`` rule) at the moment it fires.

Channels (``_channel``) hold state only; ``_callflow`` changes them and fires the events in
the order the real recordings show (park, bridge, unbridge, transfer, hangup); ``_apps``
runs dialplan applications from the channel's private queue (answer, playback, set, hangup,
sleep; ``park`` refused under socket control) and applies the native-unicast rules;
``_api`` implements the API commands; ``_originate`` rings B-legs according to scripted
``Outcome``s (``_endpoints``). Events are built by ``_events`` from header templates that
``_extract`` pulled out of the real traces (``callcontrol/testing/data/esl_templates.json``).

Everything timed (ringing, playback, linger, the ~20 ms FreeSWITCH takes to act on a
command) sleeps on the trio clock, so tests run instantly on
``trio.testing.MockClock(autojump_threshold=0)``.

Usage::

    async with open_freeswitch_sim() as sim:
        sim.endpoints["user/1001@pbx.example.com"] = Answer(after=2.0)
        call = await sim.place_call("127.0.0.1", 8022, caller_number="5511999990000",
                                    destination_number="5000",
                                    variables={"voice_secretary_uuid": "…"})
        b = await sim.wait_for_leg("sofia/internal/1001@")
        await call.wait_for(lambda: call.bridged_to == b.uuid)
        await call.hangup()
"""

from callcontrol.testing.freeswitch._channel import Channel, Unicast
from callcontrol.testing.freeswitch._endpoints import (
    Answer,
    Busy,
    BusyAfterRinging,
    Endpoints,
    Fail,
    HangupAfterRinging,
    Manual,
    NoAnswer,
    Outcome,
    Reject,
    Unregistered,
    Voicemail,
)
from callcontrol.testing.freeswitch._events import SimEvent
from callcontrol.testing.freeswitch._handles import SimCall, SimLeg
from callcontrol.testing.freeswitch._parser import ClientCommand, CommandParser
from callcontrol.testing.freeswitch._sim import FreeSwitchSim, open_freeswitch_sim

__all__ = [
    "Answer",
    "Busy",
    "BusyAfterRinging",
    "Channel",
    "ClientCommand",
    "CommandParser",
    "Endpoints",
    "Fail",
    "FreeSwitchSim",
    "HangupAfterRinging",
    "Manual",
    "NoAnswer",
    "Outcome",
    "Reject",
    "SimCall",
    "SimEvent",
    "SimLeg",
    "Unicast",
    "Unregistered",
    "Voicemail",
    "open_freeswitch_sim",
]
