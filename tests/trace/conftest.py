"""The recorded calls (tests/data/traces/replay/) replay on the unicast ports they were recorded
with, 127.0.0.1:47700 and up, and a replay that finds its port taken reports a difference (as it
must: on a real box that is worth saying). So the tests of this directory that make calls take
those ports one at a time across processes: pytest-xdist workers, and other test runs on the same
machine."""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

LOCK = Path(tempfile.gettempdir()) / "callcontrol-tests-recorded-unicast-ports.lock"


@pytest.fixture(autouse=True)
def _the_recorded_ports_to_this_test() -> Iterator[None]:
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield
