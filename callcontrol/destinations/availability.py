"""Is a destination open now, and if not, what to tell the caller (pt-BR or English).

"O Suporte atende de segunda a sexta, das 8h às 18h. Abrimos amanhã às 8 horas." -- the schedule
is spoken in compact form (8h, 13h30), the next opening the way people say it ("às 8 horas",
"ao meio-dia"), relative to today where it can be ("hoje", "amanhã", "na segunda-feira").
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime

from callcontrol.destinations.hours import MINUTES_PER_DAY, Availability, Interval, WorkingHours
from callcontrol.destinations.wording import join_alternatives, with_article

_PT_DAYS = ("segunda", "terça", "quarta", "quinta", "sexta", "sábado", "domingo")
_PT_DAYS_PLURAL = (
    "às segundas", "às terças", "às quartas", "às quintas", "às sextas", "aos sábados",
    "aos domingos",
)  # fmt: skip
_PT_ON_DAY = (
    "na segunda-feira", "na terça-feira", "na quarta-feira", "na quinta-feira",
    "na sexta-feira", "no sábado", "no domingo",
)  # fmt: skip
_PT_MONTHS = (
    "janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro",
    "outubro", "novembro", "dezembro",
)  # fmt: skip
_EN_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def check_availability(
    name: str,
    hours: WorkingHours | None,
    now: datetime | None = None,
    language: str = "pt-BR",
) -> Availability:
    """``(True, None, None)`` when open at ``now``; else ``(False, message, next_opening)``."""
    now = now or datetime.now(UTC)
    if hours is None or hours.is_open_at(now):
        return Availability(True)
    opening = hours.next_opening(now)
    english = language.startswith("en")
    parts = [_en_schedule(name, hours) if english else _pt_schedule(name, hours)]
    today = now.astimezone(hours.timezone).date()
    if hours.is_holiday(today):
        parts.append("Today is a holiday." if english else "Hoje é feriado.")
    if opening is not None:
        parts.append(_en_opening(today, opening) if english else _pt_opening(today, opening))
    return Availability(False, " ".join(parts), opening)


def _day_groups(hours: WorkingHours) -> list[tuple[tuple[Interval, ...], list[int]]]:
    """Weekdays grouped by identical intervals, in week order of first appearance."""
    groups: dict[tuple[Interval, ...], list[int]] = {}
    for day, intervals in enumerate(hours.weekly):
        if intervals:
            groups.setdefault(intervals, []).append(day)
    return list(groups.items())


def _runs(days: Sequence[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for _, run in itertools.groupby(enumerate(days), key=lambda pair: pair[1] - pair[0]):
        runs.append([day for _, day in run])
    return runs


# --- pt-BR -------------------------------------------------------------------------------------


def _pt_schedule(name: str, hours: WorkingHours) -> str:
    groups = _day_groups(hours)
    if not groups:
        return f"{with_article(name, capital=True)} não tem horário de atendimento disponível."
    phrases = [f"{_pt_days(days)}, {_pt_intervals(intervals)}" for intervals, days in groups]
    return f"{with_article(name, capital=True)} atende {', e '.join(phrases)}."


def _pt_days(days: Sequence[int]) -> str:
    if len(days) == 7:
        return "todos os dias"
    runs = _runs(days)
    if len(runs) == 1 and len(days) == 1:
        return _PT_DAYS_PLURAL[days[0]]
    if len(runs) == 1 and len(days) >= 3:
        return f"de {_PT_DAYS[days[0]]} a {_PT_DAYS[days[-1]]}"
    pieces = [
        f"de {_PT_DAYS[run[0]]} a {_PT_DAYS[run[-1]]}" if len(run) >= 3 else _PT_DAYS[day]
        for run in runs
        for day in (run[:1] if len(run) >= 3 else run)
    ]
    return join_alternatives(pieces, "e")


def _pt_intervals(intervals: Sequence[Interval]) -> str:
    if intervals == (Interval(0, MINUTES_PER_DAY),):
        return "24 horas por dia"
    return join_alternatives([f"{_pt_from(i.start)} {_pt_to(i.end)}" for i in intervals], "e")


def _short(minute: int) -> str:
    hour, rest = divmod(minute, 60)
    return f"{hour}h{rest:02d}" if rest else f"{hour}h"


def _pt_from(minute: int) -> str:
    return f"{'da' if minute // 60 in (0, 1) else 'das'} {_short(minute)}"


def _pt_to(minute: int) -> str:
    return f"{'à' if minute // 60 in (0, 1) else 'às'} {_short(minute)}"


def _pt_opening(today: date, opening: datetime) -> str:
    day = opening.date()
    delta = (day - today).days
    if delta == 0:
        when = "hoje"
    elif delta == 1:
        when = "amanhã"
    elif delta < 7:
        when = _PT_ON_DAY[day.weekday()]
    else:
        when = f"no dia {day.day} de {_PT_MONTHS[day.month - 1]}"
    return f"Abrimos {when} {_pt_spoken_time(opening.hour, opening.minute)}."


def _pt_spoken_time(hour: int, minute: int) -> str:
    if hour == 0:
        base = "à meia-noite"
    elif hour == 12:
        base = "ao meio-dia"
    elif hour == 1:
        base = "à 1 hora"
    else:
        base = f"às {hour} horas"
    if minute:
        base += f" e {minute} {'minuto' if minute == 1 else 'minutos'}"
    return base


# --- English -----------------------------------------------------------------------------------


def _en_schedule(name: str, hours: WorkingHours) -> str:
    groups = _day_groups(hours)
    if not groups:
        return f"{name} has no opening hours."
    phrases = [f"{_en_days(days)}, {_en_intervals(intervals)}" for intervals, days in groups]
    return f"{name} is available {'; and '.join(phrases)}."


def _en_days(days: Sequence[int]) -> str:
    if len(days) == 7:
        return "every day"
    runs = _runs(days)
    pieces = [
        f"{_EN_DAYS[run[0]]} to {_EN_DAYS[run[-1]]}" if len(run) >= 3 else _EN_DAYS[day]
        for run in runs
        for day in (run[:1] if len(run) >= 3 else run)
    ]
    return join_alternatives(pieces, "and")


def _en_intervals(intervals: Sequence[Interval]) -> str:
    if intervals == (Interval(0, MINUTES_PER_DAY),):
        return "24 hours a day"
    return join_alternatives([f"{_clock(i.start)} to {_clock(i.end)}" for i in intervals], "and")


def _clock(minute: int) -> str:
    hour, rest = divmod(minute, 60)
    return f"{hour}:{rest:02d}"


def _en_opening(today: date, opening: datetime) -> str:
    day = opening.date()
    delta = (day - today).days
    if delta == 0:
        when = "today"
    elif delta == 1:
        when = "tomorrow"
    elif delta < 7:
        when = f"on {_EN_DAYS[day.weekday()]}"
    else:
        when = f"on {day.strftime('%B')} {day.day}"
    return f"We open {when} at {_clock(opening.hour * 60 + opening.minute)}."
