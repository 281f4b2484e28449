"""Failed sign-ins counted per key (a client IP, a username) over a sliding window.

After ``limit`` failures within ``window_seconds`` the key is refused until its oldest failure
leaves the window; ``retry_after`` says in how many seconds. A key that is refused is not tried
at all (the password is not checked), so guessing on stops helping. Kept in memory, in the one
process that serves the API (worker 0, see ``callcontrol.workers``): a restart forgets it. At
most ``max_keys`` keys are kept; beyond that the ones idle longest are dropped, so a flood of
made-up usernames cannot grow it without bound.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

import attrs


@attrs.define(eq=False)
class FailureLimit:
    limit: int = 5
    window_seconds: float = 300.0
    max_keys: int = 10_000
    _failures: OrderedDict[str, deque[float]] = attrs.field(factory=OrderedDict, init=False)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, key: str, now: float) -> int | None:
        """Seconds until ``key`` may try again, or None when it may now."""
        times = self._recent(key, now)
        if len(times) < self.limit:
            return None
        return max(1, math.ceil(times[-self.limit] + self.window_seconds - now))

    def failed(self, key: str, now: float) -> None:
        times = self._recent(key, now)
        self._failures[key] = times
        self._failures.move_to_end(key)
        times.append(now)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)
