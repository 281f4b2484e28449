"""The simulated switch: channels, sockets, the event bus and the test controls."""

from __future__ import annotations

import shutil
import tempfile
import uuid as uuid_mod
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import trio

from callcontrol.media.codecs import AudioFormat
from callcontrol.testing.freeswitch._api import run_api
from callcontrol.testing.freeswitch._apps import Media, run_queue, unicast
from callcontrol.testing.freeswitch._callflow import CallFlow
from callcontrol.testing.freeswitch._channel import Channel, Message
from callcontrol.testing.freeswitch._dialplan import SHIPPED_FALLBACK, socket_gone
from callcontrol.testing.freeswitch._endpoints import Endpoints
from callcontrol.testing.freeswitch._events import EventFactory, SimEvent
from callcontrol.testing.freeswitch._handles import SimCall, SimLeg
from callcontrol.testing.freeswitch._listener import DEFAULT_PASSWORD, Listener
from callcontrol.testing.freeswitch._local_stream import LocalStream, fusionpbx_streams
from callcontrol.testing.freeswitch._media import (
    CallerAudio,
    CallerAudioLike,
    ChannelMedia,
    as_caller_audio,
)
from callcontrol.testing.freeswitch._originate import originate
from callcontrol.testing.freeswitch._outbound import caller_channel, run_socket_app
from callcontrol.testing.freeswitch._parser import ClientCommand
from callcontrol.testing.media_peers import AudioStreamPeer, FrameSource

# The modules a FusionPBX 5.x machine loads (its modules.conf.xml), as `module_exists` sees
# them. Not mod_audio_stream: a third-party module, loaded here by ``media_peers=True``.
FUSIONPBX_MODULES = frozenset({
    "mod_commands", "mod_dptools", "mod_event_socket", "mod_sofia", "mod_loopback",
    "mod_dialplan_xml", "mod_local_stream", "mod_tone_stream", "mod_sndfile",
    "mod_native_file", "mod_lua", "mod_callcenter", "mod_voicemail", "mod_conference",
    "mod_fifo", "mod_db", "mod_hash", "mod_expr", "mod_spandsp", "mod_opus", "mod_g729",
    "mod_xml_cdr", "mod_say_en", "mod_logfile", "mod_syslog", "mod_console",
})


# 2026-11-25 17:07:23 UTC, the day of the recordings: fixed so event dates are reproducible.
DEFAULT_EPOCH = 1795626443.0


@attrs.define(eq=False)
class FreeSwitchSim:
    """A FreeSWITCH 1.10 that speaks real ESL bytes. Open it with ``open_freeswitch_sim``."""

    nursery: trio.Nursery
    latency: float = 0.02  # FreeSWITCH fires app/park events ~20 ms after the command
    domain: str = "pbx.example.com"
    domain_uuid: str = "9c5b7c9e-0000-4000-8000-000000000001"
    endpoints: Endpoints = attrs.field(factory=Endpoints)
    media: Media = attrs.field(factory=Media)
    channels: dict[str, Channel] = attrs.field(factory=dict)
    history: list[Channel] = attrs.field(factory=list)
    listeners: list[Listener] = attrs.field(factory=list)
    inbound: list[Listener] = attrs.field(factory=list)  # every inbound client, closed ones too
    calls: list[SimCall] = attrs.field(factory=list)
    events: list[SimEvent] = attrs.field(factory=list)
    registrations: dict[str, dict[str, str]] = attrs.field(factory=dict)
    directory: set[str] = attrs.field(factory=set)
    epoch: float = DEFAULT_EPOCH
    # Media peers (``_media``): every channel gets a unicast peer and mod_audio_stream is loaded.
    media_peers: bool = False
    caller_audio: CallerAudioLike = None  # every call's caller audio unless the call says
    media_tmpdir: str | None = None  # mod_audio_stream's temp dir (a fresh one by default)
    audio_stream: AudioStreamPeer | None = attrs.field(default=None, init=False)
    # What `api version` and `api status` report: switch_version_full() and
    # switch_version_revision_human() of the recorded FreeSWITCH.
    version: str = "1.10.12-release+git~20240802T210227Z~a88d069d6f~64bit"
    version_revision: str = "git a88d069 2024-08-02 21:02:27Z 64bit"
    modules: set[str] = attrs.field(factory=lambda: set(FUSIONPBX_MODULES))
    # mod_local_stream's streams by name (`local_stream show`): FusionPBX's by default.
    local_streams: dict[str, LocalStream] = attrs.field(factory=fusionpbx_streams)
    sessions_since_startup: int = 0
    peak_sessions: int = 0
    factory: EventFactory = attrs.field(init=False)
    flow: CallFlow = attrs.field(init=False)
    _t0: float = attrs.field(init=False)
    _changed: trio.Event = attrs.field(factory=trio.Event)
    _own_tmpdir: bool = attrs.field(default=False, init=False)
    closing: bool = attrs.field(default=False, init=False)  # the block is being left
    # Fault injection: ``api`` commands (by name) whose reply never comes once the call's
    # linger notice was sent (the real switch, caller hangup while ringing, issue 12).
    unanswered_api: tuple[str, ...] = ()
    # the box's name in its events and `show registrations` (several boxes: tell them apart)
    hostname: str = "callcontrol-sim"
    inbound_ports: list[int] = attrs.field(factory=list)  # serve_inbound's, in order
    _inbound_scopes: list[trio.CancelScope] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        self._t0 = trio.current_time()
        self.factory = EventFactory(core_uuid=self.new_uuid(), clock=self.now,
                                    hostname=self.hostname)  # fmt: skip
        self.flow = CallFlow(self)

    # -- time, ids, bookkeeping ----------------------------------------------------------

    def now(self) -> float:
        """Wall-clock epoch seconds as the switch reports them, driven by the trio clock."""
        return self.epoch + (trio.current_time() - self._t0)

    def uptime(self) -> float:
        return trio.current_time() - self._t0

    def new_uuid(self) -> str:
        return str(uuid_mod.uuid4())

    def next_session_id(self) -> int:
        self.sessions_since_startup += 1
        return self.sessions_since_startup

    def add_channel(self, ch: Channel) -> None:
        self.channels[ch.uuid] = ch
        self.history.append(ch)
        if self.media_peers:
            ch.media = ChannelMedia(self, ch, as_caller_audio(self.caller_audio))
        self.peak_sessions = max(self.peak_sessions, len(self.channels))
        self._notify()

    def channel_gone(self, ch: Channel) -> None:
        self.channels.pop(ch.uuid, None)
        if ch.media is not None:
            ch.media.close()
        ch.gone.set()
        ch.wakeup.set()
        self._notify()

    def leg(self, uuid: str) -> SimLeg:
        """A handle on any channel, live or gone, by UUID (e.g. an origination_uuid)."""
        for ch in reversed(self.history):
            if ch.uuid == uuid:
                return SimLeg(self, ch)
        raise KeyError(uuid)

    def legs(self, dial_prefix: str = "") -> list[SimLeg]:
        """Originated legs, oldest first, whose channel name starts with ``dial_prefix``."""
        return [SimLeg(self, ch) for ch in self.history
                if ch.direction == "outbound" and ch.name.startswith(dial_prefix)]

    # -- the event bus ---------------------------------------------------------------------

    def publish(self, event: SimEvent) -> None:
        self.events.append(event)
        for listener in list(self.listeners):
            listener.offer(event)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        """Wait for the next change anywhere: an event fired, a command read, a frame sent."""
        changed = self._changed
        async with trio.open_nursery() as nursery:
            async def on_listener(listener: Listener) -> None:
                await listener.changed()
                nursery.cancel_scope.cancel()

            for listener in self.listeners:
                nursery.start_soon(on_listener, listener)
            await changed.wait()
            nursery.cancel_scope.cancel()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Event-driven wait (no polling): returns once ``predicate()`` is true."""
        while not predicate():
            await self.wait_changed()

    async def wait_for_event(self, predicate: Callable[[SimEvent], bool]) -> SimEvent:
        seen = 0
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            await self.wait_changed()

    async def wait_for_leg(self, dial_prefix: str = "") -> SimLeg:
        """The first originated leg whose channel name starts with ``dial_prefix``."""
        await self.wait_for(lambda: bool(self.legs(dial_prefix)))
        return self.legs(dial_prefix)[0]

    # -- commands from sockets -----------------------------------------------------------

    async def api(self, line: str, owner: Channel | None = None) -> str:
        return await run_api(self, line)

    # -- mod_audio_stream --------------------------------------------------------------------

    async def start_media(self) -> None:
        """Load mod_audio_stream (``media_peers=True``); ``open_freeswitch_sim`` calls it."""
        if self.audio_stream is not None:
            return
        if self.media_tmpdir is None:
            self.media_tmpdir = tempfile.mkdtemp(prefix="callcontrol-sim-")
            self._own_tmpdir = True
        peer = AudioStreamPeer(self._emit_custom, self.media_tmpdir, source=self._stream_source)
        await self.nursery.start(peer.run)
        self.audio_stream = peer
        self.modules.add("mod_audio_stream")

    def _emit_custom(self, subclass: str, uuid: str, body: str) -> None:
        """mod_audio_stream's ``responseHandler``: a CUSTOM event with the channel's data."""
        ch = self.channels.get(uuid)
        if ch is None or not ch.alive:
            return
        self.flow.fire("CUSTOM", ch, body=body.encode(), subclass=subclass)
        if ch.media is not None:
            ch.media.audio_stream_events.append((trio.current_time(), subclass, body))

    def _stream_source(self, uuid: str, fmt: AudioFormat) -> FrameSource:
        ch = self.channels.get(uuid)
        if ch is not None and ch.media is not None:
            return ch.media.voice.source(fmt)
        return CallerAudio.silence().source(fmt)

    def close_media(self) -> None:
        if self._own_tmpdir and self.media_tmpdir is not None:
            shutil.rmtree(self.media_tmpdir, ignore_errors=True)

    def bgapi(self, line: str, job_uuid: str, owner: Channel | None = None) -> None:
        command, _, args = line.strip().partition(" ")

        def report(output: str) -> None:
            headers = [("Job-UUID", job_uuid)]
            if owner is not None:
                headers.append(("Job-Owner-UUID", owner.uuid))
            headers.append(("Job-Command", command))
            if args:
                headers.append(("Job-Command-Arg", args))
            body = (output or "-ERR no reply\n").encode()
            self.publish(self.factory.plain_event("BACKGROUND_JOB", headers, body))

        async def job() -> None:
            if command.lower() == "originate":
                await originate(self, args, report)
            else:
                report(await run_api(self, line))

        self.nursery.start_soon(job)

    def sendmsg(self, listener: Listener, cmd: ClientCommand) -> str:
        uuid = cmd.arg or (listener.channel.uuid if listener.channel is not None else "")
        ch = self.channels.get(uuid)
        if ch is None or not ch.alive:
            return f"-ERR invalid session id [{uuid}]"
        what = (cmd.header("call-command") or "").lower()
        if what == "execute":
            ch.post(_execute_message(cmd))
        elif what == "hangup":
            self.nursery.start_soon(self._hangup_later, ch, cmd.header("hangup-cause")
                                    or "NORMAL_CLEARING")
        elif what == "unicast":
            unicast(self, ch, Message("unicast", headers=cmd.headers))
        return "+OK"

    async def _hangup_later(self, ch: Channel, cause: str) -> None:
        await trio.sleep(self.latency)
        if not ch.extra.get("wedged"):
            self.flow.hangup(ch, cause)

    def sendevent(self, cmd: ClientCommand) -> str:
        name = cmd.arg.split()[0] if cmd.arg else "CUSTOM"
        event_uuid = self.new_uuid()
        headers = [(k, v) for k, v in cmd.headers if k.lower() != "content-length"]
        self.publish(self.factory.plain_event(name.upper(), headers, cmd.body or None))
        return event_uuid

    # -- sockets ---------------------------------------------------------------------------

    def listener_for(self, ch: Channel) -> Listener | None:
        listener = ch.extra.get("listener")
        return listener if isinstance(listener, Listener) else None

    def socket_connected(self, listener: Listener) -> None:
        ch = listener.channel
        assert ch is not None

        async def park_and_serve() -> None:
            # The socket app parks as soon as `connect` is answered (q1a, d: within 1 ms).
            await trio.sleep(0.001)
            if ch.alive and ch.host_app is not None:
                self.flow.park(ch)
                await run_queue(self, ch)

        self.nursery.start_soon(park_and_serve)

    def listener_closed(self, listener: Listener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
        ch = listener.channel
        if ch is None or not ch.alive or listener.outbound is False:
            return
        ch.extra.pop("listener", None)
        resumed = ch.variables.get("socket_resume") == "true"
        if resumed:
            ch.extra["resumed"] = True
        socket_gone(self, ch, resumed=resumed)

    def attach_outbound(
        self,
        stream: trio.abc.Stream,
        *,
        caller_number: str = "1000",
        caller_name: str = "",
        destination_number: str = "5000",
        variables: dict[str, str] | None = None,
        codec: str = "PCMU",
        rate: int = 8000,
        socket_address: str = "127.0.0.1:8022",
        full: bool = True,
        uuid: str | None = None,
        profile: dict[str, str] | None = None,
        caller_audio: CallerAudioLike = None,
        after_socket: Sequence[str] = SHIPPED_FALLBACK,
    ) -> SimCall:
        """Dial a call over ``stream`` (any trio Stream: TCP, or a memory stream pair).

        ``profile`` overrides Channel fields of the caller's leg, e.g. ``{"name":
        "loopback/9000-b", "source": "mod_loopback"}`` to look like the lab's recordings.
        ``caller_audio`` (a ``CallerAudio``, a tone's Hz, PCM16 8 kHz bytes or a WAV path) is
        what the caller says; it gives this call a unicast peer even without ``media_peers``.
        ``after_socket``: the dialplan actions after ``socket`` ("app arg"), run once the
        socket is gone (``_dialplan``); the shipped entry's fallback by default.
        """
        ch = caller_channel(self, caller_number, caller_name, destination_number,
                            variables or {}, codec=codec, rate=rate, uuid=uuid)
        if caller_audio is not None:
            if ch.media is None:
                ch.media = ChannelMedia(self, ch, as_caller_audio(caller_audio))
            else:
                ch.media.voice = as_caller_audio(caller_audio)
                ch.media.unicast.source = ch.media.voice.source(ch.media.line_format)
        for field, value in (profile or {}).items():
            setattr(ch, field, value)
        if profile and "name" in profile:
            ch.variables["channel_name"] = profile["name"]
        ch.extra["after_socket"] = list(after_socket)
        run_socket_app(self, ch, socket_address, full=full)
        listener = Listener(self, stream, outbound=True, channel=ch, full=full)
        ch.extra["listener"] = listener
        self.listeners.append(listener)
        call = SimCall(self, ch, listener)
        self.calls.append(call)
        self.nursery.start_soon(listener.run)
        return call

    async def place_call(self, host: str, port: int, **kwargs: Any) -> SimCall:
        """Dial a call into the server at ``host:port`` over TCP, like ``socket … async full``."""
        stream = await trio.open_tcp_stream(host, port)
        return self.attach_outbound(stream, socket_address=f"{host}:{port}", **kwargs)

    async def attach_inbound(self, stream: trio.abc.Stream,
                             password: str = DEFAULT_PASSWORD) -> None:
        """Serve one inbound Event Socket client on ``stream`` until it leaves."""
        listener = Listener(self, stream, outbound=False, password=password)
        self.listeners.append(listener)
        self.inbound.append(listener)
        await listener.run()

    async def serve_inbound(self, host: str = "127.0.0.1", port: int = 0,
                            password: str = DEFAULT_PASSWORD) -> list[trio.SocketListener]:
        """Listen for inbound ESL clients (mod_event_socket's port 8021); returns the sockets
        (``port=0`` picks a free port: read it from ``listeners[0].socket.getsockname()``)."""

        async def handler(stream: trio.SocketStream) -> None:
            await self.attach_inbound(stream, password)

        async def serve(*, task_status: trio.TaskStatus[list[trio.SocketListener]]) -> None:
            with trio.CancelScope() as scope:
                self._inbound_scopes.append(scope)
                await trio.serve_tcp(handler, port, host=host, task_status=task_status)

        result: list[trio.SocketListener] = await self.nursery.start(serve)
        bound = int(result[0].socket.getsockname()[1])
        if bound not in self.inbound_ports:
            self.inbound_ports.append(bound)
        return result

    def stop_inbound(self) -> None:
        """The box goes down for inbound clients: its ports close, and so does every inbound
        connection (``serve_inbound(port=sim.inbound_ports[0])`` brings it back)."""
        for scope in self._inbound_scopes:
            scope.cancel()
        self._inbound_scopes.clear()

    def inbound_commands(self, name: str = "") -> list[str]:
        """Every command line the inbound clients sent, in order, those starting with
        ``name`` (``"bgapi originate"``) when given: what reached this box."""
        lines = [c.line for listener in self.inbound for c in listener.commands]
        return [line for line in lines if line.startswith(name)]

    # -- directory -------------------------------------------------------------------------

    def register(self, user: str, domain: str | None = None, *, ip: str = "192.0.2.60",
                 port: int = 5060) -> None:
        domain = domain or self.domain
        key = f"{user}@{domain}"
        self.directory.add(key)
        self.registrations[key] = {
            "reg_user": user, "realm": domain, "token": f"{self.new_uuid()[:16]}@{ip}",
            "url": f"sofia/internal/sip:{user}@{ip}:{port}",
            "expires": str(int(self.now()) + 3600), "network_ip": ip,
            "network_port": str(port), "network_proto": "udp",
            "hostname": self.factory.hostname, "metadata": "",
        }
        contact = f"\"{user}\" <sip:{user}@{ip}:{port}>"
        self.publish(self.factory.plain_event("CUSTOM", [
            ("Event-Subclass", "sofia::register"), ("profile-name", "internal"),
            ("from-user", user), ("from-host", domain), ("contact", contact),
            ("expires", "3600"), ("network-ip", ip), ("network-port", str(port)),
            ("username", user), ("realm", domain)]))

    def unregister(self, user: str, domain: str | None = None) -> None:
        domain = domain or self.domain
        if self.registrations.pop(f"{user}@{domain}", None) is not None:
            self.publish(self.factory.plain_event("CUSTOM", [
                ("Event-Subclass", "sofia::unregister"), ("profile-name", "internal"),
                ("from-user", user), ("from-host", domain), ("expires", "0")]))

    def registration_rows(self) -> list[dict[str, str]]:
        return list(self.registrations.values())


def _execute_message(cmd: ClientCommand) -> Message:
    arg = cmd.header("execute-app-arg")
    if arg is None and cmd.body:
        arg = cmd.body.decode("utf-8", "replace")
    loops_text = cmd.header("loops") or "1"
    loops = int(loops_text) if loops_text.lstrip("-").isdigit() else 1
    return Message(
        "execute", app=cmd.header("execute-app-name") or "", arg=arg or "",
        event_uuid=cmd.header("Event-UUID") or "", loops=loops, headers=cmd.headers,
    )


@asynccontextmanager
async def open_freeswitch_sim(**options: Any) -> AsyncIterator[FreeSwitchSim]:
    """Run a simulated FreeSWITCH for the duration of the block.

    Options are ``FreeSwitchSim`` fields (``latency``, ``domain``, ``endpoints``, ``media``…);
    ``media_peers=True`` adds the media peers (``_media``: unicast, mod_audio_stream).
    Leaving the block cancels everything still running (ringing legs, lingering sockets).
    """
    sims: list[FreeSwitchSim] = []
    try:
        async with trio.open_nursery() as nursery:
            sim = FreeSwitchSim(nursery, **options)
            sims.append(sim)
            try:
                if sim.media_peers:
                    await sim.start_media()
                yield sim
            finally:
                sim.closing = True
                nursery.cancel_scope.cancel()
    finally:
        for sim in sims:
            sim.close_media()


@asynccontextmanager
async def open_freeswitch_sims(count: int, **options: Any) -> AsyncIterator[list[FreeSwitchSim]]:
    """``count`` simulated FreeSWITCH boxes, each listening for inbound clients on a port of
    its own (``sim.inbound_ports[0]``), named ``box1``, ``box2``… (their hostname), sharing
    ``options``; ``esl_hosts(sims)`` writes them as ``ESL_HOST`` takes them."""
    async with AsyncExitStack() as stack:
        sims = [await stack.enter_async_context(
            open_freeswitch_sim(hostname=f"box{n}", **options)) for n in range(1, count + 1)]
        for sim in sims:
            await sim.serve_inbound()
        yield sims


def esl_hosts(sims: list[FreeSwitchSim]) -> str:
    """``ESL_HOST`` for these boxes: ``127.0.0.1:PORT1,127.0.0.1:PORT2``."""
    return ",".join(f"127.0.0.1:{sim.inbound_ports[0]}" for sim in sims)
