"""Brazilian numbers: every way they arrive gives one E.164, a read-back, and dictation."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from callcontrol.callbacks.phone import (
    DDDS,
    Kind,
    PhoneNumber,
    PhoneProblem,
    Problem,
    dictated_digits,
    from_dictation,
    normalise,
    number_words,
    parse_number,
    readback,
)


def e164(result: PhoneNumber | PhoneProblem) -> str:
    assert isinstance(result, PhoneNumber), result
    return result.e164


@pytest.mark.parametrize(
    "given_",
    [
        "011999990000",  # FreeSWITCH caller ID: trunk 0 + DDD
        "+5511999990000",
        "5511999990000",
        "0 21 11 99999 0000",  # 0 + carrier 21 + DDD
        "014 11 99999-0000",
        "(11) 99999-0000",
        "11 9 9999 0000",
        "+55 (11) 99999-0000",
        "11 9999-0000",  # an old mobile without its 9th digit
    ],
)
def test_every_shape_of_a_sao_paulo_mobile_is_one_number(given_: str) -> None:
    number = normalise(given_)
    assert number == PhoneNumber("+5511999990000", Kind.MOBILE)
    assert readback(number) == "onze, nove nove nove nove nove, zero zero zero zero"
    assert readback(number, "en") == "eleven, nine nine nine nine nine, zero zero zero zero"


def test_landlines_toll_free_and_shared_cost_numbers() -> None:
    landline = normalise("021 3456-7890")
    assert landline == PhoneNumber("+552134567890", Kind.LANDLINE)
    assert readback(landline) == "vinte e um, três quatro cinco seis, sete oito nove zero"
    assert readback(landline, "en") == "twenty-one, three four five six, seven eight nine zero"
    toll_free = normalise("0800 123 4567")
    assert toll_free == PhoneNumber("+558001234567", Kind.TOLL_FREE)
    assert toll_free.national == "08001234567"
    assert readback(toll_free) == "zero oitocentos, um dois três, quatro cinco seis sete"
    assert readback(toll_free, "en") == "zero eight hundred, one two three, four five six seven"
    assert e164(normalise("0300 123 4567")) == "+553001234567"
    shared = normalise("4004-1234")
    assert shared == PhoneNumber("+5540041234", Kind.SHARED_COST)
    assert readback(shared) == "quatro zero zero quatro, um dois três quatro"
    assert e164(normalise("+55 4004 1234")) == "+5540041234"


def test_six_is_seis_never_meia() -> None:
    number = normalise("66 3666-6666")
    assert readback(number) == "sessenta e seis, três seis seis seis, seis seis seis seis"
    assert "meia" not in readback(number)


def test_a_foreign_number_in_international_form_is_kept() -> None:
    number = normalise("+1 415 555 2671")
    assert number == PhoneNumber("+14155552671", Kind.FOREIGN)
    assert readback(number) == "mais um quatro um cinco, cinco cinco cinco dois, seis sete um"


@pytest.mark.parametrize(
    ("given_", "problem"),
    [
        ("anonymous", Problem.WITHHELD),
        ("Anônimo", Problem.WITHHELD),
        ("unknown", Problem.WITHHELD),
        ("restricted", Problem.WITHHELD),
        ("0000000000", Problem.WITHHELD),
        ("", Problem.NO_DIGITS),
        ("banana", Problem.NO_DIGITS),
        ("1234", Problem.TOO_SHORT),
        ("9999-0000", Problem.NO_AREA_CODE),
        ("10 99999 0000", Problem.INVALID),  # there is no DDD 10
        ("11 1234 5678", Problem.INVALID),
        ("+1 000 000 0001", Problem.INVALID),
    ],
)
def test_unusable_numbers_say_why(given_: str, problem: Problem) -> None:
    result = normalise(given_)
    assert isinstance(result, PhoneProblem)
    assert result.problem is problem
    assert result.message


def test_dictation_in_words_and_figures() -> None:
    said = "meu celular é onze nove nove nove nove nove, zero zero zero zero"
    assert e164(from_dictation(said)) == "+5511999990000"
    assert e164(from_dictation("onze 9 8888 7777")) == "+5511988887777"
    assert e164(from_dictation("vinte e um três quatro cinco seis sete oito nove zero")) == (
        "+552134567890"
    )
    assert e164(from_dictation("meia meia, três quatro cinco seis, sete oito nove zero")) == (
        "+556634567890"
    )  # a caller may say "meia"
    assert e164(from_dictation("zero oitocentos, um dois três, quatro cinco seis sete")) == (
        "+558001234567"
    )
    assert e164(from_dictation("quatro mil e quatro, um dois três quatro")) == "+5540041234"
    assert e164(from_dictation("my number is one one, double nine triple nine, 0000")) == (
        "+5511999990000"
    )
    assert dictated_digits("eleven double nine triple nine zero zero zero zero") == "11999990000"
    assert dictated_digits("mais cinquenta e cinco onze") == "+5511"
    assert e164(parse_number("onze nove nove nove nove nove zero zero zero zero")) == (
        "+5511999990000"
    )
    assert e164(parse_number("(11) 99999-0000")) == "+5511999990000"
    assert isinstance(parse_number("anonymous"), PhoneProblem)
    assert isinstance(from_dictation("não sei"), PhoneProblem)


def test_area_code_words() -> None:
    assert [number_words(n) for n in (11, 20, 21, 99)] == [
        "onze", "vinte", "vinte e um", "noventa e nove"]  # fmt: skip
    with pytest.raises(ValueError):
        number_words(7)


# --- properties --------------------------------------------------------------------------------


@st.composite
def br_numbers(draw: st.DrawFn) -> str:
    """A valid Brazilian national number: DDD + mobile (9 + 8) or landline (2-5 + 7)."""
    ddd = draw(st.sampled_from(sorted(DDDS)))
    if draw(st.booleans()):
        subscriber = "9" + draw(st.from_regex(r"[6-9][0-9]{7}", fullmatch=True))
    else:
        subscriber = draw(st.from_regex(r"[2-5][0-9]{7}", fullmatch=True))
    national = f"{ddd}{subscriber}"
    assume(phonenumbers.is_valid_number(phonenumbers.parse("+55" + national)))
    return national


def shapes(national: str, carrier: str) -> list[str]:
    ddd, rest = national[:2], national[2:]
    return [
        national,
        "+55" + national,
        "55" + national,
        "0" + national,
        "0" + carrier + national,
        f"({ddd}) {rest[:-4]}-{rest[-4:]}",
        f"+55 {ddd} {rest[:-4]} {rest[-4:]}",
        f"0{carrier} {ddd} {rest[:-4]}-{rest[-4:]}",
    ]


@given(br_numbers(), st.from_regex(r"[1-9][0-9]", fullmatch=True))
def test_every_input_shape_normalises_to_the_same_e164(national: str, carrier: str) -> None:
    results = {e164(normalise(shape)) for shape in shapes(national, carrier)}
    assert results == {"+55" + national}


@given(br_numbers(), st.sampled_from(["pt-BR", "en"]))
def test_the_read_back_dictated_back_is_the_same_number(national: str, language: str) -> None:
    number = normalise(national)
    assert isinstance(number, PhoneNumber)
    spoken = readback(number, language)  # type: ignore[arg-type]
    assert from_dictation(spoken) == number
    assert from_dictation("meu número é " + spoken) == number


@given(st.from_regex(r"0[3589]00[0-9]{7}", fullmatch=True))
def test_non_geographic_numbers_round_trip(national: str) -> None:
    number = normalise(national)
    assume(isinstance(number, PhoneNumber))
    assert isinstance(number, PhoneNumber)
    assert from_dictation(readback(number)) == number
    assert from_dictation(readback(number, "en")) == number


@given(st.text(max_size=40))
def test_anything_gives_a_number_or_a_problem(text: str) -> None:
    assert isinstance(normalise(text), PhoneNumber | PhoneProblem)
    assert isinstance(parse_number(text), PhoneNumber | PhoneProblem)
