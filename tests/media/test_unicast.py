"""Native unicast against a UnicastPeer over real UDP on 127.0.0.1 (real clock, bounded)."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable

import numpy as np
import pytest
import trio

from callcontrol.config import PortRange
from callcontrol.handoff.hold import ReparkHold
from callcontrol.media.codecs import PCM24K, PCMU, AudioFormat
from callcontrol.media.transport import FrameQueue, MediaUnavailable
from callcontrol.media.unicast import PortsExhausted, UnicastPorts, UnicastTransport
from callcontrol.testing.media_peers import L16_8K, UnicastPeer, goertzel_level, tone
from tests.media.fakeswitch import open_call
from tests.ports import window_range

_WINDOW = 40


def _free_window() -> int:
    """A window of UDP ports that is free now, below the kernel's ephemeral range.

    A fixed pid-derived window (42000 + pid % 500 * 40) reached into other suites' ranges (the
    secretary tests bind 46000-46999) and into the ephemeral range, so a concurrent run on the
    same host could hold a port of ours. The transport skips a busy pair, but the simulated
    switch (like the real one) silently fails to bind its side and then never streams: the
    test waits for frames that never come. Probing every port of a random window first makes
    that a start-up retry instead of a rare timeout.
    """
    rng = random.Random()
    low, high = window_range()  # under xdist, this worker's slice of 20000-31999
    for _ in range(200):
        base = rng.randrange(low, high - _WINDOW, 2)
        probes: list[socket.socket] = []
        try:
            for port in range(base, base + _WINDOW):
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return base
    raise RuntimeError("no free UDP port window for the unicast tests")


_BASE = _free_window()


def ports(n_pairs: int = 8) -> UnicastPorts:
    return UnicastPorts(PortRange("127.0.0.1", _BASE, _BASE + 2 * n_pairs - 1))


def pcm_tone(freq: float, seconds: float, rate: int = 24000, amplitude: int = 8000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


async def wait_for(cond: Callable[[], bool], peer: UnicastPeer, timeout: float = 2.0) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await peer.changed.wait()


async def until(media: UnicastTransport, cond: Callable[[], bool], timeout: float = 2) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await media.state_changed.wait()


async def setup(nursery: trio.Nursery, codec: str = "L16", rate: int = 8000,
                line: AudioFormat = L16_8K, **kwargs: object):
    peer = UnicastPeer(line, tone(440, line))
    await nursery.start(peer.run)
    call, switch = await open_call(nursery, codec, rate, unicast=peer)
    return peer, call, switch


async def take(media: UnicastTransport, n: int, timeout: float = 2.0) -> list[bytes]:
    out: list[bytes] = []
    with trio.fail_after(timeout):
        async for frame in media.frames():
            out.append(frame)
            if len(out) == n:
                break
    return out


async def test_frames_both_ways_paced(nursery):
    peer, call, switch = await setup(nursery)
    async with UnicastTransport(call, ports()) as media:
        await media.start()
        unicast = next(c for c in switch.commands if "call-command: unicast" in c)
        assert "flags: native" not in unicast
        frames = await take(media, 10)
        assert all(len(f) == 960 for f in frames)  # 20 ms at 24 kHz
        assert goertzel_level(b"".join(frames[3:]), 24000, 440) > 7000

        await media.play(pcm_tone(660, 1.0), "item1")
        assert media.playing
        start = trio.current_time()
        with trio.fail_after(3):
            await media.drained()
        elapsed = trio.current_time() - start
        await wait_for(lambda: len(peer.heard) >= 50, peer)
        assert not media.playing
    assert len(peer.heard) == 50 and all(len(f) == 320 for _t, f in peer.heard)
    # Paced: 50 frames take 49 intervals of 20 ms, never a burst. Their arrival times (the
    # kernel's): the peer's task, on a busy box, may read two datagrams in one go.
    times = np.array(peer.arrived)
    assert times[-1] - times[0] >= 49 * 0.020 - 0.010
    assert np.diff(times).min() > 0.008
    assert elapsed >= 0.99
    assert goertzel_level(peer.heard_pcm()[1600:-1600], 8000, 660) > 7000


async def test_interrupt_stops_at_once_and_reports_played_ms(nursery):
    peer, call, _switch = await setup(nursery)
    async with UnicastTransport(call, ports()) as media:
        await media.start()
        await media.play(pcm_tone(660, 2.0), "item1")
        await wait_for(lambda: len(peer.heard) >= 10, peer)
        played = await media.interrupt()
        heard_then = len(peer.heard)
        assert 200 <= played <= 280
        assert media.current_item is None and not media.playing
        await trio.sleep(0.1)
        assert len(peer.heard) <= heard_then + 1
        # A new item plays from its own start.
        await media.play(pcm_tone(660, 0.1), "item2")
        await media.drained()
        assert media.current_item == "item2"


async def test_unseen_teardown_is_silence_then_media_lost(nursery):
    peer, call, _switch = await setup(nursery)
    async with UnicastTransport(call, ports(), lost_after=0.3) as media:
        await media.start()
        await take(media, 2)
        peer.on_teardown()  # e.g. the switch died: no event tells us
        with trio.fail_after(2):
            await media.media_lost.wait()
        assert "no caller audio" in (media.lost_reason or "")
        # What was sent before the teardown may still be queued: a datagram can leave while
        # the test takes its second frame, and the peer counts it only when its task runs on
        # (after the teardown, so read the count now). Those frames, the caller's tone, come
        # out; nothing else (no silence made up for the gap), and then the stream ends.
        rest = [f async for f in media.frames()]
        assert len(rest) <= peer.sent - 2
        assert all(goertzel_level(f, 24000, 440) > 4000 for f in rest)


async def test_hold_music_then_repark_rearms_on_channel_park(nursery):
    peer, call, switch = await setup(nursery)
    p = ports()
    async with UnicastTransport(call, p, lost_after=0.5) as media:
        await media.start()
        first = peer.arms[-1]
        await take(media, 3)
        await media.suspend()
        hold = ReparkHold(call, "local_stream://moh", on_reparked=media.rearm)
        await hold.start()
        await until(media, lambda: media.channel_state.playing_app is not None)
        assert peer.playing  # the park loop plays the music: no caller audio comes now
        await trio.sleep(0.7)  # longer than lost_after: on hold, silence is no loss
        assert not media.media_lost.is_set()
        await hold.stop()  # uuid_transfer park inline → CHANNEL_PARK → rearm
        await media.resume()
        assert media.armed and peer.streaming and peer.arms[-1] != first
        assert media.arms == 2 and p.in_use == 1
        # unicast went out only after the transfer, once the new park began
        order = [c.split("\n")[0] if "unicast" not in c else "unicast" for c in switch.commands]
        assert order.index("unicast", order.index(f"api uuid_transfer {call.uuid} park inline"))
        await take(media, 3)
        heard = len(peer.heard)
        await media.play(pcm_tone(660, 0.2), "item2")
        await media.drained()
        await wait_for(lambda: len(peer.heard) >= heard + 10, peer)
        assert not media.media_lost.is_set()


async def test_rearm_after_unexpected_playback_makes_a_new_park(nursery):
    peer, call, switch = await setup(nursery)
    async with UnicastTransport(call, ports(), lost_after=1.0) as media:
        await media.start()
        execution = await call.conn.execute("playback", "prompt.wav")
        await execution.completed(2)
        await until(media, lambda: not media.armed, 1)
        assert await media.rearm()
        assert any(c.startswith("api uuid_transfer") for c in switch.commands)
        assert peer.streaming and media.arms == 2
        await take(media, 2)


async def test_park_after_bridge_rearms_by_itself(nursery):
    peer, call, switch = await setup(nursery)
    async with UnicastTransport(call, ports()) as media:
        await media.start()
        await switch.bridge()
        await wait_for(lambda: not peer.streaming, peer)
        await until(media, lambda: not media.armed)
        await switch.unbridge_to_park()
        await wait_for(lambda: peer.streaming, peer)
        await until(media, lambda: media.arms >= 2, 1)
        assert not any(c.startswith("api uuid_transfer") for c in switch.commands)
        await take(media, 2)


async def test_a_slow_arming_is_not_taken_for_lost_media(nursery):
    # Under load the unicast reply came after a watchdog tick; that silence, before any audio
    # could have been asked for, was declared "no caller audio" and the call lost its media.
    peer = UnicastPeer(L16_8K, tone(440, L16_8K))
    await nursery.start(peer.run)
    call, _switch = await open_call(nursery, unicast=peer, reply_delays={"unicast": 0.4})
    async with UnicastTransport(call, ports(), lost_after=0.2) as media:
        await media.start()
        assert media.armed and not media.media_lost.is_set()
        await take(media, 3)
        assert not media.media_lost.is_set()


async def test_second_unicast_in_one_park_is_never_sent(nursery):
    _peer, call, switch = await setup(nursery)
    async with UnicastTransport(call, ports()) as media:
        await media.start()
        assert await media.rearm()  # already armed in this park: no-op
        assert sum("call-command: unicast" in c for c in switch.commands) == 1


async def test_pcmu_leg_uses_native_g711_and_passes_through_to_a_g711_model(nursery):
    peer, call, switch = await setup(nursery, "PCMU", 8000, line=PCMU)
    async with UnicastTransport(call, ports(), model_format=PCMU) as media:
        await media.start()
        assert any("flags: native" in c for c in switch.commands)
        frames = await take(media, 3)
        assert [len(f) for f in frames] == [160, 160, 160]
        assert frames[0] == peer.source(0) or frames[0] in {peer.source(k) for k in range(5)}
        await media.play(peer.source(7) * 2, "i")
        await media.drained()
        await wait_for(lambda: len(peer.heard) >= 2, peer)
        assert peer.heard[0][1] == peer.source(7)


async def test_port_allocator_unique_and_exhaustion_is_clear():
    p = ports(3)
    pairs = [p.acquire() for _ in range(3)]
    assert len({(x.fs_port, x.our_port) for x in pairs}) == 3
    assert all(x.our_port == x.fs_port + 1 for x in pairs)
    with pytest.raises(PortsExhausted, match="all 3 unicast port pairs"):
        p.acquire()
    p.release(pairs[1])
    p.release(pairs[1])  # twice is harmless
    assert p.acquire() == pairs[1]
    assert p.in_use == 3


async def test_start_with_no_free_ports_is_media_unavailable(nursery):
    _peer, call, _switch = await setup(nursery)
    p = ports(1)
    p.acquire()
    async with UnicastTransport(call, p) as media:
        with pytest.raises(MediaUnavailable):
            await media.start()


async def test_ports_return_on_close(nursery):
    _peer, call, _switch = await setup(nursery)
    p = ports(2)
    async with UnicastTransport(call, p) as media:
        await media.start()
        assert p.in_use == 1
    assert p.in_use == 0


async def test_caller_queue_drops_oldest_beyond_its_bound():
    q = FrameQueue(3)
    for i in range(5):
        q.put(bytes([i]))
    assert q.dropped == 2
    assert [await q.get() for _ in range(3)] == [b"\x02", b"\x03", b"\x04"]
    q.close()
    with pytest.raises(trio.EndOfChannel):
        await q.get()


async def test_model_format_default_is_24k(nursery):
    _peer, call, _switch = await setup(nursery)
    media = UnicastTransport(call, ports())
    assert media.model_format == PCM24K and media.line_format == L16_8K


async def test_the_caller_queue_has_one_reader_and_survives_a_cancelled_wait(nursery):
    q = FrameQueue(3)
    with trio.move_on_after(0.01):  # a reader that gives up leaves the queue usable
        await q.get()
    got: list[bytes] = []

    async def read_all() -> None:
        got.extend([frame async for frame in q])

    nursery.start_soon(read_all)
    await trio.testing.wait_all_tasks_blocked()
    with pytest.raises(trio.BusyResourceError):  # frames go to one consumer, never split
        await q.get()
    q.put(b"a")
    q.put(b"b")
    q.close()
    await trio.testing.wait_all_tasks_blocked()
    assert got == [b"a", b"b"]
