"""A tiny FreeSWITCH for the media tests: one parked channel on an in-memory ESL stream.

It answers commands like FreeSWITCH 1.10 and emits the few events media cares about (playback
EXECUTE/COMPLETE, UNPARK/PARK on ``uuid_transfer … park inline``, BRIDGE, CUSTOM
mod_audio_stream), and drives the media peers through their hooks the way the simulator should.
Independent of callcontrol.testing.freeswitch on purpose: these tests pin the transports alone.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Sequence

import attrs
import trio
import trio.lowlevel
import trio.testing

from callcontrol.esl import Event, FrameReader, serialize
from callcontrol.esl.connection import EslConnection
from callcontrol.esl.outbound import OutboundCall
from callcontrol.testing.media_peers import AudioStreamPeer, UnicastPeer, audio_file_seconds

A_UUID = "a1a1a1a1-0000-4000-8000-00000000000a"


def channel_event(codec: str = "L16", rate: int = 8000, uuid: str = A_UUID) -> Event:
    pairs = [
        ("Event-Name", "CHANNEL_DATA"),
        ("Unique-ID", uuid),
        ("Channel-Read-Codec-Name", codec),
        ("Channel-Read-Codec-Rate", str(rate)),
    ]
    return Event.from_plain(serialize.event_plain_text(pairs))


@attrs.define(eq=False)
class Playback:
    arg: str
    app_uuid: str
    started: float
    done: trio.Event = attrs.field(factory=trio.Event)
    ended: float | None = None
    response: str = "FILE PLAYED"


class FakeSwitch:
    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        uuid: str = A_UUID,
        unicast: UnicastPeer | None = None,
        audio: AudioStreamPeer | None = None,
        playback_seconds: float = 0.2,
        reply_delays: dict[str, float] | None = None,
    ) -> None:
        self.stream = stream
        self.uuid = uuid
        self.unicast = unicast
        self.audio = audio
        self.playback_seconds = playback_seconds
        # A loaded switch answering some commands late: "unicast" (the sendmsg) or an api name.
        self.reply_delays = reply_delays or {}
        self.reader = FrameReader()
        self.commands: list[str] = []
        self.playbacks: list[Playback] = []
        self.current: Playback | None = None
        self.in_transit = False
        self._buffer = b""
        self._send_lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self.command_seen = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                command = await self._read_command()
                if command is None:
                    nursery.cancel_scope.cancel()
                    return
                self.commands.append(command)
                self.command_seen.set()
                self.command_seen = trio.Event()
                await self._handle(command)

    async def _read_command(self) -> str | None:
        while b"\n\n" not in self._buffer:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self._buffer += data
        block, _, self._buffer = self._buffer.partition(b"\n\n")
        return block.decode()

    async def send(self, data: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(data)

    async def event(self, name: str, extra: Sequence[tuple[str, str]] = (),
                    body: bytes | None = None) -> None:
        pairs = [("Event-Name", name), ("Unique-ID", self.uuid), *extra]
        await self.send(serialize.event_plain(pairs, body))

    def emit_custom(self, subclass: str, uuid: str, body: str) -> None:
        """The AudioStreamPeer's ``emit`` hook."""
        assert self._nursery is not None
        pairs = [("Event-Subclass", subclass), ("Event-Name", "CUSTOM"), ("Unique-ID", uuid)]
        self._nursery.start_soon(self.send, serialize.event_plain(pairs, body.encode()))

    # -- commands ----------------------------------------------------------------------------

    async def _handle(self, command: str) -> None:
        first, *lines = command.split("\n")
        headers = dict(line.split(": ", 1) for line in lines if ": " in line)
        assert self._nursery is not None
        if first.startswith("sendmsg"):
            what = headers.get("call-command")
            await trio.sleep(self.reply_delays.get(what or "", 0))
            await self.send(serialize.command_reply("+OK"))
            if what == "unicast":
                self._unicast(headers)
            elif what == "execute" and headers.get("execute-app-name") == "playback":
                self._nursery.start_soon(
                    self._playback, headers["execute-app-arg"], headers.get("Event-UUID", "")
                )
        elif first.startswith("api "):
            await trio.sleep(self.reply_delays.get(first[4:].partition(" ")[0], 0))
            await self.send(serialize.api_response(await self._api(first[4:])))
        elif first.startswith("bgapi "):
            job = headers.get("Job-UUID") or str(uuid_module.uuid4())
            await self.send(serialize.bgapi_reply(job))
            self._nursery.start_soon(self._bgapi, first[6:], job)
        else:
            await self.send(serialize.command_reply("+OK"))

    async def _bgapi(self, line: str, job: str) -> None:
        output = await self._api(line)
        pairs = [("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", job),
                 ("Job-Owner-UUID", self.uuid)]
        await self.send(serialize.event_plain(pairs, output.encode()))

    async def _api(self, line: str) -> str:
        name, _, args = line.partition(" ")
        if name == "uuid_break":
            if self.current is not None:
                self.current.response = "FILE PLAYED"
                self.current.done.set()
            return "+OK\n"
        if name == "uuid_transfer":
            assert self._nursery is not None
            self._nursery.start_soon(self._transfer_to_park)
            return "+OK\n"
        if name == "uuid_audio_stream" and self.audio is not None:
            return await self.audio.api(args)
        return "+OK\n"

    def _unicast(self, h: dict[str, str]) -> None:
        if self.unicast is None or self.in_transit:
            return  # between a transfer and its CHANNEL_PARK the unicast is lost
        self.unicast.on_unicast(
            h["local-ip"], int(h["local-port"]), h["remote-ip"], int(h["remote-port"])
        )

    async def _playback(self, arg: str, app_uuid: str) -> None:
        pb = Playback(arg, app_uuid, trio.current_time())
        self.playbacks.append(pb)
        self.current = pb
        app = [("Application", "playback"), ("Application-Data", arg),
               ("Application-UUID", app_uuid)]
        await self.event("CHANNEL_EXECUTE", app)
        if self.unicast is not None:
            self.unicast.on_playback_start()
        seconds = self.playback_seconds
        if arg.startswith("/") and ".tmp." in arg:
            seconds = audio_file_seconds(arg)
        with trio.move_on_after(seconds):
            await pb.done.wait()
        pb.ended = trio.current_time()
        self.current = None
        if self.unicast is not None:
            self.unicast.on_playback_end()
        await self.event("CHANNEL_EXECUTE_COMPLETE",
                         [*app, ("Application-Response", pb.response)])

    async def _transfer_to_park(self) -> None:
        await trio.sleep(0.001)
        if self.current is not None:
            self.current.response = "PLAYBACK ERROR"
            self.current.done.set()
            await trio.lowlevel.checkpoint()
        self.in_transit = True
        await self.event("CHANNEL_UNPARK")
        if self.unicast is not None:
            self.unicast.on_teardown()
        await trio.sleep(0.005)
        await self.event("CHANNEL_EXECUTE", [("Application", "park")])
        self.in_transit = False
        if self.unicast is not None:
            self.unicast.on_park()
        await self.event("CHANNEL_PARK")

    async def bridge(self) -> None:
        await self.event("CHANNEL_UNPARK")
        if self.unicast is not None:
            self.unicast.on_teardown()
        await self.event("CHANNEL_BRIDGE", [("Other-Leg-Unique-ID", "b" * 8)])

    async def unbridge_to_park(self) -> None:
        await self.event("CHANNEL_UNBRIDGE")
        if self.unicast is not None:
            self.unicast.on_park()
        await self.event("CHANNEL_PARK")

    async def hangup(self) -> None:
        if self.unicast is not None:
            self.unicast.on_teardown()
        if self.audio is not None:
            self.audio.on_hangup(self.uuid)
        await self.event("CHANNEL_HANGUP", [("Hangup-Cause", "NORMAL_CLEARING")])


async def open_call(
    nursery: trio.Nursery, codec: str = "L16", rate: int = 8000, **switch_kwargs: object
) -> tuple[OutboundCall, FakeSwitch]:
    ours, theirs = trio.testing.memory_stream_pair()
    conn = EslConnection(ours, reply_timeout=5)
    await nursery.start(conn.run)
    switch = FakeSwitch(theirs, **switch_kwargs)  # type: ignore[arg-type]
    await nursery.start(switch.run)
    return OutboundCall(conn, channel_event(codec, rate, switch.uuid)), switch
