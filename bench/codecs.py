"""Codec throughput per 20 ms frame: how many call-directions one core can convert.

Run: PYTHONPATH=. .venv/bin/python bench/codecs.py [--quick]  (``--quick``: 0.1 s per figure)

Resampling is timed for each backend side by side, then turned into calls per core for an L16
line at 8 and 16 kHz: a call resamples one 20 ms frame up to the model and one down to the line,
50 times a second, so calls/core = 1 / (50 · (up + down)) for resampling alone.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from callcontrol.media import codecs

SECONDS = 1.0  # per figure
REPEATS = 3  # best of: other work on this 2-core machine only ever makes a run slower
FRAMES_PER_S = 50  # per call direction


def frames_per_s(fn: Callable[[], object], seconds: float) -> float:
    for _ in range(50):
        fn()
    best = 0.0
    for _ in range(REPEATS):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / REPEATS:
            for _ in range(100):
                fn()
            n += 100
        best = max(best, n / elapsed)
    return best


def rate(label: str, fn: Callable[[], object], seconds: float) -> None:
    per_s = frames_per_s(fn, seconds)
    print(
        f"{label:<34} {per_s:>10,.0f} frames/s  {per_s / FRAMES_PER_S:>8,.0f} streams/core  "
        f"{1e6 / per_s:6.1f} µs/frame"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="0.1 s per figure: check it works")
    seconds = 0.1 if parser.parse_args().quick else SECONDS
    rng = np.random.default_rng(1)
    frames = {r: rng.integers(-8000, 8000, r // 50).astype("<i2").tobytes() for r in (8000, 16000)}
    frames[24000] = rng.integers(-8000, 8000, 480).astype("<i2").tobytes()
    backends: list[codecs.ResamplerBackend] = ["numpy"]
    if codecs.SOXR_AVAILABLE:
        backends.append("soxr")
    else:
        print("soxr not installed: numpy only")

    print(f"{'resample, frames/s (µs/frame)':<22}" + "".join(f"{b:>22}" for b in backends))
    us: dict[tuple[str, int, int], float] = {}
    for src, dst in [(8000, 24000), (24000, 8000), (16000, 24000), (24000, 16000)]:
        cells = []
        for backend in backends:
            r = codecs.Resampler(src, dst, backend=backend)
            frame = frames[src]
            per_s = frames_per_s(lambda r=r, frame=frame: r.process(frame), seconds)
            us[backend, src, dst] = 1e6 / per_s
            cells.append(f"{per_s:>12,.0f} ({1e6 / per_s:5.1f})")
        print(f"{src // 1000}k -> {dst // 1000}k{'':<20}" + "".join(f"{c:>22}" for c in cells))

    print(f"\n{'calls/core, resampling only':<30}" + "".join(f"{b:>14}" for b in backends))
    for line in (8000, 16000):
        cells = []
        for backend in backends:
            both_us = us[backend, line, 24000] + us[backend, 24000, line]
            cells.append(f"{1e6 / (FRAMES_PER_S * both_us):>14,.0f}")
        print(f"L16 {line // 1000} kHz line, both directions" + " " * 2 + "".join(cells))
    latency = {
        line: codecs.Resampler(line, 24000).latency / 24
        + codecs.Resampler(24000, line).latency / (line / 1000)
        for line in (8000, 16000)
    }
    print(
        f"default backend {codecs.DEFAULT_BACKEND}: lead-in latency up+down "
        + ", ".join(f"{ms:.1f} ms at {line // 1000} kHz" for line, ms in latency.items())
    )

    print()
    ulaw = codecs.ulaw_encode(frames[8000])
    rate("mu-law encode (8k frame)", lambda: codecs.ulaw_encode(frames[8000]), seconds)
    rate("mu-law decode (8k frame)", lambda: codecs.ulaw_decode(ulaw), seconds)
    rate("A-law encode (8k frame)", lambda: codecs.alaw_encode(frames[8000]), seconds)
    to_model = codecs.converter(codecs.PCMU, codecs.PCM24K)
    rate("PCMU line -> pcm24k (decode+up)", lambda: to_model.convert(ulaw), seconds)


if __name__ == "__main__":
    main()
