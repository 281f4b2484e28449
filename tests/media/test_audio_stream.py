"""mod_audio_stream transport against an AudioStreamPeer over real websockets on 127.0.0.1."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import trio
import trio.testing
import trio_websocket

from callcontrol.media.audio_stream import (
    CLOSE_BAD_REQUEST,
    CLOSE_CALL_FINISHED,
    CLOSE_UNKNOWN_CALL,
    AudioStreamRegistry,
    AudioStreamTransport,
    _CallerBatch,
    serve_audio_stream,
)
from callcontrol.media.codecs import PCM24K, AudioFormat, converter
from callcontrol.media.transport import MediaUnavailable
from callcontrol.testing.media_peers import AudioStreamPeer, goertzel_level, tone
from tests.media.fakeswitch import A_UUID, FakeSwitch, open_call

B_UUID = "b2b2b2b2-0000-4000-8000-00000000000b"


def pcm_tone(freq: float, seconds: float, rate: int = 24000, amplitude: int = 8000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


@pytest.fixture
async def registry(nursery):
    reg = AudioStreamRegistry("ws://127.0.0.1:1")
    server = await nursery.start(serve_audio_stream, reg, "127.0.0.1", 0)
    reg.public_url = f"ws://127.0.0.1:{server.port}"
    return reg


async def setup(nursery, tmp_path: Path, uuid: str = A_UUID, freq: float = 440,
                **switch_kwargs: object):
    holder: list[FakeSwitch] = []
    peer = AudioStreamPeer(
        lambda sub, u, body: holder[0].emit_custom(sub, u, body),
        tmp_path,
        source=lambda _u, fmt: tone(freq, fmt),
    )
    await nursery.start(peer.run)
    call, switch = await open_call(nursery, audio=peer, uuid=uuid, **switch_kwargs)
    holder.append(switch)
    return peer, call, switch


async def until(media: AudioStreamTransport, cond: Callable[[], bool], timeout: float = 3) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await media.state_changed.wait()


async def take(media: AudioStreamTransport, n: int) -> list[bytes]:
    out: list[bytes] = []
    with trio.fail_after(3):
        async for frame in media.frames():
            out.append(frame)
            if len(out) == n:
                break
    return out


async def test_a_slow_start_is_not_taken_for_lost_media(nursery, registry, tmp_path):
    # The loss clock runs from the moment the stream is up, not from start(): a switch slow to
    # answer uuid_audio_stream is no "no caller audio".
    _peer, call, _switch = await setup(
        nursery, tmp_path, reply_delays={"uuid_audio_stream": 0.4}
    )
    async with AudioStreamTransport(call, registry, lost_after=0.2) as media:
        await media.start()
        assert not media.media_lost.is_set()
        await take(media, 3)
        assert not media.media_lost.is_set()


async def test_caller_frames_reach_the_right_session(nursery, registry, tmp_path):
    _pa, call_a, switch_a = await setup(nursery, tmp_path, A_UUID, 440)
    _pb, call_b, _sb = await setup(nursery, tmp_path, B_UUID, 880)
    async with AudioStreamTransport(call_a, registry) as a, AudioStreamTransport(
        call_b, registry
    ) as b:
        await a.start()
        await b.start()
        start = next(c for c in switch_a.commands if "uuid_audio_stream" in c)
        assert start == (
            f"api uuid_audio_stream {A_UUID} start {registry.public_url}/stream/{A_UUID}/"
            f'{a.token} mono 16k {{"uuid":"{A_UUID}"}}'
        )
        frames_a = await take(a, 6)
        frames_b = await take(b, 6)
    assert all(len(f) == 960 for f in frames_a + frames_b)
    pcm_a, pcm_b = b"".join(frames_a[2:]), b"".join(frames_b[2:])
    assert goertzel_level(pcm_a, 24000, 440) > 7000 > goertzel_level(pcm_a, 24000, 880) + 6000
    assert goertzel_level(pcm_b, 24000, 880) > 7000 > goertzel_level(pcm_b, 24000, 440) + 6000


@pytest.mark.parametrize(
    ("path", "code", "reason"),
    [
        (f"/stream/{B_UUID}/{'0' * 32}", CLOSE_UNKNOWN_CALL, "unknown call"),
        ("/ws", CLOSE_BAD_REQUEST, "bad path"),
        (f"/stream/{B_UUID}/not-a-token", CLOSE_BAD_REQUEST, "bad path"),
    ],
)
async def test_unknown_streams_are_closed_with_a_reason(registry, path, code, reason):
    url = registry.public_url + path
    async with trio_websocket.open_websocket_url(url) as ws:
        with pytest.raises(trio_websocket.ConnectionClosed) as info:
            with trio.fail_after(3):
                await ws.get_message()
    assert info.value.reason is not None
    assert (info.value.reason.code, info.value.reason.reason) == (code, reason)


async def test_finished_call_and_wrong_token_are_refused(nursery, registry, tmp_path):
    _peer, call, _switch = await setup(nursery, tmp_path)
    async with AudioStreamTransport(call, registry) as media:
        await media.start()
        token = media.token
        wrong = registry.public_url + f"/stream/{A_UUID}/{'f' * 32}"
        async with trio_websocket.open_websocket_url(wrong) as ws:
            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                await ws.get_message()
        assert info.value.reason is not None and info.value.reason.code == CLOSE_UNKNOWN_CALL
    url = registry.public_url + f"/stream/{A_UUID}/{token}"
    async with trio_websocket.open_websocket_url(url) as ws:
        with pytest.raises(trio_websocket.ConnectionClosed) as info:
            await ws.get_message()
    assert info.value.reason is not None and info.value.reason.code == CLOSE_CALL_FINISHED


async def test_model_audio_becomes_files_played_in_order(nursery, registry, tmp_path):
    _peer, call, switch = await setup(nursery, tmp_path)
    async with AudioStreamTransport(call, registry) as media:
        await media.start()
        speech = pcm_tone(660, 1.5)
        for i in range(0, len(speech), 4800):  # 100 ms deltas, as a realtime model sends
            await media.play(speech[i : i + 4800], "item1")
        assert media.playing
        with trio.fail_after(5):
            await media.drained()
        plays = switch.playbacks
        assert [p.arg for p in plays] == media.files_played
        assert [Path(p.arg).name for p in plays] == [
            f"{A_UUID}_{n}.tmp.r16" for n in range(len(plays))
        ]
        assert 2 <= len(plays) <= 4  # a quick first chunk, then long ones
        for before, after in itertools.pairwise(plays):
            assert before.ended is not None and after.started >= before.ended
        heard = b"".join([await trio.Path(p.arg).read_bytes() for p in plays])
        assert abs(len(heard) / 32 - 1500) <= 2  # ms at 16 kHz
        assert goertzel_level(heard[3200:-3200], 16000, 660) > 7000
        commands = [c.split("\n") for c in switch.commands if c.startswith("sendmsg")]
        assert all("execute-app-name: playback" in c for c in commands)


async def test_barge_in_breaks_playback_and_reports_played_ms(nursery, registry, tmp_path):
    _peer, call, switch = await setup(nursery, tmp_path)
    async with AudioStreamTransport(call, registry) as media:
        await media.start()
        await media.play(pcm_tone(660, 3.0), "item1")
        await until(media, lambda: bool(switch.playbacks))
        started = switch.playbacks[0].started
        await trio.sleep(0.3)  # the caller listens to 300 ms, then talks
        played = await media.interrupt()
        expected = (trio.current_time() - started) * 1000
        assert abs(played - expected) <= 60
        assert f"api uuid_break {A_UUID} all" in switch.commands
        assert not media.playing
        await until(media, lambda: switch.current is None)
        count = len(switch.playbacks)
        await trio.sleep(0.3)
        assert len(switch.playbacks) == count  # nothing more of the interrupted answer


async def test_suspend_drops_caller_audio_and_close_stops_by_bgapi(nursery, registry, tmp_path):
    _peer, call, switch = await setup(nursery, tmp_path)
    async with AudioStreamTransport(call, registry) as media:
        await media.start()
        await take(media, 2)
        await media.suspend()
        delivered = media.stats.caller_frames
        await trio.sleep(0.2)
        assert media.stats.caller_frames == delivered
        await media.resume()
        await take(media, 2)
    assert any(c.startswith(f"bgapi uuid_audio_stream {A_UUID} stop\n") for c in switch.commands)
    assert not any(c.startswith(f"api uuid_audio_stream {A_UUID} stop") for c in switch.commands)
    assert not list(tmp_path.iterdir())  # the module deleted its temp files


async def test_module_error_at_start_is_media_unavailable(nursery, tmp_path):
    reg = AudioStreamRegistry("ws://127.0.0.1:9")  # nothing listens there
    _peer, call, _switch = await setup(nursery, tmp_path)
    async with AudioStreamTransport(call, reg) as media:
        with pytest.raises(MediaUnavailable, match="mod_audio_stream::error"):
            await media.start()


async def test_silence_on_the_stream_is_media_lost(nursery, registry, tmp_path):
    peer, call, _switch = await setup(nursery, tmp_path)
    async with AudioStreamTransport(call, registry, lost_after=0.3) as media:
        await media.start()
        await take(media, 2)
        assert await peer.api(f"{A_UUID} pause") == "+OK Success\n"
        with trio.fail_after(2):
            await media.media_lost.wait()
        assert "no caller audio" in (media.lost_reason or "")


async def test_server_close_by_the_switch_is_media_lost(nursery, registry, tmp_path):
    peer, call, _switch = await setup(nursery, tmp_path)
    async with AudioStreamTransport(call, registry) as media:
        await media.start()
        ws = peer.streams[A_UUID].ws
        assert ws is not None
        await ws.aclose(1011, "internal error")
        with trio.fail_after(2):
            await media.media_lost.wait()
        assert "1011" in (media.lost_reason or "")


async def test_caller_frames_two_to_a_message_come_out_as_one_resampled_stream(
        nursery, registry, tmp_path):  # fmt: skip
    # The module often sends two frames together; each stream is resampled in the shared
    # batch of every call's frames, its second frame in a round of its own.
    line = AudioFormat("pcm", 16000)
    single = tone(440, line)
    peer = AudioStreamPeer(lambda *_a: None, tmp_path,
                           source=lambda _u, _f: lambda k: single(2 * k) + single(2 * k + 1))
    holder: list[FakeSwitch] = []
    peer.emit = lambda sub, u, body: holder[0].emit_custom(sub, u, body)
    await nursery.start(peer.run)
    call, switch = await open_call(nursery, audio=peer, uuid=A_UUID)
    holder.append(switch)
    _pb, call_b, _sb = await setup(nursery, tmp_path, B_UUID, 880)
    async with AudioStreamTransport(call, registry) as media, AudioStreamTransport(
        call_b, registry
    ) as other:
        await media.start()
        await other.start()
        got = await take(media, 12)
        await take(other, 4)
        batch = media._batch
        assert batch is not None and batch.flushes > 0
    want = converter(line, PCM24K).convert(b"".join(single(k) for k in range(12)))
    a = np.frombuffer(b"".join(got), "<i2").astype(int)
    b = np.frombuffer(want, "<i2").astype(int)
    assert len(got) == 12 and np.abs(a - b).max() <= 1  # in order, none lost or doubled


class _Owner:
    def __init__(self, name: str) -> None:
        self.call = type("Call", (), {"uuid": name})()
        self.got: list[bytes] = []

    def _deliver(self, frame: bytes) -> None:
        self.got.append(frame)


async def test_a_stream_leaving_with_frames_staged_gives_its_row_back_after_them():
    batch = _CallerBatch(AudioFormat("pcm", 16000), AudioFormat("pcm", 16000))
    first, second = _Owner("a"), _Owner("b")
    row = batch.open()
    frames = [bytes([k]) * 640 for k in range(3)]
    for frame in frames:
        batch.stage(frame, row, first)  # type: ignore[arg-type]
    batch.release(row)  # it leaves before the batch ran
    other_row = batch.open()
    assert other_row != row  # not reused while its frames are still staged
    batch.stage(b"\x09" * 640, other_row, second)  # type: ignore[arg-type]
    await trio.testing.wait_all_tasks_blocked()
    assert first.got == frames and second.got == [b"\x09" * 640]
    assert batch.open() == row  # free again once they were delivered
