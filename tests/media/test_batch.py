"""BatchConverter: many streams converted at once equal each stream converted on its own."""

from __future__ import annotations

import numpy as np
import pytest

from callcontrol.media.batch import BatchConverter, batchable, frame_size
from callcontrol.media.codecs import PCM24K, PCMA, PCMU, AudioFormat, converter

L16_8K = AudioFormat("pcm", 8000)
L16_16K = AudioFormat("pcm", 16000)
FORMATS = [PCMU, PCMA, L16_8K, L16_16K, PCM24K]


def _frame(rng: np.random.Generator, fmt: AudioFormat, k: int) -> bytes:
    if fmt.encoding != "pcm":
        return rng.integers(0, 256, frame_size(fmt), dtype=np.uint8).tobytes()
    n = frame_size(fmt) // 2
    t = (np.arange(n) + k * n) / fmt.rate
    # speech-like: a tone plus noise, loud enough to reach the clipping edges now and then
    x = 12000 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 6000, n)
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def _differs_by(got: bytes, want: bytes, fmt: AudioFormat) -> int:
    if fmt.encoding == "pcm":
        a = np.frombuffer(got, "<i2").astype(int)
        b = np.frombuffer(want, "<i2").astype(int)
        return int(np.abs(a - b).max())
    # G.711 after a rate change: a 1 LSB difference before encoding is at most one code step
    a = np.frombuffer(got, np.uint8).astype(int)
    b = np.frombuffer(want, np.uint8).astype(int)
    return int(np.abs(a - b).max())


@pytest.mark.parametrize("src", FORMATS, ids=str)
@pytest.mark.parametrize("dst", FORMATS, ids=str)
def test_batch_equals_one_converter_per_stream(src: AudioFormat, dst: AudioFormat) -> None:
    rng = np.random.default_rng(7)
    conv = BatchConverter(src, dst, capacity=2)  # small: the batch grows mid-way
    streams = 6
    rows = [conv.open() for _ in range(streams)]
    alone = [converter(src, dst) for _ in range(streams)]
    sent = [0] * streams
    for _tick in range(30):
        conv.begin()
        batch: list[tuple[int, bytes]] = []
        for s in range(streams):
            if rng.random() < 0.3:  # streams skip ticks independently (a lost datagram)
                continue
            frame = _frame(rng, src, sent[s])
            sent[s] += 1
            conv.stage(frame, rows[s], s)
            batch.append((s, frame))
        out = conv.finish()
        assert conv.owners == [s for s, _f in batch]
        assert out.shape == (len(batch), frame_size(dst))
        for i, (s, frame) in enumerate(batch):
            got = bytes(conv.output_view(i))
            want = alone[s].convert(frame)
            assert got == out[i].tobytes() and len(got) == len(want)
            if src.rate == dst.rate:
                assert got == want  # table lookups and views are exact
            else:
                assert _differs_by(got, want, dst) <= 1  # float32 summation order only


def test_reset_and_reused_rows_start_from_silence() -> None:
    conv = BatchConverter(L16_8K, PCM24K)
    row = conv.open()
    loud = (np.full(160, 20000, "<i2")).tobytes()
    conv.begin()
    conv.stage(loud, row, None)
    conv.finish()
    conv.reset(row)
    conv.begin()
    conv.stage(bytes(320), row, None)
    assert not conv.finish().any()  # no tail of the loud frame after a reset
    conv.begin()
    conv.stage(loud, row, None)
    conv.finish()
    conv.release(row)
    again = conv.open()
    assert again == row and conv.streams == 1
    conv.begin()
    conv.stage(bytes(320), again, None)
    assert not conv.finish().any()  # a reused row does not inherit the last call's history


def test_staging_rows_are_longer_than_a_frame() -> None:
    # An oversized datagram read into a row must not look like a frame (no silent truncation).
    conv = BatchConverter(PCMU, PCMU)
    conv.begin()
    assert len(conv.staging_view(0)) == 162


def test_rates_that_are_not_whole_in_20_ms_are_refused() -> None:
    odd = AudioFormat("pcm", 11025)
    assert not batchable(odd, PCM24K)
    with pytest.raises(ValueError):
        BatchConverter(odd, PCM24K)
