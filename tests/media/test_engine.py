"""The batched media engine: many unicast calls over real loopback UDP, on a MockClock.

Peers and engine share the process, so a datagram is readable as soon as it is sent and the
autojumping clock makes the pacing exact: what is asserted is order, loss and what each side
heard, never how fast it ran.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
from contextlib import AsyncExitStack
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

from callcontrol.config import load_settings
from callcontrol.media import engine as engine_module
from callcontrol.media.codecs import PCM24K, PCMU, AudioFormat, converter
from callcontrol.media.unicast import UnicastPorts, UnicastTransport
from callcontrol.testing.media_peers import L16_8K, UnicastPeer, tone
from tests.media.fakeswitch import open_call
from tests.media.test_unicast import ports, take

pytestmark = pytest.mark.skipif(not engine_module.AVAILABLE, reason="the engine needs epoll")


def numbered(fmt: AudioFormat) -> Any:
    """Frame k carries k in its first bytes (G.711: any byte is a valid sample)."""
    if fmt.encoding == "pcm":
        return tone(440, fmt)
    return lambda k: struct.pack("<I", k) + bytes(range(156))


def model_for(line: AudioFormat) -> AudioFormat:
    return line if line.encoding != "pcm" else PCM24K


async def open_calls(nursery: trio.Nursery, stack: AsyncExitStack, lines: list[AudioFormat],
                     p: UnicastPorts, cls: type[UnicastTransport] = UnicastTransport,
                     ) -> list[tuple[UnicastPeer, UnicastTransport]]:
    out = []
    for i, line in enumerate(lines):
        peer = UnicastPeer(line, numbered(line))
        await nursery.start(peer.run)
        codec = "PCMU" if line == PCMU else "L16"
        call, _switch = await open_call(nursery, codec, line.rate, unicast=peer,
                                        uuid=f"c0ffee00-0000-4000-8000-{i:012d}")
        media = await stack.enter_async_context(cls(call, p, model_format=model_for(line)))
        await media.start()
        assert media.batched
        out.append((peer, media))
    return out


def expected_in(line: AudioFormat, peer: UnicastPeer, n: int) -> list[bytes]:
    conv = converter(line, model_for(line))
    return [conv.convert(peer.source(k)) for k in range(n)]


def assert_same_audio(got: list[bytes], want: list[bytes], fmt: AudioFormat) -> None:
    assert len(got) == len(want)
    if fmt.encoding != "pcm":
        assert got == want
        return
    a = np.frombuffer(b"".join(got), "<i2").astype(int)
    b = np.frombuffer(b"".join(want), "<i2").astype(int)
    assert np.abs(a - b).max() <= 1  # the batched resampler sums in another order


async def heard(peer: UnicastPeer, n: int) -> None:
    with trio.fail_after(5):
        while len(peer.heard) < n:
            await peer.changed.wait()


LINES = [PCMU, L16_8K, PCMU, AudioFormat("pcm", 16000), L16_8K, PCMU]


async def test_every_frame_of_every_call_arrives_in_order_both_ways(nursery, autojump_clock):
    async with AsyncExitStack() as stack:
        calls = await open_calls(nursery, stack, LINES, ports(len(LINES)))
        engine = engine_module.MediaEngine.current()
        received = [await take(media, 40, timeout=5) for _peer, media in calls]
        for (peer, media), frames in zip(calls, received, strict=True):
            # from the first frame the switch sent, none missing, none reordered
            assert_same_audio(frames, expected_in(media.line_format, peer, 40),
                              media.model_format)
            assert media.stats.bad_datagrams == 0 and media.stats.caller_frames_dropped == 0
        # the frames of many calls shared a pass: fewer passes than frames delivered
        assert engine.passes < sum(len(f) for f in received) / 2

        model_audio = []
        for k, (_peer, media) in enumerate(calls):
            fmt = media.model_format
            if fmt == PCMU:
                frames = [struct.pack("<I", 1000 * k + j) + bytes(156) for j in range(25)]
            else:
                frames = [tone(300 + 50 * k, fmt)(j) for j in range(25)]
            model_audio.append(frames)
            await media.play(b"".join(frames), "item")
        for (peer, media), frames in zip(calls, model_audio, strict=True):
            await heard(peer, 25)
            conv = converter(media.model_format, media.line_format)
            assert_same_audio([f for _t, f in peer.heard], [conv.convert(f) for f in frames],
                              media.line_format)
            times = np.diff([t for t, _f in peer.heard])
            assert times.min() >= 0.0199  # paced: one frame per 20 ms, never a burst
            assert media.stats.send_dropped == 0


class LeavingMidPass(UnicastTransport):
    """Closes another call from inside the engine's pass (as if it hung up right then)."""

    victim: UnicastTransport | None = None
    on_read = True
    victim_frames_at_close = -1
    left: trio.Event

    def _read_into(self, sock: Any, buf: memoryview) -> int:
        if self.on_read:
            self._leave()
        return super()._read_into(sock, buf)

    def _sent(self, lateness: float) -> None:
        if not self.on_read:
            self._leave()

    def _leave(self) -> None:
        victim, self.victim = self.victim, None
        if victim is not None:
            victim.close_now()
            self.victim_frames_at_close = victim.stats.caller_frames
            self.left.set()


@pytest.mark.parametrize("side", ["receive", "send"])
async def test_a_call_leaving_mid_pass_leaves_the_others_untouched(nursery, autojump_clock,
                                                                   side):
    p = ports(4)
    async with AsyncExitStack() as stack:
        calls = await open_calls(nursery, stack, [PCMU] * 4, p, LeavingMidPass)
        (_, first), (victim_peer, victim), *_ = calls
        await take(first, 5)  # everything streams
        assert isinstance(first, LeavingMidPass)
        first.on_read = side == "receive"
        for _peer, media in calls:
            await media.play(b"\xff" * 160 * 30, "item")
        first.left = trio.Event()
        first.victim = victim  # armed: the next pass that reaches ``first`` closes ``victim``
        with trio.fail_after(5):
            await first.left.wait()
        assert p.in_use == 3 and not victim.armed
        # a frame it sent before it left (earlier in the same tick) may still be in flight
        await trio.testing.wait_all_tasks_blocked()
        heard_then = len(victim_peer.heard)
        await take(first, 10)  # more passes go by
        # nothing was delivered to it after it left (what was queued before is still read out)
        assert victim.stats.caller_frames == first.victim_frames_at_close
        assert len([f async for f in victim.frames()]) <= first.victim_frames_at_close
        # the others keep every frame, in order, both ways
        for peer, media in (c for c in calls if c[1] is not victim):
            got = await take(media, 20)
            first_k = struct.unpack("<I", got[0][:4])[0]
            assert [struct.unpack("<I", f[:4])[0] for f in got] == list(
                range(first_k, first_k + 20))
            await heard(peer, 30)
            assert media.stats.bad_datagrams == 0
        assert len(victim_peer.heard) == heard_then


class PassRecording(UnicastTransport):
    """Notes the engine's pass that delivered each frame; never loses its media to silence."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, lost_after=60.0, **kwargs)
        self.delivered_in: list[int] = []

    def _deliver(self, frame: bytes) -> None:
        assert self._engine is not None
        self.delivered_in.append(self._engine.passes)
        super()._deliver(frame)


async def test_a_backlog_after_a_stall_is_read_in_one_pass_in_order(nursery, autojump_clock):
    p = ports(2)
    async with AsyncExitStack() as stack:
        [(peer, media), _other] = await open_calls(nursery, stack, [PCMU, L16_8K], p,
                                                   PassRecording)  # fmt: skip
        assert isinstance(media, PassRecording)
        await take(media, 3)
        arm = peer._arm
        assert arm is not None
        # Three datagrams queued on the socket before the engine looks (as after a stall):
        # sent from the switch's own port without a checkpoint in between.
        raw = socket.socket(fileno=os.dup(arm.sock.fileno()))
        with raw:
            for j in range(3):
                raw.sendto(struct.pack("<I", 10**6 + j) + bytes(156), arm.remote)
        media.delivered_in.clear()
        got = await take(media, 8)
        ks = [struct.unpack("<I", f[:4])[0] for f in got]
        extra = [i for i, k in enumerate(ks) if k >= 10**6]
        assert [ks[i] for i in extra] == [10**6, 10**6 + 1, 10**6 + 2]
        assert extra == list(range(extra[0], extra[0] + 3))  # together, in the socket's order
        assert len({media.delivered_in[i] for i in extra}) == 1  # one pass, not one per frame
        regular = [k for k in ks if k < 10**6]
        assert regular == list(range(regular[0], regular[0] + len(regular)))  # none lost


async def test_audio_to_play_wakes_an_engine_waiting_on_a_silent_line(nursery, autojump_clock):
    p = ports(1)
    async with AsyncExitStack() as stack:
        [(peer, media)] = await open_calls(nursery, stack, [PCMU], p, PassRecording)
        await take(media, 2)
        peer.playing = True  # the switch stops sending: the engine waits for a datagram
        await trio.sleep(0.5)
        await media.play(b"\xff" * 160 * 3, "item")
        await heard(peer, 3)  # sent although no datagram ever came to wake the engine


async def play_on_all_at_once(calls, frames):
    """Every call heard from, its switch side gone quiet, then ``frames`` to play on all of
    them in the same instant (so they all start sending together)."""
    for peer, media in calls:
        await take(media, 1)
        peer.playing = True
    await trio.sleep(0.5)
    for _peer, media in calls:
        await media.play(b"\xff" * 160 * frames, "item")


async def test_calls_that_start_sending_together_are_spread_over_phases(nursery, autojump_clock):
    n = 2 * engine_module.JOIN_PHASES
    p = ports(n)
    async with AsyncExitStack() as stack:
        calls = await open_calls(nursery, stack, [PCMU] * n, p, PassRecording)
        await play_on_all_at_once(calls, 5)
        for peer, _media in calls:
            await heard(peer, 5)
        first_sent = sorted({peer.heard[0][0] for peer, _media in calls})
        # two calls per phase over the next JOIN_PHASES phases, not all of them in one
        assert len(first_sent) == engine_module.JOIN_PHASES
        window = engine_module.JOIN_PHASES * engine_module.PHASE_SECONDS
        assert first_sent[-1] - first_sent[0] < window
        for peer, _media in calls:
            assert np.diff([t for t, _f in peer.heard]).min() >= 0.0199  # then 20 ms apart


async def test_a_bunch_of_calls_sending_together_spreads_out_over_every_phase(nursery,
                                                                           autojump_clock):
    n, frames = 30, 60
    p = ports(n)
    async with AsyncExitStack() as stack:
        calls = await open_calls(nursery, stack, [PCMU] * n, p, PassRecording)
        await play_on_all_at_once(calls, frames)  # 6 calls in each of 5 phases
        for peer, _media in calls:
            await heard(peer, frames)
        sent = [[t for t, _f in peer.heard] for peer, _media in calls]
    # (asserted out here: a failure inside 30 nested transports is lost in the exception groups)
    share = n // engine_module.PHASES + 1
    t0 = min(times[0] for times in sent)
    last_phase = [round((times[-1] - t0) / engine_module.PHASE_SECONDS) % engine_module.PHASES
                  for times in sent]  # fmt: skip
    per_phase = [last_phase.count(k) for k in range(engine_module.PHASES)]
    assert max(per_phase) <= share, per_phase  # no phase carries more than its share
    for times in sent:
        gaps = np.diff(times)
        assert len(times) == frames  # none lost, none twice
        assert gaps.min() >= 0.0199  # never two frames less than a frame apart
        # a call moved on to the next phase sends one frame a phase late, once a move
        assert gaps.max() <= 0.020 + engine_module.PHASE_SECONDS + 1e-6


async def test_the_timer_never_wakes_before_its_deadline_on_the_real_clock() -> None:
    timer = engine_module.Timer()
    try:
        assert timer.fd >= 0  # trio's own clock: a timerfd, not epoll's whole milliseconds
        deadline = trio.current_time() + 0.002
        await timer.sleep_until(deadline)
        assert trio.current_time() >= deadline
        with trio.move_on_after(0.001):  # a wait cut short leaves no early wake-up behind
            await timer.sleep_until(trio.current_time() + 60)
        deadline = trio.current_time() + 0.002
        await timer.sleep_until(deadline)
        assert trio.current_time() >= deadline
        await timer.sleep_until(deadline - 1)  # already past: a checkpoint
    finally:
        timer.close()


async def test_the_timer_follows_a_mock_clock(autojump_clock):
    timer = engine_module.Timer()
    assert timer.fd < 0
    deadline = trio.current_time() + 3600
    await timer.sleep_until(deadline)  # autojumped: no real hour, no timerfd
    assert trio.current_time() >= deadline


async def test_bad_datagram_sizes_are_counted_and_never_delivered(nursery, autojump_clock):
    p = ports(1)
    async with AsyncExitStack() as stack:
        [(peer, media)] = await open_calls(nursery, stack, [PCMU], p)
        await take(media, 2)
        arm = peer._arm
        assert arm is not None
        for size in (1, 159, 161, 162, 163, 1000):
            await arm.sock.sendto(b"\x7f" * size, arm.remote)
        frames = await take(media, 10)
        assert media.stats.bad_datagrams == 6
        assert all(len(f) == 160 and not f.startswith(b"\x7f") for f in frames)
        ks = [struct.unpack("<I", f[:4])[0] for f in frames]
        assert ks == list(range(ks[0], ks[0] + 10))  # the good ones still in order, none lost


async def test_model_audio_cut_at_odd_bytes_sounds_as_one_piece(nursery, autojump_clock):
    p = ports(1)
    async with AsyncExitStack() as stack:
        [(peer, media)] = await open_calls(nursery, stack, [L16_8K], p)
        pcm = b"".join(tone(660, PCM24K)(j) for j in range(20))  # 400 ms at 24 kHz
        cuts = [0, 1, 958, 961, 2883, 5001, 7777, len(pcm)]  # odd sizes, mid-sample cuts
        for a, b in itertools.pairwise(cuts):
            await media.play(pcm[a:b], "item")
        await media.drained()
        await heard(peer, 20)
        want = converter(PCM24K, L16_8K).convert(pcm)
        assert_same_audio([f for _t, f in peer.heard], [want[i:i + 320]
                          for i in range(0, len(want), 320)], L16_8K)  # fmt: skip


async def test_rearm_after_repark_moves_the_call_to_its_new_socket(nursery, autojump_clock):
    p = ports(2)
    async with AsyncExitStack() as stack:
        [(peer, media)] = await open_calls(nursery, stack, [PCMU], p)
        engine = engine_module.MediaEngine.current()
        await take(media, 3)
        old = peer.arms[-1]
        execution = await media.call.conn.execute("playback", "prompt.wav")  # tears it down
        await execution.completed(2)
        with trio.fail_after(2):
            while media.armed:
                await media.state_changed.wait()
        assert await media.rearm()  # a new park (uuid_transfer), then unicast again
        assert peer.arms[-1] != old and media.arms == 2 and p.in_use == 1
        assert len(engine._lanes) == 1  # the old socket left the epoll set
        frames = await take(media, 5)
        ks = [struct.unpack("<I", f[:4])[0] for f in frames]
        assert ks == list(range(ks[0], ks[0] + 5))
        await media.play(b"\xff" * 160 * 3, "after")
        await heard(peer, 3)


async def test_percall_engine_is_still_there_when_asked_for(nursery, autojump_clock):
    p = ports(1)
    peer = UnicastPeer(PCMU, numbered(PCMU))
    await nursery.start(peer.run)
    call, _switch = await open_call(nursery, "PCMU", 8000, unicast=peer)
    async with UnicastTransport(call, p, model_format=PCMU, batched=False) as media:
        await media.start()
        assert not media.batched
        frames = await take(media, 5)
        assert frames == [peer.source(k) for k in range(5)]


def test_engine_choice_is_a_setting() -> None:
    assert load_settings({}).media_engine == "batched"
    assert load_settings({"CALLCONTROL_MEDIA_ENGINE": "percall"}).media_engine == "percall"
    with pytest.raises(Exception, match="CALLCONTROL_MEDIA_ENGINE"):
        load_settings({"CALLCONTROL_MEDIA_ENGINE": "fast"})


async def test_datagrams_from_any_other_port_never_reach_the_model(nursery, autojump_clock):
    p = ports(1)
    async with AsyncExitStack() as stack:
        [(peer, media)] = await open_calls(nursery, stack, [PCMU], p)
        await take(media, 2)
        arm = peer._arm
        assert arm is not None
        stranger = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with stranger:
            await stranger.bind(("127.0.0.1", 0))
            for j in range(3):  # well-formed frames, from the right host but not the switch's port
                await stranger.sendto(struct.pack("<I", 10**6 + j) + bytes(156), arm.remote)
            frames = await take(media, 10)
        ks = [struct.unpack("<I", f[:4])[0] for f in frames]
        assert ks == list(range(ks[0], ks[0] + 10))  # only the switch's, in order, none lost


async def test_a_switch_port_that_vanishes_mid_call_disturbs_no_other_call(nursery, autojump_clock):
    # Our sockets are connected to the switch's port: once it is gone the kernel answers the
    # next datagram with ECONNREFUSED, reported on that call's socket; the engine goes on.
    p = ports(2)
    async with AsyncExitStack() as stack:
        [(gone, media), (peer, other)] = await open_calls(nursery, stack, [PCMU, PCMU], p)
        await take(media, 2)
        await take(other, 2)
        gone._stop()  # the switch's unicast socket closes without a teardown event
        speech = b"".join(numbered(PCMU)(k) for k in range(10))
        await media.play(speech, "item")
        await other.play(speech, "item")
        await media.drained()
        await other.drained()
        frames = await take(other, 10)
        ks = [struct.unpack("<I", f[:4])[0] for f in frames]
        assert ks == list(range(ks[0], ks[0] + 10))
        await heard(peer, 10)
        assert [frame for _t, frame in peer.heard[-10:]] == [numbered(PCMU)(k) for k in range(10)]
