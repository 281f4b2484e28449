"""Scripted B-leg outcomes, and which dial string gets which.

An outcome says three things: whether a channel is created at all (``error/…`` endpoints and
unregistered users create none, so they fire no event — only ``-ERR <CAUSE>``), how long the
leg rings (``None`` = until ``originate_timeout``, which then gives NO_ANSWER), and how the
ringing ends (answer, or a hangup cause). Timing runs on the trio clock, so a 30 s ring
costs nothing under ``MockClock(autojump_threshold=0)``.

    sim.endpoints["user/1001@pbx.example.com"] = Answer(after=2.0)
    sim.endpoints["user/1002@*"] = Busy()                    # prefix match
    sim.endpoints[re.compile(r"loopback/9\\d+/.*")] = NoAnswer()
"""

from __future__ import annotations

import re
from collections.abc import Iterator, MutableMapping

import attrs


@attrs.frozen
class Outcome:
    ring: float | None = 0.0  # seconds of ringing; None rings until originate_timeout
    result: str = "answer"  # "answer", "manual" or a hangup cause
    creates_channel: bool = True
    variables: tuple[tuple[str, str], ...] = ()


@attrs.frozen(init=False)
class Answer(Outcome):
    """Rings ``after`` seconds, then answers (no CHANNEL_PROGRESS when ``after`` is 0)."""

    def __init__(self, after: float = 0.0, **variables: str) -> None:
        self.__attrs_init__(after, "answer", True, tuple(variables.items()))


@attrs.frozen(init=False)
class Voicemail(Outcome):
    """Answered — but by the extension's voicemail or a forward, not by the agent.

    The leg carries ``variable_answered_by=voicemail`` and
    ``variable_current_application=voicemail``, as a FusionPBX leg that fell through to
    voicemail shows in its channel data.
    """

    def __init__(self, after: float = 20.0) -> None:
        self.__attrs_init__(after, "answer", True,
                            (("answered_by", "voicemail"),
                             ("current_application", "voicemail")))


@attrs.frozen(init=False)
class NoAnswer(Outcome):
    """Rings until ``originate_timeout`` (default 60 s): CHANNEL_PROGRESS, then NO_ANSWER."""

    def __init__(self) -> None:
        self.__attrs_init__(None, "NO_ANSWER", True, ())


@attrs.frozen(init=False)
class Manual(Outcome):
    """Rings until the test calls ``await leg.answer()`` / ``leg.hangup()`` or the timeout."""

    def __init__(self) -> None:
        self.__attrs_init__(None, "manual", True, ())


@attrs.frozen(init=False)
class Busy(Outcome):
    """``error/user_busy`` or a DND extension: ``-ERR USER_BUSY``, no channel, no events."""

    def __init__(self) -> None:
        self.__attrs_init__(0.0, "USER_BUSY", False, ())


@attrs.frozen(init=False)
class Fail(Outcome):
    """Fails at once with ``cause`` and no channel (USER_NOT_REGISTERED, SUBSCRIBER_ABSENT…)."""

    def __init__(self, cause: str) -> None:
        self.__attrs_init__(0.0, cause.upper(), False, ())


@attrs.frozen(init=False)
class Unregistered(Outcome):
    def __init__(self) -> None:
        self.__attrs_init__(0.0, "USER_NOT_REGISTERED", False, ())


@attrs.frozen(init=False)
class Reject(Outcome):
    """Rings ``after`` seconds, then CALL_REJECTED (a SIP 603 / a declined call)."""

    def __init__(self, after: float = 2.0) -> None:
        self.__attrs_init__(after, "CALL_REJECTED", True, ())


@attrs.frozen(init=False)
class BusyAfterRinging(Outcome):
    """A leg that rings and then ends USER_BUSY (a loopback ring group, SIP 486 after 180)."""

    def __init__(self, after: float = 0.02) -> None:
        self.__attrs_init__(after, "USER_BUSY", True, ())


@attrs.frozen(init=False)
class HangupAfterRinging(Outcome):
    """Rings ``after`` seconds, then ends with any ``cause``."""

    def __init__(self, after: float, cause: str) -> None:
        self.__attrs_init__(after, cause.upper(), True, ())


Key = str | re.Pattern[str]


class Endpoints(MutableMapping[Key, Outcome]):
    """Outcomes by dial string: exact key, then ``prefix*`` keys (longest first), then regexes.

    Unscripted ``error/<cause>`` dial strings fail with that cause, as FreeSWITCH's error
    endpoint does; anything else gets ``default``.
    """

    def __init__(self, default: Outcome | None = None) -> None:
        self._table: dict[Key, Outcome] = {}
        self.default: Outcome = default if default is not None else Answer(after=1.0)

    def __getitem__(self, key: Key) -> Outcome:
        return self._table[key]

    def __setitem__(self, key: Key, value: Outcome) -> None:
        self._table[key] = value

    def __delitem__(self, key: Key) -> None:
        del self._table[key]

    def __iter__(self) -> Iterator[Key]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def lookup(self, dial: str) -> Outcome:
        if dial in self._table:
            return self._table[dial]
        prefixes = [k for k in self._table if isinstance(k, str) and k.endswith("*")]
        for key in sorted(prefixes, key=len, reverse=True):
            if dial.startswith(key[:-1]):
                return self._table[key]
        for pattern, outcome in self._table.items():
            if isinstance(pattern, re.Pattern) and pattern.fullmatch(dial):
                return outcome
        if dial.startswith("error/"):
            return Fail(dial[len("error/"):])
        return self.default
