"""Audio conversion for many calls at once: one numpy pass per batch of 20 ms frames.

``codecs.Resampler`` converts one call's frame per call: about 30-60 µs of numpy overhead for a
few thousand multiply-adds, which at 300 calls and two directions is most of a core. A
``BatchConverter`` does the same conversion (G.711 decode, rate change, G.711 encode) for the
frames of *every* call of one format pair that arrived in a media tick, in a handful of numpy
calls whose cost hardly depends on how many frames there are.

How it stays equal to the per-call path
---------------------------------------
* **One state row per stream.** Each call (one direction) ``open``s a row: the filter history of
  its resampler lives in row ``r`` of one ``(capacity, taps - 1)`` array. A batch gathers the
  rows of its frames, filters, and writes the new history back. A row may appear at most once
  per batch (the media engine reads at most one datagram per socket per pass), so the history
  update is well defined.
* **Whole frames only.** Both rates are multiples of 50 Hz (the unicast line rates and the
  model's 24 kHz are), so 20 ms is a whole number of samples on both sides and the polyphase
  output phase is back at 0 after every frame: the per-stream state is the history alone.
* **The same filter.** The taps are ``codecs._design_lowpass`` with the per-call sizes, so the
  output equals ``Resampler``'s up to float32 summation order (at most 1 LSB after rounding).
* **As one matrix product.** The frame is cut into blocks of ``B`` input samples (a multiple of
  the decimation factor); every block maps to the same ``R`` outputs through the same small
  ``(L, R)`` matrix ``T`` (the polyphase taps placed at each output's offset), so the whole
  batch is ``windows @ T`` with ``windows`` the ``(frames · blocks, L)`` overlapping slices of
  the history+frame buffer: one BLAS call, about 2-4 µs per frame instead of 30-60.
* **No per-frame allocation.** Input staging, history, float work buffer and output are
  preallocated and grown by doubling; frames are read straight into staging rows
  (``recv_into``) and sent straight from output rows (``send`` of a memoryview). Staging
  rows are 2 bytes longer than a frame so an oversized datagram is seen as such, not
  truncated into a valid-looking frame.
* **L16 is host order.** FreeSWITCH's unicast L16 is little-endian (media.md §1.2); on a
  little-endian host decoding it is a dtype view, no copy and no byteswap.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from callcontrol.media.codecs import (
    _ALAW_DECODE,
    _ALAW_ENCODE,
    _ULAW_DECODE,
    _ULAW_ENCODE,
    AudioFormat,
    _design_lowpass,
)

FRAMES_PER_SECOND = 50  # 20 ms frames
_TAPS_PER_PHASE = 16  # as codecs.Resampler
_MIN_BLOCK = 16
_INT16_MIN, _INT16_MAX = np.float32(-32768), np.float32(32767)

_DECODE = {"pcmu": _ULAW_DECODE, "pcma": _ALAW_DECODE}
_ENCODE = {"pcmu": _ULAW_ENCODE, "pcma": _ALAW_ENCODE}


def batchable(src: AudioFormat, dst: AudioFormat) -> bool:
    """True when 20 ms is a whole number of samples on both sides (every rate we use)."""
    return src.rate % FRAMES_PER_SECOND == 0 and dst.rate % FRAMES_PER_SECOND == 0


def frame_size(fmt: AudioFormat) -> int:
    """Bytes of one 20 ms frame of ``fmt``."""
    return fmt.rate // FRAMES_PER_SECOND * (2 if fmt.encoding == "pcm" else 1)


class _Plan:
    """The block matrix of one rate change (see the module docstring)."""

    def __init__(self, src_rate: int, dst_rate: int, ns: int) -> None:
        ratio = Fraction(dst_rate, src_rate)
        up, down = ratio.numerator, ratio.denominator
        k = -(-_TAPS_PER_PHASE * max(up, down) // up)  # as codecs.Resampler
        phases = [h[::-1] for h in (_design_lowpass(up, down, k)[p::up] for p in range(up))]
        block = down  # down divides ns (ns * up = nd * down, up and down coprime)
        while block < _MIN_BLOCK and ns % (2 * block) == 0:
            block *= 2
        outs = block * up // down
        span = ((outs - 1) * down) // up + k
        matrix = np.zeros((span, outs), dtype=np.float32)
        for r in range(outs):
            u = r * down  # upsampled position of output r within its block
            start, phase = u // up, u % up
            matrix[start : start + k, r] = phases[phase]
        self.history = k - 1
        self.block, self.outs, self.span, self.matrix = block, outs, span, matrix
        self.blocks = ns // block


class BatchConverter:
    """Converts 20 ms frames from ``src`` to ``dst`` for many streams at once.

    Use per batch: ``begin()``, then for each frame ``staging_view(i)`` (fill it) and
    ``commit(row, owner)``, then ``finish()`` → ``(n, dst_frame)`` uint8 array (valid until
    the next ``begin``) and ``owners``. ``open``/``release``/``reset`` manage stream rows.
    """

    def __init__(self, src: AudioFormat, dst: AudioFormat, capacity: int = 16) -> None:
        if not batchable(src, dst):
            raise ValueError(f"{src} -> {dst}: 20 ms is not a whole number of samples")
        self.src, self.dst = src, dst
        self.src_frame, self.dst_frame = frame_size(src), frame_size(dst)
        self._ns = src.rate // FRAMES_PER_SECOND
        self._nd = dst.rate // FRAMES_PER_SECOND
        self.identity = src == dst
        self._plan = None if src.rate == dst.rate else _Plan(src.rate, dst.rate, self._ns)
        self._free: list[int] = []
        self._rows = 0
        self._row_capacity = 0
        self._history = np.zeros((0, self._plan.history if self._plan else 0), dtype=np.float32)
        self._grow_rows(capacity)
        self._capacity = 0
        self._staging = np.zeros((0, self.src_frame + 2), dtype=np.uint8)
        self._out_views: Sequence[memoryview] = []
        self._batch_rows = np.zeros(0, dtype=np.intp)
        self._grow_batch(capacity)
        self.pending = 0
        self.owners: list[Any] = []

    # -- stream rows -----------------------------------------------------------------------

    def open(self) -> int:
        """A fresh stream (zero history); give it back with ``release``."""
        if self._free:
            row = self._free.pop()
        else:
            if self._rows == self._row_capacity:
                self._grow_rows(2 * self._row_capacity)
            row, self._rows = self._rows, self._rows + 1
        self.reset(row)
        return row

    def release(self, row: int) -> None:
        self._free.append(row)

    def reset(self, row: int) -> None:
        """Forget the stream's filter history (e.g. after a barge-in)."""
        if self._plan is not None:
            self._history[row] = 0

    @property
    def streams(self) -> int:
        return self._rows - len(self._free)

    # -- one batch -------------------------------------------------------------------------

    def begin(self) -> None:
        self.pending = 0
        self.owners.clear()

    def staging_view(self, i: int) -> memoryview:
        """Writable bytes for frame ``i`` of this batch (``src_frame`` + 2 bytes long)."""
        if i >= self._capacity:
            self._grow_batch(2 * self._capacity)
        return self._in_views[i]

    def commit(self, row: int, owner: Any) -> None:
        """Frame ``pending`` (its staging row is filled) belongs to stream ``row``."""
        self._batch_rows[self.pending] = row
        self.owners.append(owner)
        self.pending += 1

    def stage(self, frame: bytes, row: int, owner: Any) -> None:
        """Copy one whole frame into the next staging row and commit it."""
        self.staging_view(self.pending)[: self.src_frame] = frame
        self.commit(row, owner)

    def output_view(self, i: int) -> memoryview:
        """Frame ``i`` of the last ``finish()``, as bytes (for ``send``)."""
        return self._out_views[i]

    def finish(self) -> npt.NDArray[np.uint8]:
        """Convert the committed frames; ``(n, dst_frame)`` uint8, valid until ``begin``."""
        n = self.pending
        raw = self._staging[:n, : self.src_frame]
        if self.identity:
            self._out_views = self._in_frame_views
            return raw
        pcm = self._decode(raw, n)
        if self._plan is not None:
            pcm = self._resample(pcm, n)
        return self._encode(pcm, n)

    # -- stages ----------------------------------------------------------------------------

    def _decode(self, raw: npt.NDArray[np.uint8], n: int) -> npt.NDArray[np.int16]:
        table = _DECODE.get(self.src.encoding)
        if table is None:
            return raw.view("<i2")
        out = self._pcm_in[:n]
        np.take(table, raw, out=out, mode="clip")
        return out

    def _resample(self, pcm: npt.NDArray[np.int16], n: int) -> npt.NDArray[np.int16]:
        plan = self._plan
        assert plan is not None
        rows = self._batch_rows[:n]
        h = plan.history
        buf = self._work[:n]
        buf[:, :h] = self._history[rows]
        buf[:, h:] = pcm
        self._history[rows] = buf[:, buf.shape[1] - h :]
        s0, s1 = buf.strides
        windows = as_strided(buf, (n, plan.blocks, plan.span), (s0, plan.block * s1, s1))
        out = self._float_out[: n * plan.blocks]
        np.matmul(windows.reshape(n * plan.blocks, plan.span), plan.matrix, out=out)
        np.rint(out, out=out)
        np.maximum(out, _INT16_MIN, out=out)
        np.minimum(out, _INT16_MAX, out=out)
        result = self._pcm_out[:n]
        np.copyto(result, out.reshape(n, self._nd), casting="unsafe")
        return result

    def _encode(self, pcm: npt.NDArray[np.int16], n: int) -> npt.NDArray[np.uint8]:
        table = _ENCODE.get(self.dst.encoding)
        if table is None:
            # G.711 decoded without a rate change is in _pcm_in, anything resampled in _pcm_out
            self._out_views = self._pcm_out_views if self._plan is not None else self._pcm_in_views
            return pcm.view(np.uint8)
        out = self._g711_out[:n]
        np.take(table, pcm.view(np.uint16), out=out, mode="clip")
        self._out_views = self._g711_out_views
        return out

    # -- buffers ---------------------------------------------------------------------------

    def _grow_rows(self, capacity: int) -> None:
        h = self._plan.history if self._plan is not None else 0
        history = np.zeros((capacity, h), dtype=np.float32)
        history[: self._row_capacity] = self._history
        self._history, self._row_capacity = history, capacity

    def _grow_batch(self, capacity: int) -> None:
        # Grown in the middle of a batch: the frames staged so far are kept.
        old = self._capacity
        self._capacity = capacity
        # +2: an oversized datagram must not fit (see the module docstring); even, so L16 rows
        # stay aligned for the int16 view.
        staging = np.zeros((capacity, self.src_frame + 2), dtype=np.uint8)
        staging[:old] = self._staging
        self._staging = staging
        self._in_views = [memoryview(row) for row in self._staging]  # type: ignore[arg-type]
        self._in_frame_views = [v[: self.src_frame] for v in self._in_views]
        batch_rows = np.zeros(capacity, dtype=np.intp)
        batch_rows[:old] = self._batch_rows
        self._batch_rows = batch_rows
        self._pcm_in = np.zeros((capacity, self._ns), dtype=np.int16)
        self._pcm_in_views = self._views_of(self._pcm_in)
        self._pcm_out = np.zeros((capacity, self._nd), dtype=np.int16)
        self._pcm_out_views = self._views_of(self._pcm_out)
        self._g711_out = np.zeros((capacity, self._nd), dtype=np.uint8)
        self._g711_out_views = [memoryview(row) for row in self._g711_out]  # type: ignore[arg-type]
        self._out_views = self._g711_out_views
        plan = self._plan
        if plan is not None:
            self._work = np.zeros((capacity, plan.history + self._ns), dtype=np.float32)
            self._float_out = np.zeros((capacity * plan.blocks, plan.outs), dtype=np.float32)

    @staticmethod
    def _views_of(pcm: npt.NDArray[np.int16]) -> list[memoryview]:
        return [memoryview(row.view(np.uint8)) for row in pcm]
