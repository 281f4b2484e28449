"""The callback time: what the caller says → a moment someone can really call, and the phrase."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcontrol.callbacks.when import (
    CallbackTime,
    describe,
    schedule,
    understand,
    with_holidays,
)
from callcontrol.destinations.hours import WorkingHours

SP = ZoneInfo("America/Sao_Paulo")
DAY = timedelta(hours=24)
THURSDAY = datetime(2026, 12, 10, 10, 17, tzinfo=SP)  # Thursday, 10:17
OFFICE = WorkingHours.parse(
    {"schedule": {d: ["08:00-12:00", "13:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}},
    "America/Sao_Paulo",
)


def at(words: str, now: datetime = THURSDAY, **kwargs: object) -> CallbackTime:
    kwargs.setdefault("expires_after", 14 * DAY)
    return schedule(words, now, zone=SP, **kwargs)  # type: ignore[arg-type]


def local(result: CallbackTime) -> str:
    return f"{result.scheduled_at:%a %H:%M}"


@pytest.mark.parametrize(
    ("words", "expected", "phrase"),
    [
        ("o quanto antes", "Thu 10:17", "o quanto antes, a partir de agora"),
        ("agora", "Thu 10:17", "o quanto antes, a partir de agora"),
        ("as soon as possible", "Thu 10:17", "o quanto antes, a partir de agora"),
        ("agora à tarde", "Thu 14:00", "hoje, às quatorze horas"),
        ("this afternoon", "Thu 14:00", "hoje, às quatorze horas"),
        ("às 14h", "Thu 14:00", "hoje, às quatorze horas"),
        ("às 14:30", "Thu 14:30", "hoje, às quatorze e meia"),
        ("hoje depois das 14h30", "Thu 14:30", "hoje, às quatorze e meia"),
        ("2 da tarde", "Thu 14:00", "hoje, às quatorze horas"),
        ("duas e meia da tarde", "Thu 14:30", "hoje, às quatorze e meia"),
        ("at 2:30 pm", "Thu 14:30", "hoje, às quatorze e meia"),
        ("depois das 3", "Thu 15:00", "hoje, às quinze horas"),
        ("amanhã de manhã", "Fri 09:00", "amanhã, sexta-feira, às nove horas"),
        ("tomorrow morning", "Fri 09:00", "amanhã, sexta-feira, às nove horas"),
        ("amanhã às 14h", "Fri 14:00", "amanhã, sexta-feira, às quatorze horas"),
        ("sexta às 10", "Fri 10:00", "amanhã, sexta-feira, às dez horas"),
        ("segunda à tarde", "Mon 14:00", "segunda-feira, dia 14 de dezembro, às quatorze horas"),
        ("daqui a meia hora", "Thu 10:47", "hoje, às dez e quarenta e sete"),
        ("daqui a 2 horas", "Thu 12:17", "o quanto antes: hoje, às treze horas"),  # lunch
        ("daqui a duas horas", "Thu 12:17", "o quanto antes: hoje, às treze horas"),
        ("in an hour", "Thu 11:17", "hoje, às onze e dezessete"),
        ("ao meio-dia", "Thu 12:00", "hoje, às treze horas"),  # lunch: moved
    ],
)
def test_each_phrase_on_a_thursday_morning(words: str, expected: str, phrase: str) -> None:
    result = at(words, hours=OFFICE)
    assert result.understood
    if expected == "Thu 12:17" or expected == "Thu 12:00":
        assert local(result) == "Thu 13:00" and result.moved == "closed"
        return
    assert local(result) == expected
    assert result.say() == phrase
    assert result.scheduled_at.tzinfo == SP


def test_english_phrases() -> None:
    assert at("tomorrow morning").say("en") == "tomorrow, Friday, at 9 AM"
    assert at("às 14:30").say("en") == "today, at 2:30 PM"
    assert at("agora").say("en") == "as soon as possible, starting now"
    assert at("segunda à tarde").say("en") == "Monday, December 14, at 2 PM"


def test_the_brief_example_is_said_as_asked() -> None:
    assert at("amanhã às 14 horas").say() == "amanhã, sexta-feira, às quatorze horas"


def test_outside_hours_moves_to_the_next_opening_and_says_why() -> None:
    evening = at("às 20h", hours=OFFICE)
    assert local(evening) == "Fri 08:00" and evening.moved == "closed"
    assert evening.say() == "amanhã, sexta-feira, às oito horas"
    assert evening.why_moved() == "o horário pedido é fora do horário de atendimento"
    saturday = at("sábado de manhã", hours=OFFICE)
    assert local(saturday) == "Mon 08:00"


def test_holidays_given_as_dates_are_skipped() -> None:
    friday = date(2026, 12, 11)
    result = at("amanhã de manhã", hours=OFFICE, holidays=frozenset({friday}))
    assert local(result) == "Mon 08:00" and result.moved == "holiday"
    assert result.why_moved("en") == "the day asked for is a holiday"
    # Always open but for the holiday: the next day at midnight is an opening.
    assert with_holidays(None, frozenset(), SP) is None
    open_all_week = at("amanhã de manhã", holidays=frozenset({friday}))
    assert f"{open_all_week.scheduled_at:%a %d %H:%M}" == "Sat 12 00:00"


def test_a_wish_after_the_expiry_is_scheduled_as_soon_as_possible() -> None:
    result = at("segunda à tarde", hours=OFFICE, expires_after=DAY)
    assert result.scheduled_at == THURSDAY and result.moved == "expiry"
    assert result.say() == "o quanto antes, a partir de agora"
    assert result.why_moved() == (
        "um pedido de retorno vale por 24 horas; ligaremos o quanto antes"
    )


def test_no_working_time_before_the_expiry_keeps_the_wish_capped() -> None:
    friday_night = datetime(2026, 12, 11, 19, 0, tzinfo=SP)
    result = at("amanhã às 10", friday_night, hours=OFFICE, expires_after=DAY)
    assert result.moved == "no_working_time" and not result.in_hours
    assert result.scheduled_at == datetime(2026, 12, 12, 10, 0, tzinfo=SP)
    late = at("segunda às 10", friday_night, hours=OFFICE, expires_after=DAY)
    assert late.scheduled_at == friday_night + DAY


def test_unparseable_words_are_kept_and_scheduled_as_soon_as_possible() -> None:
    result = at("quando a lua estiver cheia", hours=OFFICE)
    assert not result.understood and result.words == "quando a lua estiver cheia"
    assert result.scheduled_at == THURSDAY
    night = at("banana", datetime(2026, 12, 10, 22, 0, tzinfo=SP), hours=OFFICE)
    assert not night.understood and local(night) == "Fri 08:00"
    assert night.say() == "o quanto antes: amanhã, sexta-feira, às oito horas"


def test_a_time_already_gone_today_is_tomorrow_or_now() -> None:
    assert local(at("às 10")) == "Fri 10:00"  # said at 10:17
    assert at("hoje às 10").scheduled_at == THURSDAY  # "today" said: as soon as possible
    assert local(at("à tarde", datetime(2026, 12, 10, 15, 5, tzinfo=SP))) == "Thu 15:05"
    assert local(at("à tarde", datetime(2026, 12, 10, 19, 5, tzinfo=SP))) == "Fri 14:00"
    assert at("quinta às 9").scheduled_at.day == 17  # gone today: next week
    assert local(at("quinta às 11")) == "Thu 11:00"
    assert local(at("próxima quinta às 11")) == "Thu 11:00"
    assert at("próxima quinta às 11").scheduled_at.day == 17


def test_understanding_alone() -> None:
    assert understand("o quanto antes").asap
    assert not understand("").understood
    assert understand("tonight").period == "evening"
    assert understand("daqui a uma hora e meia").delta == timedelta(minutes=90)
    assert understand("in 20 minutes").delta == timedelta(minutes=20)
    assert understand("mais tarde").delta == timedelta(hours=2)
    assert understand("10 da manhã").clock is not None
    assert understand("meia-noite").clock is not None


def test_describe_further_days_and_naive_now_is_refused() -> None:
    assert describe(THURSDAY + 3 * DAY, THURSDAY, "en") == "Sunday, December 13, at 10:17 AM"
    with pytest.raises(ValueError):
        schedule("agora", datetime(2026, 12, 10, 10, 0), zone=SP)


# --- properties --------------------------------------------------------------------------------

PHRASES = [
    "o quanto antes", "agora", "as soon as possible", "agora à tarde", "às 14h", "às 14:30",
    "2 da tarde", "depois das 3", "amanhã de manhã", "segunda à tarde", "sexta às 10",
    "daqui a meia hora", "daqui a 2 horas", "in an hour", "tomorrow morning", "this afternoon",
    "à noite", "às 7", "domingo", "meio-dia", "às 23:59", "às 0h", "daqui a 90 minutos", "",
]  # fmt: skip
HOURS = [
    None,
    OFFICE,
    WorkingHours.parse({"schedule": {"sat": "08:00-12:00"}}, "America/Sao_Paulo"),
    WorkingHours.parse({"schedule": {"mon": "22:00-02:00"}}, "America/Sao_Paulo"),  # overnight
    WorkingHours.parse(
        {"timezone": "America/Manaus", "schedule": {"tue": "09:00-17:00"}}, "America/Sao_Paulo"
    ),
]
nows = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(SP)
)
words = st.sampled_from(PHRASES) | st.text(max_size=30)
holidays = st.frozensets(st.dates(min_value=date(2024, 12, 25), max_value=date(2031, 1, 5)),
                         max_size=8)  # fmt: skip


@given(
    words,
    nows,
    st.sampled_from(HOURS),
    holidays,
    st.integers(min_value=1, max_value=24 * 14),
)
def test_never_in_the_past_never_after_expiry_inside_hours_when_possible(
    said: str, now: datetime, hours: WorkingHours | None, days_off: frozenset[date], ttl: int
) -> None:
    expires_after = timedelta(hours=ttl)
    result = schedule(said, now, zone=SP, hours=hours, holidays=days_off,
                      expires_after=expires_after)  # fmt: skip
    assert now <= result.scheduled_at <= now + expires_after
    assert result.scheduled_at.utcoffset() is not None
    calendar = with_holidays(hours, days_off, hours.timezone if hours else SP)
    if result.in_hours and calendar is not None:
        assert calendar.is_open_at(result.scheduled_at)
    if not result.in_hours:
        assert calendar is not None
        soonest = calendar.next_opening(now)
        assert soonest is None or soonest > now + expires_after
    assert result.say() and result.say("en")
