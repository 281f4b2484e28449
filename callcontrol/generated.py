"""The values a call generates — UUIDs, tokens, the time of day, media ports — from one source.

Every place that makes up such a value asks the call's ``Source`` (held in a contextvar, so
each call's tasks see their own) instead of ``uuid.uuid4()``, ``secrets.token_hex()`` or
``datetime.now()``. By default that is the system's own; ``serve --record`` installs one that
also writes each value into the call's trace, and ``replay`` one that gives back the recorded
values in order, so a replayed call makes the same decisions (office hours, the same leg UUIDs
in the same commands).
"""

from __future__ import annotations

import contextlib
import random
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime, tzinfo

Kind = str  # one of callcontrol.trace.format.GENERATED_KINDS


class Source:
    """The system's values (what a call uses when nothing else is installed)."""

    def uuid4(self) -> uuid.UUID:
        return uuid.uuid4()

    def token_hex(self, nbytes: int) -> str:
        return secrets.token_hex(nbytes)

    def now(self, tz: tzinfo | None = None) -> datetime:
        return datetime.now(tz)

    def port(self, chosen: int) -> int:
        """A media port the allocator chose; a replay may give back another (the recorded)."""
        return chosen


class RecordingSource(Source):
    """The system's values, each also handed to ``note(kind, text)`` (the trace's ``gen``)."""

    def __init__(self, note: Callable[[Kind, str], None]) -> None:
        self._note = note

    def uuid4(self) -> uuid.UUID:
        value = super().uuid4()
        self._note("uuid4", str(value))
        return value

    def token_hex(self, nbytes: int) -> str:
        value = super().token_hex(nbytes)
        self._note("token_hex", value)
        return value

    def now(self, tz: tzinfo | None = None) -> datetime:
        # recorded with its offset, so a replay can give it back in any zone
        value = datetime.now(UTC)
        self._note("now", value.isoformat())
        return value.astimezone(tz) if tz is not None else value.astimezone().replace(tzinfo=None)

    def port(self, chosen: int) -> int:
        self._note("port", str(chosen))
        return chosen


class PlaybackSource(Source):
    """The recorded values, per kind in the order they were asked for. When a kind runs out
    the system's value is used and counted in ``missing``: the replayed call asked for more
    than the recorded one did, which the replay reports."""

    def __init__(self, recorded: Mapping[Kind, Sequence[str]]) -> None:
        self._left = {kind: list(values) for kind, values in recorded.items()}
        self.missing: dict[Kind, int] = {}

    def _take(self, kind: Kind) -> str | None:
        left = self._left.get(kind)
        if left:
            return left.pop(0)
        self.missing[kind] = self.missing.get(kind, 0) + 1
        return None

    @property
    def unused(self) -> dict[Kind, int]:
        """Recorded values the replayed call never asked for, by kind."""
        return {kind: len(left) for kind, left in self._left.items() if left}

    def uuid4(self) -> uuid.UUID:
        text = self._take("uuid4")
        return uuid.UUID(text) if text is not None else super().uuid4()

    def token_hex(self, nbytes: int) -> str:
        text = self._take("token_hex")
        return text if text is not None else super().token_hex(nbytes)

    def now(self, tz: tzinfo | None = None) -> datetime:
        text = self._take("now")
        if text is None:
            return super().now(tz)
        value = datetime.fromisoformat(text)
        return value.astimezone(tz) if tz is not None else value.astimezone().replace(tzinfo=None)

    def port(self, chosen: int) -> int:
        text = self._take("port")
        return int(text) if text is not None else chosen


class SeededSource(Source):
    """UUIDs from a seeded generator: the same rows every run (a test office that a recorded
    call and its replay must both find)."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4)


_SYSTEM = Source()
_current: ContextVar[Source] = ContextVar("callcontrol_generated", default=_SYSTEM)


def current() -> Source:
    return _current.get()


@contextlib.contextmanager
def using(source: Source) -> Iterator[Source]:
    """Install ``source`` for this task and the tasks it starts from here on."""
    token = _current.set(source)
    try:
        yield source
    finally:
        _current.reset(token)


def uuid4() -> uuid.UUID:
    return _current.get().uuid4()


def uuid4_text() -> str:
    return str(_current.get().uuid4())


def token_hex(nbytes: int) -> str:
    return _current.get().token_hex(nbytes)


def now(tz: tzinfo | None = None) -> datetime:
    return _current.get().now(tz)


def port(chosen: int) -> int:
    return _current.get().port(chosen)
