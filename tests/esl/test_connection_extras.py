"""Pipelining, handshake refusals and the remaining command writers."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from callcontrol.esl import CommandError, ConnectionClosed, ProtocolError, commands, serialize
from callcontrol.esl.connection import EslConnection
from callcontrol.esl.outbound import OutboundCall
from tests.esl.test_connection import Peer, event


@pytest.fixture
async def pair(nursery):
    ours, theirs = trio.testing.memory_stream_pair()
    conn = EslConnection(ours, reply_timeout=5)
    await nursery.start(conn.run)
    return conn, Peer(theirs)


async def test_pipelined_commands_get_their_own_replies_in_order(pair, nursery):
    conn, peer = pair
    got = []

    async def send():
        got.extend(await conn.send_many(commands.api("a"), commands.api("b")))

    nursery.start_soon(send)
    assert await peer.command() == b"api a\n\n"
    assert await peer.command() == b"api b\n\n"
    await peer.send(serialize.api_response("A\n"), serialize.api_response("B\n"))
    await trio.testing.wait_all_tasks_blocked()
    assert [f.reply_text for f in got] == ["A\n", "B\n"]


async def test_a_refused_filter_fails_the_originate_behind_it(pair, nursery):
    conn, peer = pair
    errors = []

    async def originate():
        try:
            await conn.bgapi(
                "originate", "x", job_uuid="j-1", before=[commands.filter_add("Unique-ID", "b-1")]
            )
        except CommandError as exc:
            errors.append(exc)

    nursery.start_soon(originate)
    await peer.command()
    await peer.command()
    await peer.send(serialize.command_reply("-ERR filter failed"), serialize.bgapi_reply("j-1"))
    await trio.testing.wait_all_tasks_blocked()
    assert "filter Unique-ID b-1" in str(errors[0])


async def test_pipelined_replies_that_never_come_close_the_connection(autojump_clock, nursery):
    ours, _theirs = trio.testing.memory_stream_pair()
    conn = EslConnection(ours, reply_timeout=3)
    await nursery.start(conn.run)
    with pytest.raises(ConnectionClosed):
        await conn.send_many(commands.api("a"), commands.api("b"))
    assert conn.close_reason == "reply timeout"
    with pytest.raises(ConnectionClosed):
        await conn.send_many(commands.api("c"))


async def test_handshake_refusals_are_errors(pair, nursery):
    conn, peer = pair
    outcome = []

    async def shake():
        try:
            await OutboundCall.handshake(conn)
        except (ProtocolError, CommandError) as exc:
            outcome.append(exc)

    nursery.start_soon(shake)
    assert await peer.command() == b"connect\n\n"
    await peer.send(serialize.command_reply("+OK"))  # no channel data at all
    await trio.testing.wait_all_tasks_blocked()
    assert isinstance(outcome[0], ProtocolError)


async def test_handshake_with_a_refused_filter(pair, nursery):
    conn, peer = pair
    outcome = []

    async def shake():
        try:
            await OutboundCall.handshake(conn, linger=False)
        except CommandError as exc:
            outcome.append(exc)

    nursery.start_soon(shake)
    await peer.command()
    await peer.send(serialize.connect_reply([("Event-Name", "CHANNEL_DATA"), ("Unique-ID", "a-1")]))
    for _ in range(3):
        await peer.command()
    await peer.send(
        serialize.command_reply("+OK"),
        serialize.command_reply("-ERR nope"),
        serialize.command_reply("+OK"),
    )
    await trio.testing.wait_all_tasks_blocked()
    assert "filter Job-Owner-UUID a-1" in str(outcome[0])


async def test_watch_and_unwatch_a_leg_and_exit_after_close(pair, nursery):
    conn, peer = pair
    call = OutboundCall(conn, serialize_event("a-1"))

    async def answer_all():
        while True:
            try:
                await peer.command()
            except EOFError:  # we closed the socket: the test is over
                return
            await peer.send(serialize.command_reply("+OK"))

    nursery.start_soon(answer_all)
    await call.watch_leg("b-1")
    await call.watch_leg("b-1")  # once is enough
    assert call.watched_legs == {"b-1"}
    await call.unwatch_leg("b-1")
    await call.unwatch_leg("b-1")
    assert call.watched_legs == set()
    await conn.aclose()
    await call.exit()  # a closed socket is fine


def serialize_event(uid):
    from callcontrol.esl import Event

    return Event.from_plain(
        serialize.event_plain_text([("Event-Name", "CHANNEL_DATA"), ("Unique-ID", uid)])
    )


def test_remaining_writers():
    assert commands.filter_delete("Unique-ID") == b"filter delete Unique-ID\n\n"
    assert commands.nixevent(["DTMF"]) == b"nixevent DTMF\n\n"
    assert commands.getvar("uuid") == b"getvar uuid\n\n"
    assert commands.log("debug") == b"log debug\n\n"
    assert commands.nolog() == b"nolog\n\n"
    assert commands.resume() == b"resume\n\n"
    assert commands.divert_events(True) == b"divert_events on\n\n"
    assert commands.myevents("json") == b"myevents json\n\n"
    error = CommandError("api x", "-ERR no")
    assert str(error) == "api x: -ERR no" and error.reply == "-ERR no"


async def test_events_read_before_the_end_are_still_received(pair):
    conn, peer = pair
    async with conn.subscribe("a") as events:
        await peer.send(event("CHANNEL_ANSWER", "a"), event("CHANNEL_HANGUP", "a"),
                        serialize.disconnect_notice("a"))  # fmt: skip
        await conn.closed.wait()
        assert [e.name async for e in events] == ["CHANNEL_ANSWER", "CHANNEL_HANGUP"]
        with pytest.raises(ConnectionClosed):
            await events.receive()


async def test_an_event_for_a_waiting_subscriber_does_not_fill_its_buffer(pair, nursery):
    conn, peer = pair
    got = []
    async with conn.subscribe("a", size=1) as events:

        async def first():
            got.append(await events.receive())

        nursery.start_soon(first)
        await trio.testing.wait_all_tasks_blocked()
        await peer.send(event("CHANNEL_ANSWER", "a"), event("DTMF", "a"))
        await trio.testing.wait_all_tasks_blocked()
        assert [e.name for e in got] == ["CHANNEL_ANSWER"]
        assert (await events.receive()).name == "DTMF"  # buffered, not an overflow


async def test_a_cancelled_receive_loses_no_event(pair):
    conn, peer = pair
    async with conn.subscribe("a") as events:
        with trio.CancelScope() as scope:
            scope.cancel()
            await events.receive()
        with trio.move_on_after(0):  # parked, then cancelled
            await events.receive()
        await peer.send(event("CHANNEL_ANSWER", "a"))
        assert (await events.receive()).name == "CHANNEL_ANSWER"
