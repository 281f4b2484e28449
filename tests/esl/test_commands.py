"""Command writers: exact bytes, and hostile arguments never make two commands."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcontrol.esl import CommandArgumentError, commands


def test_exact_bytes_of_the_commands_we_send():
    assert commands.connect() == b"connect\n\n"
    assert commands.auth("ClueCon") == b"auth ClueCon\n\n"
    assert commands.myevents() == b"myevents plain\n\n"
    assert commands.linger() == b"linger\n\n"
    assert commands.linger(2) == b"linger 2\n\n"
    assert commands.nolinger() == b"nolinger\n\n"
    assert commands.noevents() == b"noevents\n\n"
    assert commands.exit_() == b"exit\n\n"
    assert commands.event("plain", ["CHANNEL_ANSWER", "CUSTOM", "mod_audio_stream::play"]) == (
        b"event plain CHANNEL_ANSWER CUSTOM mod_audio_stream::play\n\n"
    )
    assert commands.filter_add("Unique-ID", "abc-1") == b"filter Unique-ID abc-1\n\n"
    assert commands.filter_delete("Unique-ID", "abc-1") == b"filter delete Unique-ID abc-1\n\n"
    assert commands.api("uuid_kill", "b-1", "ORIGINATOR_CANCEL") == (
        b"api uuid_kill b-1 ORIGINATOR_CANCEL\n\n"
    )
    assert commands.bgapi("originate", "{a=1}user/1001@x &park()", job_uuid="j-1") == (
        b"bgapi originate {a=1}user/1001@x &park()\nJob-UUID: j-1\n\n"
    )
    assert commands.execute(
        "playback", "local_stream://moh", event_uuid="e-1", event_lock=True, loops=-1
    ) == (
        b"sendmsg\ncall-command: execute\nexecute-app-name: playback\n"
        b"execute-app-arg: local_stream://moh\nevent-lock: true\nloops: -1\nEvent-UUID: e-1\n\n"
    )
    assert commands.execute("answer", uuid="a-1", async_=True) == (
        b"sendmsg a-1\ncall-command: execute\nexecute-app-name: answer\nasync: true\n\n"
    )
    assert commands.hangup("USER_BUSY") == (
        b"sendmsg\ncall-command: hangup\nhangup-cause: USER_BUSY\n\n"
    )
    assert commands.unicast("127.0.0.1", 40000, "127.0.0.1", 40001) == (
        b"sendmsg\ncall-command: unicast\nlocal-ip: 127.0.0.1\nlocal-port: 40000\n"
        b"remote-ip: 127.0.0.1\nremote-port: 40001\ntransport: udp\n\n"
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: commands.api("uuid_kill", "x\nexit"),
        lambda: commands.api("uuid kill"),
        lambda: commands.bgapi("originate", "a", job_uuid="j\n"),
        lambda: commands.execute("playback", "/tmp/a.wav\r\n\r\napi shutdown"),
        lambda: commands.execute("play back"),
        lambda: commands.execute("answer", uuid="a b"),
        lambda: commands.filter_add("Unique-ID", "a b"),
        lambda: commands.event("plain", []),
        lambda: commands.event("yaml", ["ALL"]),
        lambda: commands.hangup("USER BUSY"),
        lambda: commands.linger(0),
        lambda: commands.execute("playback", loops=0),
        lambda: commands.unicast("127.0.0.1", 0, "127.0.0.1", 1),
        lambda: commands.auth("pw\n"),
        lambda: commands.api("status", "\x00"),
    ],
)
def test_framing_breaking_arguments_are_refused(build):
    with pytest.raises(CommandArgumentError):
        build()


def _command_count(data: bytes) -> int:
    """How many commands FreeSWITCH would read: blocks separated by a blank line."""
    text = data.replace(b"\r\n", b"\n")
    return len([block for block in text.split(b"\n\n") if block.strip()])


@given(st.text(max_size=200))
def test_hostile_text_never_produces_two_commands(value):
    for build in (
        lambda: commands.api("uuid_broadcast", value),
        lambda: commands.bgapi("originate", value),
        lambda: commands.execute("playback", value),
        lambda: commands.execute("playback", "x", uuid=value),
        lambda: commands.filter_add("Unique-ID", value),
        lambda: commands.hangup(value),
        lambda: commands.auth(value),
        lambda: commands.event("plain", [value]),
    ):
        try:
            data = build()
        except CommandArgumentError:
            continue
        assert _command_count(data) == 1
        assert data.endswith(b"\n\n")
        assert b"\r" not in data and b"\x00" not in data
