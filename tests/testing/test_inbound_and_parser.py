"""The inbound side, the TCP dialer, the command parser and the extracted templates."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import trio
import trio.testing

from callcontrol.esl import FrameReader, commands
from callcontrol.testing.freeswitch import (
    Answer,
    CommandParser,
    FreeSwitchSim,
    LocalStream,
    open_freeswitch_sim,
)
from callcontrol.testing.freeswitch._extract import extract
from tests.testing.esl_client import Client

ROOT = Path(__file__).parent.parent.parent


async def inbound(sim: FreeSwitchSim) -> Client:
    ours, theirs = trio.testing.memory_stream_pair()
    sim.nursery.start_soon(sim.attach_inbound, ours)
    client = Client(theirs)
    greeting = await client.next_frame()
    assert greeting.content_type == "auth/request"
    return client


async def test_inbound_auth_refused_then_closed(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        client = await inbound(sim)
        assert (await client.command(commands.auth("wrong"))).reply_text == "-ERR invalid"
        assert await client.until_closed() == []


async def test_inbound_api_registrations_channels_and_events(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        sim.endpoints["user/1001@pbx.example.com"] = Answer()
        client = await inbound(sim)
        assert (await client.command(commands.auth("ClueCon"))).reply_text == "+OK accepted"
        assert (await client.command(commands.api("status"))).body.startswith(b"UP 0 years")
        empty = await client.command(commands.api("show", "registrations", "as", "json"))
        assert empty.body == b'{"row_count": 0}\n'
        sim.register("1001", "pbx.example.com")
        rows = json.loads((await client.command(
            commands.api("show", "registrations", "as", "json"))).body)
        assert rows["row_count"] == 1
        assert rows["rows"][0]["reg_user"] == "1001"
        assert rows["rows"][0]["realm"] == "pbx.example.com"
        await client.command(commands.event("plain", ["CHANNEL_CREATE", "CHANNEL_ANSWER",
                                                      "BACKGROUND_JOB"]))
        await client.command(commands.filter_add("Unique-ID", "bbbb"))
        await client.command(commands.filter_add("Job-UUID", "job"))
        reply = await client.command(commands.bgapi(
            "originate", "{origination_uuid=bbbb}user/1001@pbx.example.com", "&park()",
            job_uuid="job"))
        assert reply.reply_text == "+OK Job-UUID: job"
        names = []
        while "BACKGROUND_JOB" not in names:
            frame = await client.next_frame()
            names.append(frame.event.name)
            if frame.event.name == "BACKGROUND_JOB":
                assert frame.event.get("Job-Owner-UUID") is None
        assert names == ["CHANNEL_CREATE", "CHANNEL_ANSWER", "BACKGROUND_JOB"]
        channels = json.loads((await client.command(
            commands.api("show", "channels", "as", "json"))).body)
        assert [row["uuid"] for row in channels["rows"]] == ["bbbb"]
        assert channels["rows"][0]["application"] == "park"
        assert (await client.command(commands.api("uuid_getvar", "bbbb", "nope"))).body == \
            b"_undef_"
        assert (await client.command(commands.api("uuid_exists", "zzz"))).body == b"false"
        assert (await client.command(commands.exit_())).reply_text == "+OK bye"
        notice = await client.until_closed()
        assert [f.headers.get("Controlled-Session-UUID") for f in notice] == [None]


async def test_inbound_version_modules_and_local_streams(autojump_clock: object) -> None:
    async with open_freeswitch_sim() as sim:
        client = await inbound(sim)
        await client.command(commands.auth("ClueCon"))

        async def api(*words: str) -> bytes:
            return (await client.command(commands.api(*words))).body

        assert await api("version") == (
            b"FreeSWITCH Version 1.10.12-release+git~20240802T210227Z~a88d069d6f~64bit "
            b"(git a88d069 2024-08-02 21:02:27Z 64bit)\n")
        assert await api("version", "short") == b"1.10.12\n"
        assert await api("module_exists", "mod_local_stream") == b"true"
        assert await api("module_exists", "mod_audio_stream") == b"false"
        assert await api("module_exists") == b"-ERR no reply\n"
        # a stock FusionPBX: Music on Hold's "default" category, no "moh"
        listed = (await api("local_stream", "show")).decode().splitlines()
        assert [line.split(",")[0] for line in listed] == [
            "default/8000", "default/16000", "default/32000", "default/48000"]
        assert listed[0] == "default/8000,/usr/share/freeswitch/sounds/music/default/8000"
        assert await api("local_stream", "show", "moh") == \
            b"-ERR Cannot locate local_stream moh!\n"
        shown = (await api("local_stream", "show", "default/16000")).decode()
        assert shown.startswith("default/16000\n  location: /usr/share/freeswitch/sounds/"
                                "music/default/16000\n  channels: 1\n  rate:     16000\n")
        assert "  samples:  320\n" in shown and shown.endswith("  reloading: false\n")

        sim.version = "1.8.7-release+git~20190702T200609Z~6047ebddfc~64bit"
        sim.local_streams = {"moh": LocalStream("/music", stopped=True)}
        assert (await api("version")).startswith(b"FreeSWITCH Version 1.8.7-release+git")
        assert await api("local_stream", "show") == b"moh,/music\n"
        assert await api("local_stream", "show", "moh") == \
            b"-ERR Cannot locate local_stream moh!\n"  # stopped: not located
        sim.local_streams = {}
        assert await api("local_stream", "show") == b"-ERR no reply\n"
        sim.modules.discard("mod_local_stream")
        assert await api("module_exists", "mod_local_stream") == b"false"
        assert await api("local_stream", "show") == \
            b"-ERR local_stream Command not found!\n"


async def test_place_call_over_tcp() -> None:
    received: list[bytes] = []

    async def server(stream: trio.SocketStream) -> None:
        reader = FrameReader()
        await stream.send_all(commands.connect())
        while (frame := reader.next_frame()) is None:
            reader.feed(await stream.receive_some(65536))
        received.append(frame.event.name.encode())
        await stream.send_all(commands.exit_())
        while await stream.receive_some(65536):
            pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, server, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with open_freeswitch_sim() as sim:
            call = await sim.place_call("127.0.0.1", port, caller_number="1000",
                                        destination_number="5000")
            await call.wait_closed()
            assert [c.verb for c in call.commands] == ["connect", "exit"]
        nursery.cancel_scope.cancel()
    assert received == [b"CHANNEL_DATA"]


def test_parser_accepts_crlf_blank_lines_and_bodies() -> None:
    parser = CommandParser()
    data = (b"\r\n\napi status\r\n\r\nsendmsg\r\ncall-command: execute\r\n"
            b"execute-app-name: playback\r\ncontent-length: 5\r\n\r\nhello"
            b"bgapi originate x\nJob-UUID: j\n\n")
    commands_seen = []
    for i in range(0, len(data), 7):  # any chunking gives the same commands
        parser.feed(data[i : i + 7])
        commands_seen.extend(parser)
    assert [c.line for c in commands_seen] == ["api status", "sendmsg", "bgapi originate x"]
    assert commands_seen[1].header("Execute-App-Name") == "playback"
    assert commands_seen[1].body == b"hello"
    assert commands_seen[2].header("job-uuid") == "j"


def test_templates_are_extracted_from_the_traces() -> None:
    stored = json.loads((ROOT / "callcontrol/testing/data/esl_templates.json").read_text())
    # callcontrol/ holds this server's own calls, kept to check the simulator against, and
    # replay/ its calls against the simulator itself; the templates come from the protocol
    # experiments only, so adding a call does not move them.
    traces = ROOT / "tests/data/traces"
    ours = {traces / "callcontrol", traces / "replay"}
    fresh = extract(p for p in traces.rglob("*.jsonl") if p.parent not in ours)
    assert json.loads(json.dumps(fresh)) == stored
