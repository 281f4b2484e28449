"""Audio conversion between the phone line and the speech model: G.711 and rate changes.

The line carries 20 ms frames of L16 at 8 or 16 kHz (or raw PCMU/PCMA with ``flags: native``);
the model wants 16-bit PCM at 24 kHz, or G.711 at 8 kHz. Everything here is sans-IO and streaming:
a ``Resampler`` keeps its filter history between frames, so a signal cut into 20 ms frames comes out
exactly as if it had been converted in one piece — no clicks at frame edges.

Speed matters (hundreds of calls per core), so G.711 is a table lookup (a 64 KiB encode table
indexed by the 16-bit sample, a 256-entry decode table) and resampling runs in libsoxr (the
``soxr`` wheel) when it is installed, with a numpy polyphase FIR as the fallback.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any, Literal, Protocol

import attrs
import numpy as np
import numpy.typing as npt

try:
    import soxr as _soxr  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - a declared dependency; the fallback serves bare hosts
    _soxr = None

Encoding = Literal["pcm", "pcmu", "pcma"]
Int16Array = npt.NDArray[np.int16]

MODEL_RATE = 24000
G711_RATE = 8000
_SAMPLE_BYTES = 2


@attrs.frozen
class AudioFormat:
    """One audio format on the wire: 16-bit little-endian PCM at ``rate``, or G.711 at 8 kHz."""

    encoding: Encoding = "pcm"
    rate: int = MODEL_RATE

    def __attrs_post_init__(self) -> None:
        if self.encoding != "pcm" and self.rate != G711_RATE:
            raise ValueError(f"{self.encoding} is always {G711_RATE} Hz, not {self.rate}")
        if self.rate <= 0:
            raise ValueError("rate must be positive")

    @property
    def bytes_per_ms(self) -> Fraction:
        per_sample = _SAMPLE_BYTES if self.encoding == "pcm" else 1
        return Fraction(self.rate * per_sample, 1000)

    def duration_ms(self, nbytes: int) -> float:
        return float(nbytes / self.bytes_per_ms)


PCM24K = AudioFormat("pcm", MODEL_RATE)
PCMU = AudioFormat("pcmu", G711_RATE)
PCMA = AudioFormat("pcma", G711_RATE)


# --- G.711 -------------------------------------------------------------------------------------
# Built once from the ITU-T G.711 reference algorithm, vectorised over every possible input.

_MU_BIAS = 0x84
_MU_CLIP14 = 8159
_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    # The 14-bit form of the reference coder (as CPython's audioop did), so our bytes match the
    # encoder the media lab used against a real FreeSWITCH.
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    pcm14 = pcm >> 2
    mask = np.where(pcm14 < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm14), _MU_CLIP14) + (_MU_BIAS >> 2)
    seg = np.searchsorted(_SEG_UEND, mag, side="left")
    mantissa = (mag >> (seg + 1)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (seg << 4) | mantissa) ^ mask
    return _index_by_uint16(pcm, code.astype(np.uint8))


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(pcm >= 0, 0x80, 0x00)
    # A-law works on 13-bit magnitudes; -1 maps to magnitude 0 like the reference code.
    mag = np.where(pcm >= 0, pcm, -pcm - 1) >> 3
    seg = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), mag)
    mantissa = np.where(seg < 2, (mag >> 1) & 0x0F, (mag >> seg) & 0x0F)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | mantissa)
    return _index_by_uint16(pcm, ((code | sign) ^ 0x55).astype(np.uint8))


def _index_by_uint16(
    pcm: npt.NDArray[np.int32], codes: npt.NDArray[np.uint8]
) -> npt.NDArray[np.uint8]:
    table = np.empty(65536, dtype=np.uint8)
    table[pcm.astype(np.int16).view(np.uint16)] = codes
    return table


def _build_ulaw_decode() -> Int16Array:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    seg = (code >> 4) & 0x07
    mag = (((code & 0x0F) << 3) + _MU_BIAS) << seg
    return np.where(code & 0x80, _MU_BIAS - mag, mag - _MU_BIAS).astype(np.int16)


def _build_alaw_decode() -> Int16Array:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (code >> 4) & 0x07
    mant = (code & 0x0F) << 4
    mag = np.where(
        seg == 0,
        mant + 8,
        np.where(seg == 1, mant + 0x108, (mant + 0x108) << np.maximum(seg - 1, 0)),
    )
    return np.where(code & 0x80, mag, -mag).astype(np.int16)


_ULAW_ENCODE = _build_ulaw_encode()
_ALAW_ENCODE = _build_alaw_encode()
_ULAW_DECODE = _build_ulaw_decode()
_ALAW_DECODE = _build_alaw_decode()


def pcm_to_array(pcm: bytes) -> Int16Array:
    if len(pcm) % _SAMPLE_BYTES:
        raise ValueError(f"PCM16 needs whole samples; got {len(pcm)} bytes")
    return np.frombuffer(pcm, dtype="<i2")


def ulaw_encode(pcm: bytes) -> bytes:
    return _ULAW_ENCODE[pcm_to_array(pcm).view(np.uint16)].tobytes()


def ulaw_decode(data: bytes) -> bytes:
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def alaw_encode(pcm: bytes) -> bytes:
    return _ALAW_ENCODE[pcm_to_array(pcm).view(np.uint16)].tobytes()


def alaw_decode(data: bytes) -> bytes:
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def encode_line(fmt: AudioFormat, pcm: bytes) -> bytes:
    """PCM16 LE samples to ``fmt``'s encoding (G.711 encodes; L16 passes through)."""
    if fmt.encoding == "pcmu":
        return ulaw_encode(pcm)
    if fmt.encoding == "pcma":
        return alaw_encode(pcm)
    return pcm


def decode_line(fmt: AudioFormat, data: bytes) -> bytes:
    """``fmt``'s encoding back to PCM16 LE samples."""
    if fmt.encoding == "pcmu":
        return ulaw_decode(data)
    if fmt.encoding == "pcma":
        return alaw_decode(data)
    return data


# --- resampling --------------------------------------------------------------------------------

ResamplerBackend = Literal["soxr", "numpy"]
SOXR_AVAILABLE = _soxr is not None
# numpy by default: libsoxr's LQ preset is 2-3x cheaper but holds back 40 ms per direction on
# an 8 kHz line (20 ms at 16 kHz), and a caller hears that delay in every turn; the polyphase
# filter holds back ~1.5 ms. Most SIP phones are G.711 and pass through with no resampling at
# all, so the CPU saving matters only for L16 lines. Pass backend="soxr" to trade latency back.
DEFAULT_BACKEND: ResamplerBackend = "numpy"

# The lowest libsoxr preset that keeps a 6 kHz tone out of an 8 kHz line: "QQ" is a plain cubic
# with no anti-alias filter. Higher presets are flat to 3.6 kHz where "LQ" is 8 dB down at
# 3.4 kHz, but they hold back about twice as much audio (see ``_soxr_lag``).
SOXR_QUALITY = "LQ"


def _design_lowpass(up: int, down: int, taps_per_phase: int) -> npt.NDArray[np.float32]:
    """Kaiser-windowed sinc at the upsampled rate, cut a little below the lower Nyquist."""
    ntaps = taps_per_phase * up
    cutoff = 0.92 * 0.5 / max(up, down)  # in cycles per upsampled sample
    n = np.arange(ntaps) - (ntaps - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(ntaps, 8.0)
    h *= up / h.sum()  # unity gain after zero-stuffing
    taps: npt.NDArray[np.float32] = h.astype(np.float32)
    return taps


def _soxr_stream(from_rate: int, to_rate: int) -> Any:
    assert _soxr is not None
    # float32 rather than int16 I/O: libsoxr dithers int16 output with a sequence that depends on
    # how the input was cut, which would make frame-by-frame output differ from one-shot output.
    return _soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality=SOXR_QUALITY)


@functools.cache
def _soxr_lag(from_rate: int, to_rate: int) -> int:
    """The most output libsoxr ever owes behind the exact ratio, in output samples.

    libsoxr filters in blocks and releases output a block at a time, so after n input samples it
    may have produced fewer than n·to/from. How many it has produced depends on n alone (not on
    how the input was cut), so feeding one sample at a time over a few blocks finds the worst case.
    """
    up, down = Fraction(to_rate, from_rate).as_integer_ratio()
    stream, one = _soxr_stream(from_rate, to_rate), np.zeros(1, dtype=np.float32)
    produced = lag = 0
    for n in range(1, from_rate // 4 + 1):  # 250 ms: several blocks even at the "VHQ" preset
        produced += len(stream.resample_chunk(one))
        lag = max(lag, -(-n * up // down) - produced)
    return lag


_INT16_MIN, _INT16_MAX = np.float32(-32768), np.float32(32767)


def _to_int16(out: npt.NDArray[np.float32]) -> Int16Array:
    # np.clip and Python-int bounds each cost more per 20 ms frame than the arithmetic itself.
    rounded = np.rint(out)
    np.maximum(rounded, _INT16_MIN, out=rounded)
    np.minimum(rounded, _INT16_MAX, out=rounded)
    return rounded.astype(np.int16)


class Resampler:
    """Streaming rational resampler for PCM16 mono (e.g. 8000→24000, 24000→16000).

    Feed it frames of any length; it keeps the filter state and the fractional output phase, so
    the concatenated output does not depend on how the input was cut, and each call returns
    exactly ``output_length(len(frame))`` samples.

    ``backend="soxr"`` (the default when the wheel is installed) runs libsoxr: several times
    faster, but it releases output in blocks, so it starts with ``latency`` samples of silence
    to hand out whole frames on time — 40 ms at 8 kHz, 20 ms at 16 kHz per direction.
    ``backend="numpy"`` is a polyphase FIR whose latency is its group delay (about 1.5 ms).
    """

    def __init__(
        self,
        from_rate: int,
        to_rate: int,
        *,
        taps_per_phase: int = 16,
        backend: ResamplerBackend | None = None,
    ) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError("rates must be positive")
        backend = backend or DEFAULT_BACKEND
        if backend == "soxr" and not SOXR_AVAILABLE:
            raise ValueError("the soxr backend needs the soxr package")
        ratio = Fraction(to_rate, from_rate)
        self.from_rate, self.to_rate, self.backend = from_rate, to_rate, backend
        self._up, self._down = ratio.numerator, ratio.denominator
        self._passthrough = ratio == 1
        self.latency = 0  # output samples of silence that lead the signal beyond the filter's own
        if self._passthrough:
            pass
        elif backend == "soxr":
            self._stream = _soxr_stream(from_rate, to_rate)
            self.latency = _soxr_lag(from_rate, to_rate)
        else:
            # Decimation needs a filter as long, in input samples, as interpolation needs per
            # phase: a 16-tap filter alone leaves 6 kHz only 29 dB down when 24 kHz goes to an
            # 8 kHz line.
            k = -(-taps_per_phase * max(self._up, self._down) // self._up)
            h = _design_lowpass(self._up, self._down, k)
            # Polyphase split: phase p holds the taps that produce upsampled positions ≡ p (mod up).
            self._phase_taps = [np.ascontiguousarray(h[p :: self._up]) for p in range(self._up)]
            self._k = k
        self.reset()

    def reset(self) -> None:
        self._pos = 0  # upsampled position of the next output, relative to the next input
        if self._passthrough:
            return
        if self.backend == "soxr":
            self._stream.clear()
            self._pending = np.zeros(self.latency, dtype=np.float32)
        else:
            self._history = np.zeros(self._k - 1, dtype=np.float32)

    def output_length(self, nsamples: int) -> int:
        """How many samples ``process`` will return for ``nsamples`` more input samples."""
        if self._passthrough:
            return nsamples
        span = nsamples * self._up - self._pos
        return max(0, -(-span // self._down))

    def process(self, pcm: bytes) -> bytes:
        if self._passthrough:
            pcm_to_array(pcm)
            return pcm
        return self.process_array(pcm_to_array(pcm)).astype("<i2", copy=False).tobytes()

    def process_array(self, samples: Int16Array) -> Int16Array:
        if self._passthrough:
            return samples
        if len(samples) == 0:
            return np.empty(0, dtype=np.int16)
        nout = self.output_length(len(samples))
        if self.backend == "soxr":
            out = self._soxr_process(samples, nout)
        else:
            out = self._polyphase_process(samples, nout)
        self._pos += self._down * nout - len(samples) * self._up
        return _to_int16(out)

    def _soxr_process(self, samples: Int16Array, nout: int) -> npt.NDArray[np.float32]:
        got: npt.NDArray[np.float32] = self._stream.resample_chunk(samples.astype(np.float32))
        pending = np.concatenate((self._pending, got)) if len(got) else self._pending
        if len(pending) < nout:
            # Only if _soxr_lag underestimated libsoxr's blocking: late silence keeps every frame
            # its promised length and loses no audio; the stream just runs that much later.
            gap = np.zeros(nout - len(pending), dtype=np.float32)
            pending = np.concatenate((gap, pending))
            self.latency += len(gap)
        self._pending = pending[nout:]
        return pending[:nout]

    def _polyphase_process(self, samples: Int16Array, nout: int) -> npt.NDArray[np.float32]:
        buf = np.concatenate((self._history, samples.astype(np.float32)))
        # every[i, p] is the output at upsampled position i * up + p of this buffer; the
        # outputs we need are every ``down``-th position from ``_pos``. np.convolve runs in C,
        # which beats gathering windows for matrix products at 20 ms frame sizes.
        every = np.empty((len(buf) - self._k + 1, self._up), dtype=np.float32)
        for p, taps in enumerate(self._phase_taps):
            every[:, p] = np.convolve(buf, taps, "valid")
        self._history = buf[len(buf) - (self._k - 1) :]
        out: npt.NDArray[np.float32] = every.ravel()[self._pos + self._down * np.arange(nout)]
        return out


# --- format conversion chains ------------------------------------------------------------------


class Converter(Protocol):
    def convert(self, data: bytes) -> bytes: ...


class _Chain:
    """decode (G.711 → PCM16) → resample → encode (PCM16 → G.711); each stage optional."""

    def __init__(self, src: AudioFormat, dst: AudioFormat) -> None:
        self.src, self.dst = src, dst
        self._identity = src == dst
        self._resampler = None if src.rate == dst.rate else Resampler(src.rate, dst.rate)

    def convert(self, data: bytes) -> bytes:
        if self._identity:
            return data
        pcm = _decoders[self.src.encoding](data)
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
        return _encoders[self.dst.encoding](pcm)


def _same(data: bytes) -> bytes:
    return data


_decoders = {"pcm": _same, "pcmu": ulaw_decode, "pcma": alaw_decode}
_encoders = {"pcm": _same, "pcmu": ulaw_encode, "pcma": alaw_encode}


def converter(src: AudioFormat, dst: AudioFormat) -> Converter:
    """A streaming converter from ``src`` to ``dst``; pass-through when they are equal.

    One converter per direction per call: it holds filter state.
    """
    return _Chain(src, dst)


def model_format_for_line(line: AudioFormat) -> AudioFormat:
    """The model format that avoids a conversion: G.711 passes through, L16 goes to 24 kHz."""
    return line if line.encoding != "pcm" else PCM24K
