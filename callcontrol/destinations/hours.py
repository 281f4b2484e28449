"""Working hours of a destination: weekly intervals in a time zone, and holidays.

The ``working_hours`` JSON (NULL means always open)::

    {"timezone": "America/Sao_Paulo",
     "schedule": {"mon": ["08:00-12:00", "13:00-18:00"], "sat": ["08:00-12:00"]},
     "holidays": ["2025-12-24", "12-25"]}

Day keys are ``mon``..``sun`` (or ``monday``.., or ``seg``, ``ter``, ``qua``, ``qui``, ``sex``,
``sab``, ``dom``); an interval is ``"HH:MM-HH:MM"`` or ``["HH:MM", "HH:MM"]``; an interval that
ends at or before it starts runs past midnight. A holiday ``YYYY-MM-DD`` is one day, ``MM-DD``
every year. The earlier release's ``{"start": "08:00", "end": "18:00", "days": [1, 2, 3, 4, 5]}``
(0 or 7 = Sunday) is read too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

MINUTES_PER_DAY = 24 * 60
_SEARCH_DAYS = 400  # a year of holidays cannot hide the next opening from this horizon

_DAY_NAMES = {
    0: ("mon", "monday", "seg", "segunda"),
    1: ("tue", "tuesday", "ter", "terca", "terça"),
    2: ("wed", "wednesday", "qua", "quarta"),
    3: ("thu", "thursday", "qui", "quinta"),
    4: ("fri", "friday", "sex", "sexta"),
    5: ("sat", "saturday", "sab", "sáb", "sabado", "sábado"),
    6: ("sun", "sunday", "dom", "domingo"),
}
_DAY_BY_NAME = {name: day for day, names in _DAY_NAMES.items() for name in names}
_TIME = re.compile(r"^\s*(\d{1,2})(?:\s*[:h]\s*(\d{2})?)?\s*$")


class InvalidWorkingHours(ValueError):
    pass


@attrs.frozen(order=True)
class Interval:
    """Minutes after local midnight, ``start`` inclusive, ``end`` exclusive (up to 1440)."""

    start: int
    end: int

    def contains(self, minute: int) -> bool:
        return self.start <= minute < self.end


class Availability(NamedTuple):
    """``(is_open, message, next_opening)``: the message (what to tell the caller) and the next
    opening (aware datetime) are set only when closed; next_opening is None if it never opens."""

    is_open: bool
    message: str | None = None
    next_opening: datetime | None = None


@attrs.frozen
class WorkingHours:
    timezone: ZoneInfo
    # index 0 = Monday, like date.weekday()
    weekly: tuple[tuple[Interval, ...], ...]
    holidays: frozenset[date] = frozenset()
    yearly_holidays: frozenset[tuple[int, int]] = frozenset()

    @classmethod
    def parse(cls, data: Any, default_timezone: str) -> WorkingHours | None:
        """The hours described by ``data`` (the column's JSON), None when always open."""
        if data is None or data == {}:
            return None
        if not isinstance(data, Mapping):
            raise InvalidWorkingHours("must be a JSON object")
        timezone = _zone(data.get("timezone") or default_timezone)
        if "schedule" in data:
            weekly = _weekly_from_schedule(data["schedule"])
        elif "start" in data or "end" in data:
            weekly = _weekly_from_legacy(data)
        else:
            raise InvalidWorkingHours('needs "schedule" (or "start"/"end"/"days")')
        dated, yearly = _holidays(data.get("holidays") or [])
        return cls(timezone, weekly, dated, yearly)

    def is_holiday(self, day: date) -> bool:
        return day in self.holidays or (day.month, day.day) in self.yearly_holidays

    def intervals_on(self, day: date) -> tuple[Interval, ...]:
        return () if self.is_holiday(day) else self.weekly[day.weekday()]

    def is_open_at(self, when: datetime) -> bool:
        local = when.astimezone(self.timezone)
        minute = local.hour * 60 + local.minute
        return any(i.contains(minute) for i in self.intervals_on(local.date()))

    def next_opening(self, when: datetime) -> datetime | None:
        """The first moment after ``when`` at which an interval starts, in the local zone."""
        local = when.astimezone(self.timezone)
        for offset in range(_SEARCH_DAYS):
            day = local.date() + timedelta(days=offset)
            for interval in self.intervals_on(day):
                opening = _at(day, interval.start, self.timezone)
                if opening > local and not self._continues_previous_day(day, interval):
                    return opening
        return None

    def _continues_previous_day(self, day: date, interval: Interval) -> bool:
        # 00:00 after an interval that ran to midnight is not an opening (overnight shifts).
        if interval.start != 0:
            return False
        previous = self.intervals_on(day - timedelta(days=1))
        return any(i.end == MINUTES_PER_DAY for i in previous)


def _zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidWorkingHours(f"unknown time zone {name!r}") from None


def _at(day: date, minute: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone) + timedelta(minutes=minute)


def parse_minute(text: Any, *, allow_24: bool) -> int:
    match = _TIME.match(str(text))
    if match is None:
        raise InvalidWorkingHours(f"bad time {text!r} (use HH:MM)")
    hour, minute = int(match[1]), int(match[2] or 0)
    limit = 24 if allow_24 else 23
    if hour > limit or minute > 59 or (hour == 24 and minute):
        raise InvalidWorkingHours(f"bad time {text!r}")
    return hour * 60 + minute


def _interval(spec: Any) -> tuple[int, int]:
    parts: list[Any]
    if isinstance(spec, str):
        parts = spec.split("-")
    elif isinstance(spec, Sequence):
        parts = list(spec)
    elif isinstance(spec, Mapping):
        parts = [spec.get("start"), spec.get("end")]
    else:
        parts = []
    if len(parts) != 2:
        raise InvalidWorkingHours(f'bad interval {spec!r} (use "08:00-12:00")')
    return parse_minute(parts[0], allow_24=False), parse_minute(parts[1], allow_24=True)


def _day(key: Any) -> int:
    text = str(key).strip().casefold()
    if text in _DAY_BY_NAME:
        return _DAY_BY_NAME[text]
    if text.isascii() and text.isdigit() and int(text) <= 7:
        return (int(text) - 1) % 7  # 1 = Monday ... 7 or 0 = Sunday
    raise InvalidWorkingHours(f"unknown day {key!r}")


def _weekly_from_schedule(schedule: Any) -> tuple[tuple[Interval, ...], ...]:
    if not isinstance(schedule, Mapping):
        raise InvalidWorkingHours('"schedule" must map days to intervals')
    days: list[list[Interval]] = [[] for _ in range(7)]
    for key, specs in schedule.items():
        day = _day(key)
        for spec in [specs] if isinstance(specs, str) else specs or []:
            _add(days, day, *_interval(spec))
    return _normalised(days)


def _weekly_from_legacy(data: Mapping[str, Any]) -> tuple[tuple[Interval, ...], ...]:
    start, end = _interval([data.get("start", "00:00"), data.get("end", "24:00")])
    days: list[list[Interval]] = [[] for _ in range(7)]
    for key in data.get("days", [1, 2, 3, 4, 5]):
        _add(days, _day(key), start, end)
    return _normalised(days)


def _add(days: list[list[Interval]], day: int, start: int, end: int) -> None:
    if end > start:
        days[day].append(Interval(start, end))
        return
    # Past midnight: the tail belongs to the next weekday.
    days[day].append(Interval(start, MINUTES_PER_DAY))
    if end:
        days[(day + 1) % 7].append(Interval(0, end))


def _normalised(days: list[list[Interval]]) -> tuple[tuple[Interval, ...], ...]:
    merged: list[tuple[Interval, ...]] = []
    for intervals in days:
        out: list[Interval] = []
        for interval in sorted(intervals):
            if out and interval.start <= out[-1].end:
                out[-1] = Interval(out[-1].start, max(out[-1].end, interval.end))
            else:
                out.append(interval)
        merged.append(tuple(out))
    return tuple(merged)


def _holidays(items: Any) -> tuple[frozenset[date], frozenset[tuple[int, int]]]:
    if not isinstance(items, list):
        raise InvalidWorkingHours('"holidays" must be a list of dates')
    dated: set[date] = set()
    yearly: set[tuple[int, int]] = set()
    for item in items:
        text = str(item.get("date") if isinstance(item, Mapping) else item).strip()
        try:
            if len(text) == 5:
                month, day = (int(part) for part in text.split("-"))
                date(2000, month, day)  # validates, leap day included
                yearly.add((month, day))
            else:
                dated.add(date.fromisoformat(text))
        except ValueError:
            raise InvalidWorkingHours(f"bad holiday {item!r} (YYYY-MM-DD or MM-DD)") from None
    return frozenset(dated), frozenset(yearly)
