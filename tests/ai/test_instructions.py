"""What the secretary is told: pt-BR, times and numbers spoken, destinations without numbers."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from callcontrol.ai.instructions import (
    CallContext,
    Destination,
    OpeningHours,
    build_instructions,
    say_instruction,
    spoken_date,
    spoken_digits,
    spoken_time,
)

SP = ZoneInfo("America/Sao_Paulo")
HOURS = OpeningHours({d: ((time(8), time(18)),) for d in range(5)})


@pytest.mark.parametrize(
    ("at", "spoken"),
    [
        (time(14, 0), "às quatorze horas"),
        (time(1, 0), "à uma hora"),
        (time(2, 0), "às duas horas"),
        (time(21, 0), "às vinte e uma horas"),
        (time(22, 0), "às vinte e duas horas"),
        (time(9, 30), "às nove e meia"),
        (time(14, 45), "às quatorze e quarenta e cinco"),
        (time(12, 0), "ao meio-dia"),
        (time(0, 0), "à meia-noite"),
    ],
)
def test_times_are_spoken_in_portuguese(at: time, spoken: str) -> None:
    assert spoken_time(at) == spoken


def test_numbers_are_read_digit_by_digit_in_groups() -> None:
    assert (
        spoken_digits("+5511987654321") == "um um, nove oito sete seis cinco, quatro três dois um"
    )
    assert spoken_digits("1133334444") == "um um, três três três três, quatro quatro quatro quatro"
    assert spoken_digits("+5511987654321", "en").startswith("one one, nine eight")


def _ctx(**kw: object) -> CallContext:
    base: dict[str, object] = {
        "now": datetime(2025, 11, 25, 17, 0, tzinfo=UTC),  # Tuesday, 14:00 in São Paulo
        "timezone": SP,
        "destinations": [
            Destination("Suporte", "TI", "ramal 2001, problemas com o sistema"),
            Destination("Vendas 3003", None),
        ],
        "caller_number": "+5511987654321",
        "company_name": "Acme",
        "secretary_prompt": "Seja breve.",
        "hours": HOURS,
    }
    base.update(kw)
    return CallContext(**base)  # type: ignore[arg-type]


def test_instructions_carry_context_but_never_destination_numbers() -> None:
    text = build_instructions(_ctx())
    assert "secretária virtual de Acme" in text
    assert "Seja breve." in text
    assert "terça-feira, 25 de novembro de 2025" in text and "às quatorze horas" in text
    assert "dentro do horário" in text
    assert "- Suporte (TI)" in text and "Vendas" in text
    assert "2001" not in text and "3003" not in text
    assert "request_handoff" in text and "schedule_callback" in text


def test_closed_hours_and_unknown_caller() -> None:
    night = datetime(2025, 11, 26, 2, 0, tzinfo=UTC)  # 23:00 in São Paulo
    text = build_instructions(_ctx(now=night, caller_number=None))
    assert "fora do horário" in text
    assert "não foi identificado" in text


def test_english_by_configuration() -> None:
    text = build_instructions(_ctx(language="en"))
    assert "virtual receptionist of Acme" in text
    assert "at 2 PM" in text
    assert spoken_date(datetime(2025, 11, 25), "en") == "Tuesday, November 25, 2025"
    assert say_instruction("Hi", "en").endswith("Hi")
