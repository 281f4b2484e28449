"""Working hours: open or not, when it opens next, and what the caller hears."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcontrol.destinations import (
    Availability,
    InvalidWorkingHours,
    WorkingHours,
    check_availability,
)

SP = ZoneInfo("America/Sao_Paulo")
WEEKDAYS_8_TO_18 = {
    "schedule": {d: ["08:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
}
LUNCH = {
    "timezone": "America/Sao_Paulo",
    "schedule": {
        "seg": ["08:00-12:00", "13:30-18:00"],
        "ter": ["08:00-12:00", "13:30-18:00"],
        "qua": [["08:00", "12:00"], ["13:30", "18:00"]],
        "sab": "8h-12h",
    },
    "holidays": ["12-25", "2025-12-01"],
}


def sp(*args: int) -> datetime:
    return datetime(*args, tzinfo=SP)  # type: ignore[misc]


def hours(data: object) -> WorkingHours:
    parsed = WorkingHours.parse(data, "America/Sao_Paulo")
    assert parsed is not None
    return parsed


def test_no_hours_means_always_open() -> None:
    assert WorkingHours.parse(None, "America/Sao_Paulo") is None
    assert check_availability("Suporte", None, sp(2025, 11, 23, 3, 0)) == Availability(True)


def test_the_briefs_example_evening_before_a_weekday() -> None:
    result = check_availability("Suporte", hours(WEEKDAYS_8_TO_18), sp(2025, 11, 25, 19, 0))
    assert result == Availability(
        False,
        "O Suporte atende de segunda a sexta, das 8h às 18h. Abrimos amanhã às 8 horas.",
        sp(2025, 11, 26, 8, 0),
    )
    is_open, message, opening = result  # unpacks like (open, message, next opening)
    assert not is_open and message and opening


def test_friday_evening_opens_on_monday() -> None:
    _, message, opening = check_availability(
        "Suporte", hours(WEEKDAYS_8_TO_18), sp(2025, 11, 28, 18, 0)
    )
    assert opening == sp(2025, 12, 1, 8, 0)
    assert message is not None and message.endswith("Abrimos na segunda-feira às 8 horas.")


def test_lunch_break_is_closed_and_opens_the_same_day() -> None:
    h = hours(LUNCH)
    assert h.is_open_at(sp(2025, 11, 24, 11, 59))
    assert not h.is_open_at(sp(2025, 11, 24, 12, 0))
    result = check_availability("Financeiro", h, sp(2025, 11, 24, 12, 30))
    assert result.message == (
        "O Financeiro atende de segunda a quarta, das 8h às 12h e das 13h30 às 18h, "
        "e aos sábados, das 8h às 12h. Abrimos hoje às 13 horas e 30 minutos."
    )
    assert result.next_opening == sp(2025, 11, 24, 13, 30)


def test_holidays_close_the_day_yearly_or_once() -> None:
    h = hours(LUNCH)
    monday_christmas = sp(2028, 12, 25, 10, 0)  # "12-25": every year
    assert monday_christmas.weekday() == 0
    assert not h.is_open_at(monday_christmas)
    assert h.is_open_at(sp(2028, 12, 26, 10, 0))
    assert not h.is_open_at(sp(2025, 12, 1, 10, 0))  # "2025-12-01": that Monday only
    assert h.is_open_at(sp(2025, 12, 8, 10, 0))
    result = check_availability("Financeiro", h, monday_christmas)
    assert result.message is not None
    assert result.message.endswith("Hoje é feriado. Abrimos amanhã às 8 horas.")


def test_time_zone_is_honoured() -> None:
    h = hours({**WEEKDAYS_8_TO_18, "timezone": "America/Manaus"})  # UTC-4, São Paulo is UTC-3
    at_8_in_sao_paulo = sp(2025, 11, 25, 8, 30)
    assert not h.is_open_at(at_8_in_sao_paulo)  # 7:30 in Manaus
    assert h.is_open_at(at_8_in_sao_paulo + timedelta(hours=1))
    assert h.is_open_at(datetime(2025, 11, 25, 12, 0, tzinfo=UTC))


def test_overnight_interval_runs_past_midnight() -> None:
    h = hours({"schedule": {"fri": "22:00-06:00"}})
    assert h.is_open_at(sp(2025, 11, 28, 23, 0))
    assert h.is_open_at(sp(2025, 11, 29, 5, 59))
    assert not h.is_open_at(sp(2025, 11, 29, 6, 0))
    assert h.next_opening(sp(2025, 11, 29, 6, 0)) == sp(2025, 12, 5, 22, 0)


def test_earlier_release_format_is_read() -> None:
    h = hours({"start": "09:00", "end": "17:00", "days": [1, 2, 3, 4, 5]})
    assert h.is_open_at(sp(2025, 11, 24, 9, 0))
    assert not h.is_open_at(sp(2025, 11, 23, 10, 0))  # Sunday


def test_english_message() -> None:
    result = check_availability(
        "Support", hours(WEEKDAYS_8_TO_18), sp(2025, 11, 28, 19, 0), language="en"
    )
    assert result.message == (
        "Support is available Monday to Friday, 8:00 to 18:00. We open on Monday at 8:00."
    )


def test_far_opening_names_the_date_and_no_opening_says_so() -> None:
    h = hours({"schedule": {"mon": "08:00-12:00"}, "holidays": ["2025-12-01", "2025-12-08"]})
    result = check_availability("Jurídico", h, sp(2025, 11, 24, 13, 0))
    assert result.next_opening == sp(2025, 12, 15, 8, 0)
    assert result.message is not None and result.message.endswith(
        "Abrimos no dia 15 de dezembro às 8 horas."
    )
    closed = hours({"schedule": {}})
    assert check_availability("Jurídico", closed, sp(2025, 11, 24, 13, 0)) == Availability(
        False, "O Jurídico não tem horário de atendimento disponível.", None
    )


@pytest.mark.parametrize(
    "data",
    [
        "08:00-18:00",
        {"schedule": {"funday": ["08:00-18:00"]}},
        {"schedule": {"mon": ["25:00-26:00"]}},
        {"schedule": {"mon": ["08:00"]}},
        {"schedule": {"mon": ["08:00-18:00"]}, "holidays": ["31/12"]},
        {"schedule": {"mon": ["08:00-18:00"]}, "timezone": "Mars/Olympus"},
        {"days": [1]},
    ],
)
def test_invalid_hours_are_refused(data: object) -> None:
    with pytest.raises(InvalidWorkingHours):
        WorkingHours.parse(data, "America/Sao_Paulo")


@given(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1)))
def test_closed_always_has_a_later_opening_that_is_open(naive: datetime) -> None:
    h = hours(LUNCH)
    now = naive.replace(tzinfo=SP)
    result = check_availability("Financeiro", h, now)
    if result.is_open:
        return
    assert result.next_opening is not None and result.next_opening > now
    assert h.is_open_at(result.next_opening)
    assert not h.is_open_at(result.next_opening - timedelta(minutes=1))


@pytest.mark.parametrize(
    ("schedule", "pt", "en"),
    [
        (
            {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
            "atende todos os dias, 24 horas por dia.",
            "is available every day, 24 hours a day.",
        ),
        ({"sat": ["09:00-13:00"]}, "atende aos sábados", "is available Saturday, 9:00 to 13:00."),
        (
            {"mon": ["09:00-12:00"], "wed": ["09:00-12:00"], "fri": ["09:00-12:00"]},
            "segunda, quarta e sexta",
            "Monday, Wednesday and Friday",
        ),
        (
            {
                "mon": ["08:00-18:00"],
                "tue": ["08:00-18:00"],
                "wed": ["08:00-18:00"],
                "sat": ["08:00-18:00"],
            },
            "de segunda a quarta e sábado",
            "Monday to Wednesday and Saturday",
        ),
    ],
)
def test_schedules_are_read_out_in_both_languages(schedule, pt, en) -> None:
    hh = hours({"schedule": schedule, "holidays": ["2026-11-25"]})
    moment = sp(2026, 11, 25, 10, 0)  # a holiday Wednesday
    closed_pt = check_availability("Suporte", hh, moment)
    closed_en = check_availability("Support", hh, moment, language="en")
    assert not closed_pt.is_open and not closed_en.is_open
    assert pt in closed_pt.message
    assert en in closed_en.message
    assert "Hoje é feriado." in closed_pt.message
    assert "Today is a holiday." in closed_en.message


def test_english_opening_days() -> None:
    hh = hours({"schedule": {"fri": ["08:00-18:00"]}})
    assert (
        "We open on Friday at 8:00."
        in check_availability("Support", hh, sp(2026, 11, 25, 20, 0), "en").message
    )
    assert (
        "We open today at 8:00."
        in check_availability("Support", hh, sp(2026, 11, 27, 7, 0), "en").message
    )
    assert (
        "We open tomorrow at 8:00."
        in check_availability("Support", hh, sp(2026, 11, 26, 9, 0), "en").message
    )
