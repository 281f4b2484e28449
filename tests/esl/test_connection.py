"""The trio connection: reply correlation, jobs, executes, subscribers, failure."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from callcontrol.esl import ConnectionClosed, FrameReader, commands, serialize
from callcontrol.esl.connection import EslConnection, SubscriberOverflow


class Peer:
    """The FreeSWITCH end of an in-memory stream: reads commands, writes frames."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    async def command(self) -> bytes:
        while b"\n\n" not in self.buffer:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            self.buffer += data
        block, _, self.buffer = self.buffer.partition(b"\n\n")
        return block + b"\n\n"

    async def send(self, *frames: bytes) -> None:
        await self.stream.send_all(b"".join(frames))


@pytest.fixture
async def pair(nursery):
    ours, theirs = trio.testing.memory_stream_pair()
    conn = EslConnection(ours, reply_timeout=5)
    await nursery.start(conn.run)
    return conn, Peer(theirs)


def event(name: str, uid: str, **headers: str) -> bytes:
    return serialize.event_plain([("Event-Name", name), ("Unique-ID", uid), *headers.items()])


async def test_replies_are_matched_to_commands_in_order(pair, nursery):
    conn, peer = pair
    results: dict[str, str] = {}

    async def ask(name: str) -> None:
        results[name] = await conn.api("echo", name)

    for name in ("one", "two", "three"):
        nursery.start_soon(ask, name)
    sent = [await peer.command() for _ in range(3)]
    # answer each command with its own argument, in the order they were written
    for cmd in sent:
        await peer.send(serialize.api_response(cmd.split()[2].decode()))
    while len(results) < 3:
        await trio.testing.wait_all_tasks_blocked()
    assert results == {"one": "one", "two": "two", "three": "three"}


async def test_bgapi_result_arrives_by_job_uuid_even_among_other_events(pair, nursery):
    conn, peer = pair
    job_holder = []

    async def start_job():
        job_holder.append(await conn.bgapi("originate", "user/1001@x &park()", job_uuid="j-42"))

    nursery.start_soon(start_job)
    cmd = await peer.command()
    assert cmd == b"bgapi originate user/1001@x &park()\nJob-UUID: j-42\n\n"
    await peer.send(serialize.bgapi_reply("j-42"))
    await trio.testing.wait_all_tasks_blocked()
    job = job_holder[0]
    assert not job.done
    await peer.send(
        serialize.event_plain([("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "other")], b"+OK\n"),
        serialize.event_plain(
            [("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "j-42"), ("Job-Owner-UUID", "a")],
            b"-ERR USER_BUSY\n",
        ),
    )
    result = await job.result()
    assert result.body_text == "-ERR USER_BUSY\n"


async def test_execute_completes_on_its_own_application_uuid(pair, nursery):
    conn, peer = pair
    holder = []

    async def run():
        holder.append(await conn.execute("playback", "local_stream://moh"))

    nursery.start_soon(run)
    cmd = await peer.command()
    app_uuid = cmd.split(b"Event-UUID: ")[1].split(b"\n")[0].decode()
    await peer.send(serialize.command_reply("+OK"))
    await trio.testing.wait_all_tasks_blocked()
    execution = holder[0]
    await peer.send(
        event("CHANNEL_EXECUTE_COMPLETE", "a", **{"Application-UUID": "someone-else"}),
        event(
            "CHANNEL_EXECUTE_COMPLETE",
            "a",
            **{"Application-UUID": app_uuid, "Application-Response": "FILE PLAYED"},
        ),
    )
    done = await execution.completed()
    assert done.application_uuid == app_uuid
    assert execution.response == "FILE PLAYED"


async def test_subscribers_get_their_channel_only(pair):
    conn, peer = pair
    async with conn.subscribe("a") as a_events, conn.subscribe("b") as b_events:
        await peer.send(event("CHANNEL_ANSWER", "b"), event("CHANNEL_HANGUP", "a"))
        assert (await a_events.receive()).name == "CHANNEL_HANGUP"
        assert (await b_events.receive()).name == "CHANNEL_ANSWER"


async def test_slow_subscriber_is_cut_off_without_stalling_the_reader(pair):
    conn, peer = pair
    async with conn.subscribe("a", size=4) as slow, conn.subscribe("b") as other:
        await peer.send(*[event("DTMF", "a") for _ in range(10)], event("CHANNEL_ANSWER", "b"))
        assert (await other.receive()).name == "CHANNEL_ANSWER"
        got = [await slow.receive() for _ in range(4)]
        assert len(got) == 4
        with pytest.raises(SubscriberOverflow):
            await slow.receive()


async def test_malformed_frame_closes_only_that_connection(nursery):
    ours1, theirs1 = trio.testing.memory_stream_pair()
    ours2, theirs2 = trio.testing.memory_stream_pair()
    bad, good = EslConnection(ours1), EslConnection(ours2)
    await nursery.start(bad.run)
    await nursery.start(good.run)
    await theirs1.send_all(b"Content-Type: api/response\nContent-Length: banana\n\n")
    await bad.closed.wait()
    assert "protocol error" in bad.close_reason
    with pytest.raises(ConnectionClosed):
        await bad.api("status")

    async def answer():
        peer = Peer(theirs2)
        await peer.command()
        await peer.send(serialize.api_response("UP\n"))

    nursery.start_soon(answer)
    assert await good.api("status") == "UP\n"


async def test_a_malformed_event_reaches_no_subscriber_and_closes_the_connection(pair):
    conn, peer = pair
    bad = b"Event-Name: CHANNEL_HANGUP\nUnique-ID: a\nthis line has no colon\n\n"
    async with conn.subscribe("a") as events:
        await peer.send(
            event("CHANNEL_ANSWER", "a"),
            b"Content-Length: %d\nContent-Type: text/event-plain\n\n%s" % (len(bad), bad),
            event("CHANNEL_HANGUP", "a"),
        )
        assert (await events.receive()).name == "CHANNEL_ANSWER"
        with pytest.raises(ConnectionClosed):
            await events.receive()
    assert "malformed header line" in conn.close_reason


async def test_disconnect_notice_fails_waiters_and_linger_does_not(pair, nursery):
    conn, peer = pair
    failures = []

    async def wait_reply():
        try:
            await conn.api("status")
        except ConnectionClosed as exc:
            failures.append(exc)

    nursery.start_soon(wait_reply)
    await peer.command()
    await peer.send(serialize.linger_notice("a", "loopback/1-a"))
    await conn.lingering.wait()
    assert not conn.closed.is_set()
    await peer.send(serialize.disconnect_notice("a"))
    await conn.closed.wait()
    await trio.testing.wait_all_tasks_blocked()
    assert len(failures) == 1


async def test_unanswered_command_times_out_and_closes(autojump_clock, nursery):
    ours, _theirs = trio.testing.memory_stream_pair()
    conn = EslConnection(ours, reply_timeout=2)
    await nursery.start(conn.run)
    start = trio.current_time()
    with pytest.raises(ConnectionClosed):
        await conn.send(commands.api("status"))
    assert trio.current_time() - start == pytest.approx(2)
    assert conn.close_reason == "reply timeout"


async def test_unexpected_reply_is_a_protocol_error(pair):
    conn, peer = pair
    await peer.send(serialize.command_reply("+OK"))
    await conn.closed.wait()
    assert "no command waiting" in conn.close_reason


async def test_reader_routes_frames_split_across_reads(pair):
    conn, peer = pair
    data = event("CHANNEL_ANSWER", "a")
    async with conn.subscribe("a") as events:
        for i in range(0, len(data), 7):
            await peer.send(data[i : i + 7])
        assert (await events.receive()).name == "CHANNEL_ANSWER"
    assert FrameReader  # the same reader underneath as the sans-IO tests
