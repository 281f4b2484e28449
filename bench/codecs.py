"""Codec throughput per 20 ms frame: how many call-directions one core can convert.

Run: .venv/bin/python bench/codecs.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from callcontrol.media import codecs

SECONDS = 1.0


def rate(label: str, fn: Callable[[], object]) -> None:
    for _ in range(50):
        fn()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < SECONDS:
        for _ in range(100):
            fn()
        n += 100
    per_s = n / elapsed
    # a call needs 50 frames/s per direction
    print(
        f"{label:<34} {per_s:>10,.0f} frames/s  {per_s / 50:>8,.0f} streams/core  "
        f"{1e6 / per_s:6.1f} µs/frame"
    )


def main() -> None:
    rng = np.random.default_rng(1)
    f8k = rng.integers(-8000, 8000, 160).astype("<i2").tobytes()
    f16k = rng.integers(-8000, 8000, 320).astype("<i2").tobytes()
    f24k = rng.integers(-8000, 8000, 480).astype("<i2").tobytes()
    ulaw = codecs.ulaw_encode(f8k)
    up8, down8 = codecs.Resampler(8000, 24000), codecs.Resampler(24000, 8000)
    up16, down16 = codecs.Resampler(16000, 24000), codecs.Resampler(24000, 16000)
    rate("resample 8k -> 24k", lambda: up8.process(f8k))
    rate("resample 24k -> 8k", lambda: down8.process(f24k))
    rate("resample 16k -> 24k", lambda: up16.process(f16k))
    rate("resample 24k -> 16k", lambda: down16.process(f24k))
    rate("mu-law encode (8k frame)", lambda: codecs.ulaw_encode(f8k))
    rate("mu-law decode (8k frame)", lambda: codecs.ulaw_decode(ulaw))
    rate("A-law encode (8k frame)", lambda: codecs.alaw_encode(f8k))
    to_model = codecs.converter(codecs.PCMU, codecs.PCM24K)
    rate("PCMU line -> pcm24k (decode+up)", lambda: to_model.convert(ulaw))


if __name__ == "__main__":
    main()
