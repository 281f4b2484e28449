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
``Outcome``s (``_endpoints``); ``version``, ``module_exists`` and ``local_stream show``
answer from ``sim.version``, ``sim.modules`` and ``sim.local_streams`` (``_local_stream``:
FusionPBX's ``default/<rate>`` streams unless a test says otherwise). Events are built by
``_events`` from header templates that ``_extract`` pulled out of the real traces
(``callcontrol/testing/data/esl_templates.json``).

Everything timed (ringing, playback, linger, the ~20 ms FreeSWITCH takes to act on a
command) sleeps on the trio clock, so tests run instantly on
``trio.testing.MockClock(autojump_threshold=0)``.

Media (opt-in: ``open_freeswitch_sim(media_peers=True)``, or ``caller_audio=`` on one call;
``_media``). Each channel then gets a ``ChannelMedia`` (``call.media``) with a
``media_peers.UnicastPeer`` driven by the channel's own transitions: a ``sendmsg unicast``
taken in a park arms it (real UDP: the caller's 20 ms frames go to remote-port from
local-port, and what arrives at local-port is what the caller *heard*); a playback stops
the stream and its end tears it down; a bridge, an unpark or the hangup tears it down; the
next CHANNEL_PARK allows one new arm; one sent between ``uuid_transfer`` and CHANNEL_PARK is
lost, a second one in the same park never streams — and none of this fires an event. The
switch also loads mod_audio_stream (``media_peers.AudioStreamPeer``): ``uuid_audio_stream``
answers like the module, its ``mod_audio_stream::*`` CUSTOM events carry the channel's data,
``playback`` of its temp files lasts exactly their length and is recorded in
``call.media.playbacks``, and ``stop`` blocks the api. The caller's voice is a
``CallerAudio`` (silence, a tone, PCM or WAV, plus ``call.media.say(pcm)`` at any time).
Real sockets pace on the trio clock: use media on the real clock, bounded by short timeouts.

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
from callcontrol.testing.freeswitch._local_stream import LocalStream
from callcontrol.testing.freeswitch._media import (
    CallerAudio,
    CallerAudioLike,
    ChannelMedia,
    PlayedFile,
    Utterance,
)
from callcontrol.testing.freeswitch._parser import ClientCommand, CommandParser
from callcontrol.testing.freeswitch._sim import (
    FreeSwitchSim,
    esl_hosts,
    open_freeswitch_sim,
    open_freeswitch_sims,
)

__all__ = [
    "Answer",
    "Busy",
    "BusyAfterRinging",
    "CallerAudio",
    "CallerAudioLike",
    "Channel",
    "ChannelMedia",
    "ClientCommand",
    "CommandParser",
    "Endpoints",
    "Fail",
    "FreeSwitchSim",
    "HangupAfterRinging",
    "LocalStream",
    "Manual",
    "NoAnswer",
    "Outcome",
    "PlayedFile",
    "Reject",
    "SimCall",
    "SimEvent",
    "SimLeg",
    "Unicast",
    "Unregistered",
    "Utterance",
    "Voicemail",
    "esl_hosts",
    "open_freeswitch_sim",
    "open_freeswitch_sims",
]
