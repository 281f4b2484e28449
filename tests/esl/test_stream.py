"""The call socket's stream (esl/_stream.py) over a real socket pair: what trio's SocketStream
does, seen from the other end."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

from callcontrol.esl._stream import EslSocketStream


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    stream = EslSocketStream(trio.SocketStream(trio.socket.from_stdlib_socket(ours)))
    yield stream, theirs
    theirs.close()


async def test_reads_what_the_peer_wrote_and_empty_at_its_end(pair):
    stream, theirs = pair
    theirs.send(b"Content-Type: auth/request\n\n")
    assert await stream.receive_some() == b"Content-Type: auth/request\n\n"
    theirs.send(b"abcdef")
    assert await stream.receive_some(4) == b"abcd"
    assert await stream.receive_some(4) == b"ef"
    theirs.shutdown(socket.SHUT_WR)
    assert await stream.receive_some() == b""


async def test_a_read_waits_for_data_written_later(pair, nursery):
    stream, theirs = pair
    got = []
    done = trio.Event()

    async def read():
        got.append(await stream.receive_some())
        done.set()

    nursery.start_soon(read)
    await trio.testing.wait_all_tasks_blocked()
    assert got == []
    theirs.send(b"event")
    await done.wait()
    assert got == [b"event"]


async def test_a_write_larger_than_the_socket_buffer_arrives_whole(pair, nursery):
    stream, theirs = pair
    data = bytes(range(256)) * 40_000  # 10 MB: the write must wait for the peer to read
    received = bytearray()
    done = trio.Event()

    async def drain():
        while len(received) < len(data):
            await trio.lowlevel.wait_readable(theirs)
            received.extend(theirs.recv(1 << 20))
        done.set()

    nursery.start_soon(drain)
    await stream.send_all(data)
    await done.wait()
    assert bytes(received) == data


async def test_closed_and_broken_sockets_are_trio_errors(pair):
    stream, theirs = pair
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    theirs.close()  # with linger 0: a reset
    with pytest.raises(trio.BrokenResourceError):
        for _ in range(100):  # the first write may still be accepted by the kernel
            await stream.send_all(b"api status\n\n")
    await stream.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await stream.receive_some()
    with pytest.raises(trio.ClosedResourceError):
        await stream.send_all(b"exit\n\n")


async def test_closing_the_stream_wakes_a_waiting_read(pair, nursery):
    stream, _theirs = pair
    errors = []

    async def read():
        try:
            await stream.receive_some()
        except trio.ClosedResourceError as exc:
            errors.append(exc)

    nursery.start_soon(read)
    await trio.testing.wait_all_tasks_blocked()
    await stream.aclose()
    await trio.testing.wait_all_tasks_blocked()
    assert len(errors) == 1


async def test_a_cancelled_read_or_write_is_cancelled(pair):
    stream, theirs = pair
    with trio.move_on_after(0) as scope:
        await stream.receive_some()
    assert scope.cancelled_caught
    with trio.CancelScope() as scope:
        scope.cancel()
        await stream.send_all(b"api status\n\n")
    assert scope.cancelled_caught
    with pytest.raises(BlockingIOError):
        theirs.recv(100)  # the cancelled write wrote nothing
