"""Codecs: G.711 against the reference, resampler quality and streaming invariants."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcontrol.media import codecs
from callcontrol.media.codecs import PCM24K, PCMU, AudioFormat, Resampler

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop  # removed in 3.13; where present it is an independent reference
    except ImportError:  # pragma: no cover - depends on the interpreter
        audioop = None

ALL_PCM = np.arange(-32768, 32768, dtype="<i2").tobytes()
RATE_PAIRS = [(8000, 24000), (16000, 24000), (24000, 8000), (24000, 16000)]
BACKENDS = [
    "numpy",
    pytest.param(
        "soxr", marks=pytest.mark.skipif(not codecs.SOXR_AVAILABLE, reason="soxr not installed")
    ),
]

pcm_samples = st.lists(st.integers(-32768, 32767), max_size=2000).map(
    lambda xs: np.array(xs, dtype="<i2").tobytes()
)


@pytest.mark.skipif(audioop is None, reason="audioop not available on this Python")
def test_g711_matches_cpython_audioop_for_every_sample() -> None:
    assert codecs.ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM, 2)
    assert codecs.alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)
    every_code = bytes(range(256))
    assert codecs.ulaw_decode(every_code) == audioop.ulaw2lin(every_code, 2)
    assert codecs.alaw_decode(every_code) == audioop.alaw2lin(every_code, 2)


def test_g711_known_values() -> None:
    # silence encodes to the codec's zero code; full scale to the extreme codes
    assert codecs.ulaw_encode(b"\x00\x00") == b"\xff"
    assert codecs.alaw_encode(b"\x00\x00") == b"\xd5"
    assert codecs.ulaw_encode(np.array([32767, -32768], "<i2").tobytes()) == b"\x80\x00"


@given(pcm_samples)
def test_ulaw_round_trip_within_quantisation_error(pcm: bytes) -> None:
    original = np.frombuffer(pcm, "<i2").astype(int)
    decoded = np.frombuffer(codecs.ulaw_decode(codecs.ulaw_encode(pcm)), "<i2").astype(int)
    # μ-law step is 2^(segment+3) on the 16-bit scale; half a step (+ clip region) bounds error
    bound = np.maximum(8, np.abs(original) // 16 + 8) + np.maximum(0, np.abs(original) - 32124)
    assert np.all(np.abs(decoded - original) <= bound)


@given(pcm_samples)
def test_alaw_round_trip_within_quantisation_error(pcm: bytes) -> None:
    original = np.frombuffer(pcm, "<i2").astype(int)
    decoded = np.frombuffer(codecs.alaw_decode(codecs.alaw_encode(pcm)), "<i2").astype(int)
    bound = np.maximum(16, np.abs(original) // 16 + 16)
    assert np.all(np.abs(decoded - original) <= bound)


@given(st.binary(max_size=512))
def test_decode_then_encode_is_identity_on_codes(codes: bytes) -> None:
    # every code is a fixed point except the two μ-law zeros / A-law's duplicate-free set
    assert codecs.alaw_encode(codecs.alaw_decode(codes)) == codes
    again = codecs.ulaw_encode(codecs.ulaw_decode(codes))
    assert again == codes.replace(b"\x7f", b"\xff")  # μ-law -0 decodes to 0, re-encodes as +0


def test_odd_pcm_length_is_rejected() -> None:
    with pytest.raises(ValueError, match="whole samples"):
        codecs.ulaw_encode(b"\x00\x00\x00")


def _sine(rate: int, freq: float, seconds: float, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(amplitude * np.sin(2 * math.pi * freq * t)).astype(np.int16)


def _snr_against_sine(signal: np.ndarray, rate: int, freq: float) -> float:
    """Best-fit sine of ``freq`` (any phase); ratio of its power to the residual, in dB."""
    t = np.arange(len(signal)) / rate
    basis = np.stack([np.sin(2 * math.pi * freq * t), np.cos(2 * math.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, signal.astype(float), rcond=None)
    fit = basis @ coef
    return 10 * math.log10(np.sum(fit**2) / np.sum((signal - fit) ** 2))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("src", "dst"), RATE_PAIRS)
def test_resampled_tone_is_clean(src: int, dst: int, backend: codecs.ResamplerBackend) -> None:
    tone = _sine(src, 1000.0, 0.5)
    r = Resampler(src, dst, backend=backend)
    out = np.concatenate(
        [r.process_array(tone[i : i + src // 50]) for i in range(0, len(tone), src // 50)]
    )
    assert len(out) == len(tone) * dst // src
    steady = out[len(out) // 10 :]  # skip the filter's start-up
    assert _snr_against_sine(steady, dst, 1000.0) > 40


@pytest.mark.parametrize("backend", BACKENDS)
def test_downsampling_removes_what_the_line_cannot_carry(backend: codecs.ResamplerBackend) -> None:
    # 6 kHz is above the 4 kHz Nyquist of an 8 kHz line: it must not alias into the band
    out = Resampler(24000, 8000, backend=backend).process_array(_sine(24000, 6000.0, 0.5))
    assert np.sqrt(np.mean(out[100:].astype(float) ** 2)) < 8000 * 0.01


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("src", "dst"), RATE_PAIRS)
@settings(max_examples=40, deadline=None)
@given(
    samples=st.lists(st.integers(-32768, 32767), min_size=1, max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=12),
)
def test_chunking_does_not_change_the_output(
    src: int, dst: int, backend: codecs.ResamplerBackend, samples: list[int], cuts: list[int]
) -> None:
    """Continuity: converting frame by frame equals converting the whole signal at once."""
    x = np.array(samples, dtype=np.int16)
    whole = Resampler(src, dst, backend=backend).process_array(x)
    r = Resampler(src, dst, backend=backend)
    bounds = sorted({0, len(x), *(c % (len(x) + 1) for c in cuts)})
    pieces = [r.process_array(x[a:b]) for a, b in itertools.pairwise(bounds)]
    chunked = np.concatenate(pieces)
    assert len(chunked) == len(whole)
    assert np.max(np.abs(chunked.astype(int) - whole.astype(int)), initial=0) <= 1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("src", "dst"), RATE_PAIRS)
@given(lengths=st.lists(st.integers(0, 1000), max_size=20))
def test_output_length_tracks_the_exact_ratio(
    src: int, dst: int, backend: codecs.ResamplerBackend, lengths: list[int]
) -> None:
    r = Resampler(src, dst, backend=backend)
    total_in = total_out = 0
    for n in lengths:
        predicted = r.output_length(n)
        out = r.process_array(np.zeros(n, dtype=np.int16))
        assert len(out) == predicted
        total_in += n
        total_out += len(out)
        assert abs(total_out - total_in * dst / src) < 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_frame_edges_have_no_clicks(backend: codecs.ResamplerBackend) -> None:
    # A steady tone in 20 ms frames: the sample-to-sample step at every frame edge stays within
    # the largest step inside frames (a click would be a jump at the edge).
    tone = _sine(8000, 440.0, 0.4)
    r = Resampler(8000, 24000, backend=backend)
    frames = [r.process_array(tone[i : i + 160]) for i in range(0, len(tone), 160)]
    out = np.concatenate(frames).astype(int)
    steps = np.abs(np.diff(out))
    edges = np.cumsum([len(f) for f in frames])[:-1] - 1
    inner_max = np.max(np.delete(steps, edges)[480:])
    assert np.max(steps[edges[2:]]) <= inner_max


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("src", "dst"), RATE_PAIRS)
def test_reset_starts_over_like_a_new_resampler(
    src: int, dst: int, backend: codecs.ResamplerBackend
) -> None:
    x = _sine(src, 700.0, 0.1)
    r = Resampler(src, dst, backend=backend)
    first = r.process_array(x)
    r.process_array(x[: src // 1000])  # leave a fractional phase and filter state behind
    r.reset()
    assert np.array_equal(r.process_array(x), first)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("src", "dst"), RATE_PAIRS)
def test_latency_is_silence_then_the_signal(
    src: int, dst: int, backend: codecs.ResamplerBackend
) -> None:
    # The lead-in is pure silence and is the only delay beyond the filter's: the 1 kHz tone is
    # at full level a few milliseconds after it.
    r = Resampler(src, dst, backend=backend)
    out = np.concatenate(
        [r.process_array(f) for f in np.split(_sine(src, 1000.0, 0.2), 10)]
    ).astype(float)
    assert r.latency < dst // 20  # under 50 ms
    assert not out[: r.latency].any()
    settled = out[r.latency + dst // 200 :]  # 5 ms in
    assert np.sqrt(np.mean(settled**2)) == pytest.approx(8000 / math.sqrt(2), rel=0.02)


@pytest.mark.skipif(not codecs.SOXR_AVAILABLE, reason="soxr not installed")
def test_soxr_lag_underestimate_delays_but_keeps_lengths_and_audio() -> None:
    x = _sine(8000, 440.0, 0.2)
    reference = Resampler(8000, 24000, backend="soxr")
    expected = reference.process_array(x)[reference.latency :]
    r = Resampler(8000, 24000, backend="soxr")
    r.latency = 0
    r.reset()  # as if the probe had found no blocking at all
    frames = [r.process_array(f) for f in np.split(x, 10)]
    assert all(len(f) == 480 for f in frames)
    out = np.concatenate(frames)
    assert r.latency > 0 and not out[: r.latency].any()
    assert np.array_equal(out[r.latency :], expected[: len(out) - r.latency])


def test_default_backend_is_the_low_latency_one(monkeypatch: pytest.MonkeyPatch) -> None:
    resampler = Resampler(8000, 24000)
    assert resampler.backend == codecs.DEFAULT_BACKEND == "numpy"
    assert resampler.latency * 1000 / 24000 < 5  # ms of audio held back
    monkeypatch.setattr(codecs, "SOXR_AVAILABLE", False)
    with pytest.raises(ValueError, match="soxr"):
        Resampler(8000, 24000, backend="soxr")


def test_converter_chains_and_passes_through() -> None:
    line = AudioFormat("pcm", 8000)
    frame = _sine(8000, 440.0, 0.02).astype("<i2").tobytes()
    assert codecs.converter(PCMU, PCMU).convert(b"\x01\x02") == b"\x01\x02"
    up = codecs.converter(line, PCM24K).convert(frame)
    assert len(up) == 3 * len(frame)
    down = codecs.converter(PCM24K, PCMU).convert(up)
    assert len(down) == 160  # one byte per 8 kHz sample
    assert codecs.model_format_for_line(PCMU) == PCMU
    assert codecs.model_format_for_line(line) == PCM24K


def test_g711_formats_are_8khz_only() -> None:
    with pytest.raises(ValueError, match="8000"):
        AudioFormat("pcmu", 16000)
    assert PCMU.duration_ms(160) == 20
    assert PCM24K.duration_ms(960) == 20
