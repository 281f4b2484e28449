"""When to call back: the caller's words → a concrete, reachable ``scheduled_at``.

Pure functions, no I/O, no clock: ``now`` is given. ``schedule(words, now, ...)`` understands
pt-BR and English ("o quanto antes", "agora à tarde", "às 14h", "2 da tarde", "depois das 3",
"amanhã de manhã", "segunda à tarde", "sexta às 10", "daqui a meia hora", "in an hour",
"tomorrow morning", "this afternoon") and returns a :class:`CallbackTime` whose ``scheduled_at``
is timezone-aware in the destination's zone and is:

* never before ``now``;
* inside the working hours (a :class:`~callcontrol.destinations.hours.WorkingHours`, the
  destination's own model, plus extra holiday dates): a time outside them moves to the next
  opening;
* never after the expiry (``now + CALLBACK_EXPIRATION_HOURS``): a wish beyond it is scheduled as
  soon as possible instead (the next working moment), and says so (``moved = "expiry"``). Only
  when no working moment at all lies between now and the expiry (a Friday-night call, a closed
  weekend, 24 hours to keep it) is it outside the hours: then it is the wished moment, capped at
  the expiry (``moved = "no_working_time"``).

Hours without a minute: 1 to 7 o'clock mean the afternoon ("às 3" is 15h), 8 to 12 as said; "da
manhã / tarde / noite" and am/pm decide otherwise. A day without a time means 9h (then moved into
the hours); "à tarde" 14h, "à noite" 19h, "de manhã" 9h — or now, when now is already in that
part of today. A weekday is the next one (today, if the time is still ahead). Words that say no
time at all are kept (``words``) and scheduled as soon as possible with ``understood = False``:
never rejected.

``say("pt-BR")`` is what the AI reads to confirm: "amanhã, sexta-feira, às quatorze horas".
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import attrs

from callcontrol.ai.instructions import spoken_time
from callcontrol.destinations.hours import Interval, WorkingHours

Language = Literal["pt-BR", "en"]
Moved = Literal["closed", "holiday", "expiry", "no_working_time"]

DEFAULT_HOUR = 9
_PERIODS = {  # name: (default hour, first hour, end hour)
    "morning": (9, 6, 12),
    "afternoon": (14, 12, 18),
    "evening": (19, 18, 24),
}
_PT_WEEKDAYS = ("segunda-feira", "terça-feira", "quarta-feira", "quinta-feira", "sexta-feira",
                "sábado", "domingo")  # fmt: skip
_EN_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_PT_MONTHS = ("janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto",
              "setembro", "outubro", "novembro", "dezembro")  # fmt: skip
_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")  # fmt: skip
_WEEKDAY_WORDS = {
    "segunda": 0, "terca": 1, "quarta": 2, "quinta": 3, "sexta": 4, "sabado": 5, "domingo": 6,
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5,
    "sunday": 6,
}  # fmt: skip
_NUMBER_WORDS = {
    "um": 1, "uma": 1, "one": 1, "an": 1, "a": 1, "dois": 2, "duas": 2, "two": 2, "tres": 3,
    "three": 3, "quatro": 4, "four": 4, "cinco": 5, "five": 5, "seis": 6, "six": 6, "sete": 7,
    "seven": 7, "oito": 8, "eight": 8, "nove": 9, "nine": 9, "dez": 10, "ten": 10, "onze": 11,
    "eleven": 11, "doze": 12, "twelve": 12, "quinze": 15, "fifteen": 15, "vinte": 20,
    "twenty": 20, "trinta": 30, "thirty": 30, "quarenta": 40, "forty": 40, "quarenta e cinco": 45,
    "cinquenta": 50, "fifty": 50, "noventa": 90, "ninety": 90, "couple of": 2, "a couple of": 2,
}  # fmt: skip
_NUM = r"(\d{1,3}|" + "|".join(sorted(map(re.escape, _NUMBER_WORDS), key=len, reverse=True)) + ")"

_ASAP = re.compile(
    r"\b(o quanto antes|quanto antes|agora|ja|imediatamente|assim que (possivel|puder|der)|"
    r"o mais rapido|mais rapido possivel|qualquer hora(rio)?|a qualquer momento|urgente|"
    r"antes d[aeo]s?|as soon as possible|asap|right away|now|immediately|any ?time|whenever|"
    r"as soon as|before)\b"
)
_LATER = re.compile(r"\b(mais tarde|later( today| on)?)\b")
_RELATIVE = re.compile(
    r"\b(?:daqui a|daqui|em|dentro de|in|within)\s+(?:(meia hora|half an hour)|"
    + _NUM
    + r"\s*(minutos?|mins?|minutes?|horas?|hours?|h)\b(\s+e\s+meia|\s+and\s+a\s+half)?)"
)
_NEXT = r"(?:(proxim[ao]|next|this|essa|esta|nessa|nesta|na|no|on)\s+)?"
_WEEKDAY = re.compile(r"\b" + _NEXT + r"(" + "|".join(_WEEKDAY_WORDS) + r")\b")
_DAY = re.compile(r"\b(depois de amanha|day after tomorrow|amanha|tomorrow|hoje|today|tonight)\b")
_PERIOD = re.compile(
    r"\b(?:(?:de|da|pela|a|na|this|in the|tomorrow|tonight)\s+)?"
    r"(manha|tarde|noite|madrugada|morning|afternoon|evening|night)\b"
)
_NOON = re.compile(r"\b(meio dia|noon|midday|meia noite|midnight)(\s+e\s+meia)?\b")
_HALF = r"(\s+e\s+meia|\s+e\s+\d{1,2}|\s+and\s+a\s+half)?"
_HHMM = re.compile(r"\b(\d{1,2})\s*(?::|h\b|h(?=\d)|horas?\b)\s*(\d{2})?\s*(am|pm|a\s?m|p\s?m)?")
_AMPM = re.compile(r"\b(\d{1,2})\s*(am|pm|a\s?m|p\s?m)\b")
_OF_PERIOD = re.compile(
    r"\b"
    + _NUM
    + _HALF
    + r"\s+(?:da|de|in the)\s+(manha|tarde|noite|madrugada|morning|afternoon|evening)"
)
_AT = re.compile(
    r"\b(?:as|a|at|after|depois d[ao]s?|a partir d[ao]s?|por volta d[ao]s?|around|about|"
    r"la pelas|pelas)\s+" + _NUM + r"\b" + _HALF
)


@attrs.frozen
class Wish:
    """What the words asked for, before the calendar and the hours have a say."""

    asap: bool = False
    delta: timedelta | None = None
    day_offset: int | None = None
    weekday: int | None = None
    strictly_next: bool = False
    clock: time | None = None
    period: str | None = None

    @property
    def understood(self) -> bool:
        said = (self.delta, self.day_offset, self.weekday, self.clock, self.period)
        return self.asap or any(x is not None for x in said)


@attrs.frozen
class CallbackTime:
    words: str
    scheduled_at: datetime
    understood: bool
    asap: bool
    expires_at: datetime
    now: datetime
    moved: Moved | None = None

    @property
    def in_hours(self) -> bool:
        return self.moved != "no_working_time"

    def say(self, language: Language = "pt-BR") -> str:
        """What the AI reads to confirm: "amanhã, sexta-feira, às quatorze horas"."""
        asap = self.asap or not self.understood or self.moved == "expiry"
        return describe(self.scheduled_at, self.now, language, asap=asap)

    def why_moved(self, language: Language = "pt-BR") -> str | None:
        if self.moved is None:
            return None
        hours = round((self.expires_at - self.now).total_seconds() / 3600)
        return (_EN_MOVED if language == "en" else _PT_MOVED)[self.moved].format(hours=hours)


_PT_MOVED = {
    "closed": "o horário pedido é fora do horário de atendimento",
    "holiday": "o dia pedido é feriado",
    "expiry": "um pedido de retorno vale por {hours} horas; ligaremos o quanto antes",
    "no_working_time": "não há horário de atendimento antes de o pedido expirar ({hours} horas)",
}
_EN_MOVED = {
    "closed": "the time asked for is outside business hours",
    "holiday": "the day asked for is a holiday",
    "expiry": "a callback request is kept for {hours} hours; we will call as soon as possible",
    "no_working_time": "there are no business hours before the request expires ({hours} hours)",
}


# --- understanding the words -------------------------------------------------------------------


def plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(folded.replace("-", " ").replace(".", " ").split())


def _number(text: str) -> int:
    return int(text) if text.isdigit() else _NUMBER_WORDS[text]


def understand(words: str) -> Wish:
    """The wish in ``words`` (pt-BR or English); an empty :class:`Wish` when none."""
    text = plain(words)[:300]
    fields: dict[str, object] = {}
    later = _LATER.search(text)
    if later:
        fields["delta"] = timedelta(hours=2)
        text = text[: later.start()] + " " + text[later.end() :]
    relative = _RELATIVE.search(text)
    if relative:
        fields["delta"] = _delta(relative)
        text = text[: relative.start()] + " " + text[relative.end() :]
    if day := _DAY.search(text):
        key = day[1]
        fields["day_offset"] = {"depois de amanha": 2, "day after tomorrow": 2, "amanha": 1,
                                "tomorrow": 1}.get(key, 0)  # fmt: skip
        if key == "tonight":
            fields["period"] = "evening"
    if weekday := _WEEKDAY.search(text):
        fields["weekday"] = _WEEKDAY_WORDS[weekday[2]]
        fields["strictly_next"] = weekday[1] in ("proxima", "proximo", "next")
    clock, period = _clock(text)
    if clock is not None:
        fields["clock"] = clock
    if period is not None:
        fields["period"] = period
    elif "period" not in fields and (found := _PERIOD.search(text)):
        fields["period"] = _period_name(found[1])
    wish = Wish(**fields)  # type: ignore[arg-type]
    if not wish.understood and _ASAP.search(text):
        return Wish(asap=True)
    return wish


def _delta(match: re.Match[str]) -> timedelta:
    if match[1]:
        return timedelta(minutes=30)
    amount = _number(match[2])
    unit = match[3]
    minutes = amount if unit.startswith("min") else amount * 60
    if match[4]:
        minutes += 30
    return timedelta(minutes=min(minutes, 60 * 24 * 30))


def _period_name(word: str) -> str:
    return {"manha": "morning", "morning": "morning", "madrugada": "morning",
            "tarde": "afternoon", "afternoon": "afternoon"}.get(word, "evening")  # fmt: skip


def _clock(text: str) -> tuple[time | None, str | None]:
    """The clock time asked for, and the part of the day it named, if any."""
    noon = _NOON.search(text)
    if noon:
        hour = 12 if noon[1] in ("meio dia", "noon", "midday") else 0
        return time(hour, 30 if noon[2] else 0), None
    period: str | None = None
    suffix: str | None = None
    if found := _HHMM.search(text):  # 14h / 14:30 / 14h30 / 2:30 pm
        hour, minute, suffix = int(found[1]), int(found[2] or 0), found[3]
    elif found := _AMPM.search(text):  # 2pm
        hour, minute, suffix = int(found[1]), 0, found[2]
    elif found := _OF_PERIOD.search(text):  # 2 da tarde / duas e meia da tarde
        hour, minute = _number(found[1]), _extra_minutes(found[2])
        period = _period_name(found[3])
    elif found := _AT.search(text):  # às 3 / depois das 3 / at 3 / às duas e meia
        hour, minute = _number(found[1]), _extra_minutes(found[2])
    else:
        return None, None
    if hour > 23 or minute > 59:
        return None, None
    if suffix is None and period is None:
        after = _PERIOD.search(text[found.end() :])  # "às 10 da manhã" spelled apart
        period = _period_name(after[1]) if after else None
    hour = _disambiguate(hour, suffix, period)
    return time(hour, minute), period


def _extra_minutes(text: str | None) -> int:
    if not text:
        return 0
    digits = re.search(r"\d+", text)
    return int(digits[0]) if digits else 30


def _disambiguate(hour: int, suffix: str | None, period: str | None) -> int:
    pm = (suffix or "").replace(" ", "") == "pm" or period in ("afternoon", "evening")
    am = (suffix or "").replace(" ", "") == "am" or period == "morning"
    if pm and hour < 12:
        return hour + 12
    if am and hour == 12:
        return 0
    if not am and not pm and 1 <= hour <= 7:
        return hour + 12  # "às 3" on a business line is 15h
    return hour


# --- the calendar ------------------------------------------------------------------------------


def always_open(zone: ZoneInfo) -> WorkingHours:
    return WorkingHours(zone, tuple((Interval(0, 24 * 60),) for _ in range(7)))


def with_holidays(
    hours: WorkingHours | None, holidays: frozenset[date], zone: ZoneInfo
) -> WorkingHours | None:
    """The hours with extra holiday dates; None (always open) stays None without holidays."""
    if not holidays:
        return hours
    base = hours or always_open(zone)
    return attrs.evolve(base, holidays=base.holidays | holidays)


def first_open(hours: WorkingHours | None, when: datetime) -> datetime | None:
    """``when`` if the hours are open then, else the next opening (None if never)."""
    if hours is None or hours.is_open_at(when):
        return when
    return hours.next_opening(when)


def _ceil_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


def wished_moment(wish: Wish, now: datetime) -> datetime:
    """The moment asked for, on the calendar, before hours and expiry (may be in the past)."""
    if wish.asap or not wish.understood:
        return now
    if wish.delta is not None and wish.clock is None and wish.day_offset is None:
        return _ceil_minute(now + wish.delta)
    today = now.date()
    period = _PERIODS.get(wish.period or "")
    clock = wish.clock or (time(period[0]) if period else time(DEFAULT_HOUR))
    if wish.day_offset is not None:
        day = today + timedelta(days=wish.day_offset)
    elif wish.weekday is not None:
        ahead = (wish.weekday - today.weekday()) % 7
        day = today + timedelta(days=ahead)
        if ahead == 0 and (wish.strictly_next or _at(day, clock, now) <= now):
            day += timedelta(days=7)
    else:
        day = today
        if _at(day, clock, now) <= now and not _in_period(now, period):
            day += timedelta(days=1)  # "às 10" said at 11 is tomorrow
    if day == today and wish.clock is None and _in_period(now, period):
        return now  # "agora à tarde" said at 15h
    return _at(day, clock, now)


def _in_period(now: datetime, period: tuple[int, int, int] | None) -> bool:
    return period is not None and period[1] <= now.hour < period[2]


def _at(day: date, clock: time, now: datetime) -> datetime:
    assert now.tzinfo is not None
    return datetime.combine(day, clock, tzinfo=now.tzinfo)


def schedule(
    words: str,
    now: datetime,
    *,
    zone: ZoneInfo,
    hours: WorkingHours | None = None,
    holidays: frozenset[date] = frozenset(),
    expires_after: timedelta = timedelta(hours=24),
) -> CallbackTime:
    """A concrete callback time for the caller's ``words`` (see the module's rules)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = hours.timezone if hours is not None else zone
    now = now.astimezone(zone)
    calendar = with_holidays(hours, holidays, zone)
    expires_at = now + expires_after
    wish = understand(words)
    wanted = max(wished_moment(wish, now), now)
    moved: Moved | None = None
    scheduled = first_open(calendar, wanted)
    if scheduled is not None and scheduled != wanted:
        holiday = calendar is not None and calendar.is_holiday(wanted.date())
        moved = "holiday" if holiday else "closed"
    if scheduled is None or scheduled > expires_at:
        soonest = first_open(calendar, now)
        if soonest is not None and soonest <= expires_at:
            scheduled, moved = soonest, "expiry"
        else:
            scheduled, moved = min(wanted, expires_at), "no_working_time"
    return CallbackTime(
        words=words,
        scheduled_at=scheduled.astimezone(zone),
        understood=wish.understood,
        asap=wish.asap,
        expires_at=expires_at,
        now=now,
        moved=moved,
    )


# --- saying it ---------------------------------------------------------------------------------


def describe(moment: datetime, now: datetime, language: Language = "pt-BR", *,
             asap: bool = False) -> str:  # fmt: skip
    """ "amanhã, sexta-feira, às quatorze horas" / "tomorrow, Friday, at 2 PM"."""
    local = moment.astimezone(now.tzinfo)
    english = language == "en"
    if asap and local - now < timedelta(minutes=1):
        return (
            "as soon as possible, starting now" if english else "o quanto antes, a partir de agora"
        )
    days = (local.date() - now.date()).days
    weekday = (_EN_WEEKDAYS if english else _PT_WEEKDAYS)[local.weekday()]
    if days == 0:
        day = "today" if english else "hoje"
    elif days == 1:
        day = f"tomorrow, {weekday}" if english else f"amanhã, {weekday}"
    elif english:
        day = f"{weekday}, {_EN_MONTHS[local.month - 1]} {local.day}"
    else:
        day = f"{weekday}, dia {local.day} de {_PT_MONTHS[local.month - 1]}"
    phrase = f"{day}, {spoken_time(local.time(), language)}"
    if asap:
        return ("as soon as possible: " if english else "o quanto antes: ") + phrase
    return phrase
