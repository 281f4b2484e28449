"""The simulator's media peers wired to its channels: real UDP and real websockets on 127.0.0.1.

The peers pace on the trio clock and talk over real sockets, so these tests run on the real
clock, each bounded by a short ``trio.fail_after``, and wait for the frame, event or state
that proves a point (the only timed waits check that nothing more arrives).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import trio
import trio.testing
import trio_websocket

from callcontrol.esl import Event, Frame, commands
from callcontrol.testing.freeswitch import (
    Answer,
    CallerAudio,
    ChannelMedia,
    FreeSwitchSim,
    SimCall,
    Unicast,
    open_freeswitch_sim,
)
from callcontrol.testing.media_peers import goertzel_level
from tests.testing.esl_client import Client

TRACES = Path(__file__).parent.parent / "data" / "traces" / "media"
A_EVENTS = ["CHANNEL_ANSWER", "CHANNEL_HANGUP", "CHANNEL_PARK", "CHANNEL_UNPARK",
            "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_BRIDGE", "BACKGROUND_JOB"]
STREAM_EVENTS = ["CUSTOM", "mod_audio_stream::connect", "mod_audio_stream::disconnect",
                 "mod_audio_stream::error", "mod_audio_stream::json", "mod_audio_stream::play"]
LIMIT = 5.0  # seconds of real time any one test may take


def pcm_tone(freq: float, seconds: float, rate: int = 8000, amplitude: int = 8000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()


@pytest.fixture
async def sim() -> AsyncIterator[FreeSwitchSim]:
    async with open_freeswitch_sim(media_peers=True) as s:
        yield s


async def dial(sim: FreeSwitchSim, **kwargs: object) -> tuple[SimCall, Client]:
    """A call connected the way the product connects, answered and parked."""
    ours, theirs = trio.testing.memory_stream_pair()
    call = sim.attach_outbound(ours, **kwargs)  # type: ignore[arg-type]
    client = Client(theirs)
    await client.command(commands.connect())
    await client.command(commands.linger())
    await client.command(commands.event("plain", A_EVENTS))
    await client.command(commands.filter_add("Unique-ID", call.uuid))
    # On the real clock the socket app's park (1 ms after connect) may beat the subscription.
    await sim.wait_for(lambda: call.parked)
    await client.command(commands.execute("answer", event_lock=True))
    await next_event(client, "CHANNEL_EXECUTE_COMPLETE")
    return call, client


async def next_event(client: Client, name: str, subclass: str | None = None) -> Event:
    while True:
        frame = await client.next_frame()
        if frame.is_event and frame.event.name == name and (
                subclass is None or frame.event.get("Event-Subclass") == subclass):
            return frame.event


def state(call: SimCall) -> Unicast:
    return call.unicast


def media_of(call: SimCall) -> ChannelMedia:
    assert call.media is not None
    return call.media


async def udp_socket() -> trio.socket.SocketType:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    return sock


async def free_udp_port() -> int:
    with await udp_socket() as sock:
        port: int = sock.getsockname()[1]
    return port


async def receive(sock: trio.socket.SocketType, n: int) -> list[tuple[bytes, tuple[str, int]]]:
    out: list[tuple[bytes, tuple[str, int]]] = []
    while len(out) < n:
        data, addr = await sock.recvfrom(65536)
        out.append((data, addr))
    return out


async def drain_then_silent(sock: trio.socket.SocketType, quiet: float = 0.12) -> int:
    """Read what is already queued, then require ``quiet`` seconds without a datagram."""
    drained = 0
    while True:
        with trio.move_on_after(quiet) as scope:
            await sock.recvfrom(65536)
        if scope.cancelled_caught:
            return drained
        drained += 1


async def arm(client: Client, local_port: int, remote_port: int) -> Frame:
    return await client.command(commands.unicast("127.0.0.1", local_port,
                                                 "127.0.0.1", remote_port))


# --- native unicast ---------------------------------------------------------------------------


async def test_unicast_after_park_streams_caller_audio_and_records_what_is_heard(
        sim: FreeSwitchSim) -> None:
    with trio.fail_after(LIMIT):
        call, client = await dial(sim, caller_audio=440)
        media = media_of(call)
        assert media.arms == [] and not media.streaming
        with await udp_socket() as ours:
            local = await free_udp_port()
            reply = await arm(client, local, ours.getsockname()[1])
            assert reply.reply_text == "+OK"
            assert call.unicast is Unicast.ARMED
            frames = await receive(ours, 10)
            # PCMU leg without flags: L16 at the read rate, 320 B per 20 ms, from local-port.
            assert {len(d) for d, _ in frames} == {320}
            assert {a for _, a in frames} == {("127.0.0.1", local)}
            caller = b"".join(d for d, _ in frames)
            assert goertzel_level(caller, 8000, 440) > 7000
            assert media.streaming and media.arms == [(local, ours.getsockname()[1])]

            # What we send to local-port is what the caller hears.
            said = pcm_tone(1000, 0.2)
            for i in range(0, len(said), 320):
                await ours.sendto(said[i:i + 320], ("127.0.0.1", local))
            await media.wait_for(lambda: len(media.heard) >= 10)
            assert media.heard_pcm() == said
            assert goertzel_level(media.heard_pcm(), 8000, 1000) > 7000
        # The real switch fires nothing for unicast.
        assert "CUSTOM" not in client.events()


async def test_native_flag_sends_the_codec_bytes(sim: FreeSwitchSim) -> None:
    with trio.fail_after(LIMIT):
        call, client = await dial(sim, caller_audio=CallerAudio.tone(440))
        with await udp_socket() as ours:
            local = await free_udp_port()
            await client.command(commands.unicast("127.0.0.1", local, "127.0.0.1",
                                                  ours.getsockname()[1], native=True))
            frames = await receive(ours, 3)
            assert {len(d) for d, _ in frames} == {160}  # raw PCMU
            assert media_of(call).line_format.encoding == "pcmu"


async def test_ending_playback_tears_unicast_down_and_same_park_rearm_is_dead(
        sim: FreeSwitchSim) -> None:
    with trio.fail_after(LIMIT):
        call, client = await dial(sim)
        media = media_of(call)
        with await udp_socket() as ours:
            local = await free_udp_port()
            await arm(client, local, ours.getsockname()[1])
            await receive(ours, 3)
            await client.command(commands.execute("playback", "tone_stream://%(200,0,440)",
                                                  event_uuid="pb"))
            await next_event(client, "CHANNEL_EXECUTE")
            assert media.unicast.playing
            done = await next_event(client, "CHANNEL_EXECUTE_COMPLETE")
            assert done["Application-Response"] == "FILE PLAYED"
            assert call.unicast is Unicast.DEAD and not media.streaming
            await drain_then_silent(ours)  # frames stopped
            assert media.playbacks[-1].response == "FILE PLAYED"

            # A second unicast in the same park: taken (+OK) but never streams.
            reply = await arm(client, await free_udp_port(), ours.getsockname()[1])
            assert reply.reply_text == "+OK"
            assert call.unicast is Unicast.DEAD
            await media.wait_for(lambda: len(media.arms) == 2)
            assert not media.streaming
            assert await drain_then_silent(ours) == 0


async def test_rearm_after_uuid_transfer_park_inline(sim: FreeSwitchSim) -> None:
    with trio.fail_after(LIMIT):
        call, client = await dial(sim, caller_audio=440)
        media = media_of(call)
        with await udp_socket() as ours:
            remote = ours.getsockname()[1]
            await arm(client, await free_udp_port(), remote)
            await receive(ours, 2)
            await client.command(commands.execute("playback", "local_stream://moh"))
            await next_event(client, "CHANNEL_EXECUTE")
            reply = await client.command(commands.api("uuid_transfer", call.uuid, "park",
                                                      "inline"))
            assert reply.body == b"+OK\n"
            # Sent between the transfer and CHANNEL_PARK: lost, nothing is created.
            await arm(client, await free_udp_port(), remote)
            assert state(call) is Unicast.LOST
            await next_event(client, "CHANNEL_UNPARK")
            assert not media.streaming
            await next_event(client, "CHANNEL_PARK")
            assert len(media.arms) == 1
            await drain_then_silent(ours)
            local = await free_udp_port()
            await arm(client, local, remote)
            assert state(call) is Unicast.ARMED
            frames = await receive(ours, 5)
            assert {a for _, a in frames} == {("127.0.0.1", local)}
            assert media.streaming and len(media.arms) == 2
            assert goertzel_level(b"".join(d for d, _ in frames), 8000, 440) > 7000


async def test_bridge_tears_unicast_down_and_park_after_bridge_rearms(
        sim: FreeSwitchSim) -> None:
    sim.endpoints["user/1001@pbx.example.com"] = Answer()
    with trio.fail_after(LIMIT):
        call, client = await dial(sim, caller_audio=440)
        media = media_of(call)
        await client.command(commands.api("originate",
                                          "{origination_uuid=bbbb}user/1001@pbx.example.com",
                                          "&park()"))
        await client.command(commands.api("uuid_setvar", call.uuid, "park_after_bridge",
                                          "true"))
        with await udp_socket() as ours:
            remote = ours.getsockname()[1]
            await arm(client, await free_udp_port(), remote)
            await receive(ours, 2)
            reply = await client.command(commands.api("uuid_bridge", call.uuid, "bbbb"))
            assert reply.body == b"+OK bbbb\n"
            await next_event(client, "CHANNEL_BRIDGE")
            assert not media.streaming
            await drain_then_silent(ours)
            # Sent while bridged: nothing services it.
            await arm(client, await free_udp_port(), remote)
            assert await drain_then_silent(ours) == 0
            await sim.leg("bbbb").hangup()
            await next_event(client, "CHANNEL_PARK")
            local = await free_udp_port()
            await arm(client, local, remote)
            frames = await receive(ours, 3)
            assert {a for _, a in frames} == {("127.0.0.1", local)} and media.streaming


async def test_hangup_stops_unicast_and_frees_the_port(sim: FreeSwitchSim) -> None:
    with trio.fail_after(LIMIT):
        call, client = await dial(sim)
        media = media_of(call)
        with await udp_socket() as ours:
            local = await free_udp_port()
            await arm(client, local, ours.getsockname()[1])
            await receive(ours, 2)
            await call.hangup()
            assert not media.streaming
            await drain_then_silent(ours)
        assert media.unicast.teardowns == 1
        await trio.testing.wait_all_tasks_blocked()
        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as again:
            await again.bind(("127.0.0.1", local))  # the peer's port is free again


async def test_caller_says_queued_speech_once_then_silence(sim: FreeSwitchSim) -> None:
    with trio.fail_after(LIMIT):
        call, client = await dial(sim)
        media = media_of(call)
        speech = pcm_tone(660, 0.1)
        utterance = media.say(speech)
        with await udp_socket() as ours:
            await arm(client, await free_udp_port(), ours.getsockname()[1])
            frames = await receive(ours, 7)
            await utterance.done.wait()
            got = b"".join(d for d, _ in frames)
            assert got[:len(speech)] == speech
            assert got[len(speech):] == b"\x00" * (len(got) - len(speech))
            assert utterance.started is not None and utterance.finished is not None


# --- mod_audio_stream -------------------------------------------------------------------------


class WsServer:
    """A test websocket server: records what each connection sent, can answer and close."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.binary: list[bytes] = []
        self.connected = trio.Event()
        self.closed = trio.Event()
        self.close_reason: tuple[int, str | None] | None = None
        self.ws: trio_websocket.WebSocketConnection | None = None
        self.frames_seen = trio.Event()
        self.port = 0

    async def handler(self, request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        self.ws = ws
        self.connected.set()
        try:
            while True:
                message = await ws.get_message()
                if isinstance(message, bytes):
                    self.binary.append(message)
                    if len(self.binary) >= 5:
                        self.frames_seen.set()
                else:
                    self.texts.append(message)
        except trio_websocket.ConnectionClosed as exc:
            if exc.reason is not None:
                self.close_reason = (exc.reason.code, exc.reason.reason)
        finally:
            self.closed.set()

    async def serve(self, nursery: trio.Nursery) -> None:
        server = await nursery.start(trio_websocket.serve_websocket, self.handler,
                                     "127.0.0.1", 0, None)
        self.port = server.port


async def start_stream(client: Client, call: SimCall, url: str, rate: str = "16k",
                       metadata: str = '{"callId":"x"}') -> Frame:
    return await client.command(commands.api("uuid_audio_stream", call.uuid, "start", url,
                                             "mono", rate, metadata))


async def test_audio_stream_frames_play_event_and_file_playback(
        sim: FreeSwitchSim, nursery: trio.Nursery) -> None:
    server = WsServer()
    await server.serve(nursery)
    with trio.fail_after(LIMIT):
        call, client = await dial(sim, caller_audio=440)
        await client.command(commands.event("plain", STREAM_EVENTS))
        reply = await start_stream(client, call, f"ws://127.0.0.1:{server.port}/ws")
        assert reply.body == b"+OK Success\n"
        connect = await next_event(client, "CUSTOM", "mod_audio_stream::connect")
        assert connect.unique_id == call.uuid
        assert connect.body_text == '{"status":"connected"}'
        await server.frames_seen.wait()
        assert server.texts[0] == '{"callId":"x"}'
        assert {len(b) for b in server.binary} == {640}  # 20 ms of 16 kHz s16le
        assert goertzel_level(b"".join(server.binary), 16000, 440) > 7000
        assert media_of(call).audio_stream_active

        # The model's audio: streamAudio → ::play with the temp file → playback of it.
        audio = pcm_tone(880, 0.3, rate=16000)
        assert server.ws is not None
        await server.ws.send_message(json.dumps({"type": "streamAudio", "data": {
            "audioDataType": "raw", "sampleRate": 16000,
            "audioData": base64.b64encode(audio).decode(), "extra": "kept"}}))
        play = await next_event(client, "CUSTOM", "mod_audio_stream::play")
        assert play.unique_id == call.uuid
        body = json.loads(play.body_text)
        assert body["extra"] == "kept" and body["file"].endswith(f"{call.uuid}_0.tmp.r16")
        await client.command(commands.execute("playback", body["file"], event_uuid="p1"))
        started = trio.current_time()
        await next_event(client, "CHANNEL_EXECUTE")
        done = await next_event(client, "CHANNEL_EXECUTE_COMPLETE")
        elapsed = trio.current_time() - started
        assert done["Application-Response"] == "FILE PLAYED"
        assert 0.3 <= elapsed < 0.3 + 0.25
        played = media_of(call).playbacks[-1]
        assert played.path == body["file"] and played.rate == 16000
        assert played.pcm == audio
        assert abs(len(played.heard_pcm()) - len(audio)) <= 2 * 16000 * 0.03

        # Plain text from the server → ::json with that body.
        await server.ws.send_message('{"type":"hello","x":1}')
        event = await next_event(client, "CUSTOM", "mod_audio_stream::json")
        assert event.body_text == '{"type":"hello","x":1}'

        # send_text goes to the server; stop closes 1000 and blocks until TCP is closed.
        reply = await client.command(commands.api("uuid_audio_stream", call.uuid, "send_text",
                                                  "'{\"note\": \"from fs\"}'"))
        assert reply.body == b"+OK Success\n"
        reply = await client.command(commands.api("uuid_audio_stream", call.uuid, "stop"))
        assert reply.body == b"+OK Success\n"
        assert server.closed.is_set() and server.close_reason == (1000, "Normal closure")
        assert '{"note": "from fs"}' in server.texts
        assert not await trio.Path(body["file"]).exists()  # temp files deleted
        assert not media_of(call).audio_stream_active
        reply = await client.command(commands.api("uuid_audio_stream", call.uuid, "stop"))
        assert reply.body == b"-ERR Operation Failed\n"


@pytest.mark.xfail(strict=True, reason=(
    "media_peers.AudioStreamPeer: trio_websocket closes TCP from the client side after the "
    "closing handshake, so stop returns then, not when the server closes TCP (m2c)"))
async def test_stop_blocks_the_socket_until_the_server_closes_tcp(
        sim: FreeSwitchSim, nursery: trio.Nursery) -> None:
    hold = trio.Event()

    async def lazy_server(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.get_message()
        except trio_websocket.ConnectionClosed:
            pass
        await hold.wait()  # the handshake is done; TCP stays open until this returns

    server = await nursery.start(trio_websocket.serve_websocket, lazy_server, "127.0.0.1", 0,
                                 None)
    with trio.fail_after(LIMIT):
        call, client = await dial(sim)
        await client.command(commands.event("plain", STREAM_EVENTS))
        await start_stream(client, call, f"ws://127.0.0.1:{server.port}/ws")
        await next_event(client, "CUSTOM", "mod_audio_stream::connect")
        await client.send(commands.api("uuid_audio_stream", call.uuid, "stop"))
        with trio.move_on_after(0.3):
            await client.reply()
            pytest.fail("stop returned while the server held TCP open")
        hold.set()
        reply = await client.reply()
        assert reply.body == b"+OK Success\n"


async def test_audio_stream_error_disconnect_and_hangup(
        sim: FreeSwitchSim, nursery: trio.Nursery) -> None:
    with trio.fail_after(LIMIT):
        call, client = await dial(sim)
        await client.command(commands.event("plain", STREAM_EVENTS))

        # Nothing listening: +OK Success, then ::error code 6.
        reply = await start_stream(client, call, f"ws://127.0.0.1:{await free_tcp_port()}/x")
        assert reply.body == b"+OK Success\n"
        error = await next_event(client, "CUSTOM", "mod_audio_stream::error")
        assert json.loads(error.body_text)["message"]["code"] == 6

        # Replies of the module for bad requests.
        http = await client.command(commands.api("uuid_audio_stream", call.uuid, "start",
                                                 "http://127.0.0.1:1/", "mono", "8k"))
        assert http.body == b"-ERR Operation Failed\n"
        upper = await client.command(commands.api("uuid_audio_stream", call.uuid, "start",
                                                  "ws://127.0.0.1:1/", "MONO", "8k"))
        assert upper.body == b"-ERR no reply\n"

        # Server-initiated close 4001: ::disconnect; the bug stays attached until stop.
        server = WsServer()
        await server.serve(nursery)
        await start_stream(client, call, f"ws://127.0.0.1:{server.port}/ws", rate="8k")
        await next_event(client, "CUSTOM", "mod_audio_stream::connect")
        await server.connected.wait()
        assert server.ws is not None
        await server.ws.aclose(4001, "server bye")
        event = await next_event(client, "CUSTOM", "mod_audio_stream::disconnect")
        assert json.loads(event.body_text) == {
            "status": "disconnected", "message": {"code": 4001, "reason": "server bye"}}
        again = await start_stream(client, call, f"ws://127.0.0.1:{server.port}/ws")
        assert again.body == b"-ERR Operation Failed\n"  # bug already attached
        assert (await client.command(commands.api("uuid_audio_stream", call.uuid, "stop"))
                ).body == b"+OK Success\n"

        # Caller hangup: Close 1000, no CUSTOM event.
        server2 = WsServer()
        await server2.serve(nursery)
        await start_stream(client, call, f"ws://127.0.0.1:{server2.port}/ws", rate="8k")
        await next_event(client, "CUSTOM", "mod_audio_stream::connect")
        await server2.frames_seen.wait()
        assert {len(b) for b in server2.binary} == {320}
        await call.hangup()
        await server2.closed.wait()
        assert server2.close_reason == (1000, "Normal closure")
        frames = [await client.next_frame()]
        while frames[-1].content_type != "text/disconnect-notice":  # the linger notice
            frames.append(await client.next_frame())
        assert "CUSTOM" not in [f.event.name for f in frames if f.is_event]


async def free_tcp_port() -> int:
    sock = trio.socket.socket()
    with sock:
        await sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_uuid_audio_stream_is_not_found_without_the_module() -> None:
    async with open_freeswitch_sim() as sim:
        with trio.fail_after(LIMIT):
            call, client = await dial(sim)
            assert call.media is None
            reply = await client.command(commands.api("uuid_audio_stream", call.uuid, "stop"))
            assert reply.body == b"-ERR uuid_audio_stream Command not found!\n"


async def test_custom_event_headers_match_the_recording(
        sim: FreeSwitchSim, nursery: trio.Nursery) -> None:
    recorded: set[str] = set()
    for line in (TRACES / "m1_audio_stream_play_broadcast_hangup.inbound.jsonl"
                 ).read_text().splitlines()[1:]:
        rec = json.loads(line)
        data = rec.get("data") or ""
        if rec["dir"] == "recv" and "mod_audio_stream%3A%3Aconnect" in data:
            head = data.split("\n\n", 1)[1]
            recorded = {h.split(":", 1)[0] for h in head.split("\n") if ": " in h}
            break
    assert recorded
    server = WsServer()
    await server.serve(nursery)
    profile = {"name": "loopback/9000-b", "source": "mod_loopback", "username": "",
               "network_addr": "", "callee_id_name": "Outbound Call",
               "callee_id_number": "default", "context": "default", "read_codec": "L16"}
    with trio.fail_after(LIMIT):
        call, client = await dial(sim, profile=profile, caller_name="")
        await client.command(commands.event("plain", STREAM_EVENTS))
        await start_stream(client, call, f"ws://127.0.0.1:{server.port}/ws")
        connect = await next_event(client, "CUSTOM", "mod_audio_stream::connect")
    ours = {n for n, _ in connect.headers.raw_items()}

    def strip(names: set[str]) -> set[str]:
        return {n for n in names if not n.startswith("variable_")}

    assert strip(ours) == strip(recorded)
    assert next(iter(connect.headers.raw_items()))[0] == "Event-Subclass"
    assert connect["Event-Calling-File"] == "mod_audio_stream.c"
