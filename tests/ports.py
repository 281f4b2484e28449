"""The ports this test process binds. Under pytest-xdist the workers (``PYTEST_XDIST_WORKER`` =
gw0, gw1, ...) run tests at the same moment, so a fixed range would be shared by two calls at
once: each worker shifts every range the tests name by its own offset, and a run without
xdist keeps the ranges as written."""

from __future__ import annotations

import os

WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
WORKERS = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))

# The unicast ranges the tests name lie in 46000-47999; each worker takes the next 2000 (gw0 to
# gw6 stay below 60000, clear of the doctor test's 61000-61999).
UNICAST_FIRST, UNICAST_SPAN = 46000, 2000
# The media bench's smoke runs (one load: 2 ports per call from --first-port) take 32000 up,
# 200 ports per worker: clear of the unicast ranges above and of the media tests' windows below.
BENCH_FIRST = 32000
# The media tests' probed UDP windows: 20000-31999, one slice per worker.
WINDOWS = (20000, 32000)


def unicast_ports(first: int, last: int) -> str:
    """``CALLCONTROL_UNICAST_PORTS`` for the range ``first``-``last`` (within 46000-47999) as
    this worker binds it."""
    if not UNICAST_FIRST <= first <= last < UNICAST_FIRST + UNICAST_SPAN:
        raise ValueError(f"{first}-{last} is outside the tests' unicast ranges")
    shift = UNICAST_SPAN * WORKER
    return f"127.0.0.1:{first + shift}-{last + shift}"


def bench_first_port(which: int) -> int:
    """``--first-port`` of the media bench's smoke run number ``which`` (0 or 1): each test its
    own 100 ports, each worker its own 200."""
    return BENCH_FIRST + 200 * WORKER + 100 * which


def window_range() -> tuple[int, int]:
    """Where this worker's media tests may probe for a free window of UDP ports."""
    low, high = WINDOWS
    size = (high - low) // WORKERS
    return low + size * WORKER, low + size * (WORKER + 1)
