"""The number to call back: Brazilian numbers normalised, read back, and taken from dictation.

Pure functions, no I/O. ``normalise`` accepts what callers type, what the model transcribes and
what FreeSWITCH puts in a caller ID, and returns a :class:`PhoneNumber` (E.164) or a
:class:`PhoneProblem` — never raises — so the AI gets the problem back as a tool error and asks
again:

* mobiles with the 9th digit (``11 99999-0000``) and landlines with the area code (DDD,
  ``11 3456-7890``); an old 8-digit mobile (``11 9999-0000``, first digit 6–9) gets its 9th
  digit, as every Brazilian mobile has had one since 2016;
* with or without ``+55`` / ``55``, the trunk ``0`` (``011 99999 0000``) or a long-distance
  carrier code (``0 21 11 99999 0000``: 0 + two-digit carrier + DDD);
* toll-free and shared-cost numbers: ``0800``/``0300``/``0500``/``0900`` + 7 digits and the
  8-digit ``4004``/``4003``/``3003``... numbers (no DDD);
* a valid foreign number in international form (``+1 415 ...``) is accepted as it is;
* anonymous / withheld caller IDs (``anonymous``, ``unknown``, ``restricted``, ``0000000000``),
  no digits, too few digits, a missing DDD or an invalid number are each a typed problem.

Read-back (``readback``): the DDD as a number ("onze", "vinte e um"), then the digits one by one
in the groups Brazilians say them: "onze, nove nove nove nove nove, zero zero zero zero". A
6 is always "seis", never the colloquial "meia": "meia" is a regional habit (and half of
"meia hora") that a speech model or a caller from another state may not take for a digit, while
"seis" is understood everywhere; dictation accepts "meia" all the same. Toll-free prefixes are
read as people say them: "zero oitocentos, um dois três, quatro cinco seis sete". English reads
"eleven, nine nine nine nine nine, zero zero zero zero" and "zero eight hundred, ...".

Dictation (``from_dictation``): "meu celular é onze nove nove nove ..." / "eleven nine nine ..."
/ digits mixed with words → the digits, then ``normalise``.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from typing import Literal

import attrs
import phonenumbers

Language = Literal["pt-BR", "en"]

# Area codes (DDD) in use in Brazil.
DDDS = frozenset({
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28,
    31, 32, 33, 34, 35, 37, 38, 41, 42, 43, 44, 45, 46, 47, 48, 49,
    51, 53, 54, 55, 61, 62, 63, 64, 65, 66, 67, 68, 69,
    71, 73, 74, 75, 77, 79, 81, 82, 83, 84, 85, 86, 87, 88, 89,
    91, 92, 93, 94, 95, 96, 97, 98, 99,
})  # fmt: skip
NON_GEOGRAPHIC = ("0800", "0300", "0500", "0900")  # + 7 digits
SHARED_COST = ("4004", "4003", "4002", "4020", "4062", "3003", "3004")  # + 4 digits, no DDD
WITHHELD = frozenset({
    "anonymous", "anonimo", "anonima", "restricted", "restrito", "private", "privado", "privada",
    "withheld", "unknown", "desconhecido", "unavailable", "indisponivel", "blocked", "bloqueado",
    "oculto", "hidden",
})  # fmt: skip
MAX_INPUT = 120


class Kind(enum.StrEnum):
    MOBILE = "mobile"
    LANDLINE = "landline"
    TOLL_FREE = "toll_free"  # 0800 and the other 0X00 numbers
    SHARED_COST = "shared_cost"  # 4004-style numbers
    FOREIGN = "foreign"


class Problem(enum.StrEnum):
    WITHHELD = "withheld"  # anonymous / restricted / unknown caller ID
    NO_DIGITS = "no_digits"
    TOO_SHORT = "too_short"
    NO_AREA_CODE = "no_area_code"
    INVALID = "invalid"


_PROBLEM_TEXT = {
    Problem.WITHHELD: "the number is withheld or anonymous; ask the caller for a number",
    Problem.NO_DIGITS: "no phone number in what was given",
    Problem.TOO_SHORT: "too few digits for a phone number",
    Problem.NO_AREA_CODE: "the area code (DDD) is missing; ask for the DDD",
    Problem.INVALID: "not a valid phone number (expected DDD and number, e.g. 11987654321)",
}


@attrs.frozen
class PhoneNumber:
    e164: str  # "+5511999990000"
    kind: Kind

    @property
    def national(self) -> str:
        """The digits a Brazilian dials inside the country (DDD + number, or 0800...)."""
        if self.e164.startswith("+55"):
            rest = self.e164[3:]
            return "0" + rest if self.kind is Kind.TOLL_FREE else rest
        return self.e164

    def groups(self) -> tuple[str, ...]:
        """The digit groups of the read-back: DDD, then the number's halves."""
        return _groups(self)

    def readback(self, language: Language = "pt-BR") -> str:
        return readback(self, language)


@attrs.frozen
class PhoneProblem:
    """Why a number cannot be used; ``message`` is what the AI is told."""

    problem: Problem
    given: str

    @property
    def message(self) -> str:
        return _PROBLEM_TEXT[self.problem]


# --- normalisation -----------------------------------------------------------------------------


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _ascii_digits(text: str) -> str:
    """The decimal digits of ``text`` as ASCII (a transcript may carry other scripts' digits)."""
    return "".join(str(unicodedata.decimal(c)) for c in text if c.isdecimal())


def is_withheld(text: str) -> bool:
    """An anonymous / restricted caller ID, as FreeSWITCH and carriers spell it."""
    words = " ".join(re.findall(r"[a-z]+", _plain(text)))
    digits = _ascii_digits(text)
    if words and (words in WITHHELD or any(w in WITHHELD for w in words.split())) and not digits:
        return True
    return bool(digits) and set(digits) == {"0"}


def normalise(text: str, region: str = "BR") -> PhoneNumber | PhoneProblem:
    """The E.164 number in ``text`` (typed, transcribed or a caller ID), or the problem."""
    given = text[:MAX_INPUT]
    if is_withheld(given):
        return PhoneProblem(Problem.WITHHELD, given)
    stripped = given.strip()
    digits = _ascii_digits(stripped)
    if not digits:
        return PhoneProblem(Problem.NO_DIGITS, given)
    if len(digits) < 8:
        return PhoneProblem(Problem.TOO_SHORT, given)
    international = stripped.startswith("+")
    if international and not digits.startswith("55"):
        return _foreign("+" + digits, given)
    if region != "BR" and not international:
        return _foreign(digits, given, region)
    national = _national(digits, international)
    if national is None:
        if len(digits) in (8, 9):
            return PhoneProblem(Problem.NO_AREA_CODE, given)
        return PhoneProblem(Problem.INVALID, given)
    return _validated(national, given)


def _national(digits: str, international: bool) -> str | None:
    """The national significant number (DDD + subscriber, or 0800...) out of any BR shape."""
    candidates: list[str] = []
    if digits.startswith("55") and (international or len(digits) >= 12):
        candidates.append(digits[2:])  # 55 + DDD + number (with or without the +)
    if not international:
        if digits.startswith("0"):
            if digits[:4] in NON_GEOGRAPHIC:
                candidates.append(digits)
            candidates.append(digits[1:])  # trunk 0 + DDD + number
            candidates.append(digits[3:])  # 0 + carrier + DDD + number
        candidates.append(digits)
    for candidate in candidates:
        shaped = _shape(candidate)
        if shaped is not None:
            return shaped
    return None


def _shape(n: str) -> str | None:
    if n[:4] in NON_GEOGRAPHIC and len(n) == 11:
        return n
    if n[:4] in SHARED_COST and len(n) == 8:
        return n
    if len(n) not in (10, 11) or int(n[:2]) not in DDDS:
        return None
    subscriber = n[2:]
    if len(subscriber) == 9:
        return n if subscriber[0] == "9" else None
    if subscriber[0] in "2345":
        return n  # landline
    if subscriber[0] in "6789":
        return n[:2] + "9" + subscriber  # a mobile from before the 9th digit
    return None


def _validated(national: str, given: str) -> PhoneNumber | PhoneProblem:
    dialled = national[1:] if national.startswith("0") else national
    try:
        parsed = phonenumbers.parse("+55" + dialled)
    except phonenumbers.NumberParseException:  # pragma: no cover - digits only, always parses
        return PhoneProblem(Problem.INVALID, given)
    if not phonenumbers.is_valid_number(parsed):
        return PhoneProblem(Problem.INVALID, given)
    if national[:4] in NON_GEOGRAPHIC:
        kind = Kind.TOLL_FREE
    elif national[:4] in SHARED_COST and len(national) == 8:
        kind = Kind.SHARED_COST
    elif len(national) == 11:
        kind = Kind.MOBILE
    else:
        kind = Kind.LANDLINE
    return PhoneNumber("+55" + dialled, kind)


def _foreign(text: str, given: str, region: str | None = None) -> PhoneNumber | PhoneProblem:
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return PhoneProblem(Problem.INVALID, given)
    if not phonenumbers.is_valid_number(parsed):
        return PhoneProblem(Problem.INVALID, given)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if e164.startswith("+55"):
        return _validated(e164[3:], given)
    return PhoneNumber(e164, Kind.FOREIGN)


# --- read-back ---------------------------------------------------------------------------------

PT_DIGITS = ("zero", "um", "dois", "três", "quatro", "cinco", "seis", "sete", "oito", "nove")
EN_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_PT_TEENS = ("dez", "onze", "doze", "treze", "quatorze", "quinze", "dezesseis", "dezessete",
             "dezoito", "dezenove")  # fmt: skip
_PT_TENS = ("", "", "vinte", "trinta", "quarenta", "cinquenta", "sessenta", "setenta", "oitenta",
            "noventa")  # fmt: skip
_EN_TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
             "seventeen", "eighteen", "nineteen")  # fmt: skip
_EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_PT_HUNDREDS = {"0800": "zero oitocentos", "0300": "zero trezentos", "0500": "zero quinhentos",
                "0900": "zero novecentos"}  # fmt: skip
_EN_HUNDREDS = {"0800": "zero eight hundred", "0300": "zero three hundred",
                "0500": "zero five hundred", "0900": "zero nine hundred"}  # fmt: skip


def number_words(n: int, language: Language = "pt-BR") -> str:
    """10..99 as a word: 11 → "onze" / "eleven", 21 → "vinte e um" / "twenty-one"."""
    if not 10 <= n <= 99:
        raise ValueError("an area code has two digits")
    tens, unit = divmod(n, 10)
    if language == "en":
        if tens == 1:
            return _EN_TEENS[unit]
        return _EN_TENS[tens] + ("" if unit == 0 else "-" + EN_DIGITS[unit])
    if tens == 1:
        return _PT_TEENS[unit]
    return _PT_TENS[tens] + ("" if unit == 0 else " e " + PT_DIGITS[unit])


def _groups(number: PhoneNumber) -> tuple[str, ...]:
    n = number.national
    if number.kind is Kind.TOLL_FREE:
        return (n[:4], n[4:7], n[7:])
    if number.kind is Kind.SHARED_COST:
        return (n[:4], n[4:])
    if number.kind in (Kind.MOBILE, Kind.LANDLINE):
        return (n[:2], n[2:-4], n[-4:])
    digits = n.lstrip("+")
    return tuple(digits[i : i + 4] for i in range(0, len(digits), 4))


def display(text: str) -> str:
    """The number as a Brazilian reads it on a screen: ``(11) 99999-0000``, ``(11) 3456-7890``,
    ``0800 123 4567``, ``4004 1234``; a foreign number in its international form; anything that
    is not a number (a withheld caller ID) as it was given."""
    number = normalise(text)
    if isinstance(number, PhoneProblem):
        return text
    groups = _groups(number)
    if number.kind in (Kind.MOBILE, Kind.LANDLINE):
        return f"({groups[0]}) {groups[1]}-{groups[2]}"
    if number.kind is Kind.FOREIGN:
        parsed = phonenumbers.parse(number.e164)
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return " ".join(groups)


def readback(number: PhoneNumber, language: Language = "pt-BR") -> str:
    """How the AI reads the number back to the caller (see the module's notes)."""
    digits = EN_DIGITS if language == "en" else PT_DIGITS
    groups = _groups(number)

    def one_by_one(group: str) -> str:
        return " ".join(digits[int(d)] for d in group)

    spoken: list[str] = []
    if number.kind is Kind.TOLL_FREE:
        spoken.append((_EN_HUNDREDS if language == "en" else _PT_HUNDREDS)[groups[0]])
        groups = groups[1:]
    elif number.kind in (Kind.MOBILE, Kind.LANDLINE):
        spoken.append(number_words(int(groups[0]), language))
        groups = groups[1:]
    elif number.kind is Kind.FOREIGN:
        spoken.append("plus" if language == "en" else "mais")
        return spoken[0] + " " + ", ".join(one_by_one(g) for g in groups)
    spoken.extend(one_by_one(g) for g in groups)
    return ", ".join(spoken)


# --- dictation ---------------------------------------------------------------------------------

_UNITS = {
    "zero": 0, "um": 1, "uma": 1, "dois": 2, "duas": 2, "tres": 3, "quatro": 4, "cinco": 5,
    "seis": 6, "meia": 6, "sete": 7, "oito": 8, "nove": 9,
    "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9,
}  # fmt: skip
_TEENS = {
    "dez": 10, "onze": 11, "doze": 12, "treze": 13, "quatorze": 14, "catorze": 14, "quinze": 15,
    "dezesseis": 16, "dezasseis": 16, "dezessete": 17, "dezoito": 18, "dezenove": 19,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "vinte": 20, "trinta": 30, "quarenta": 40, "cinquenta": 50, "sessenta": 60, "setenta": 70,
    "oitenta": 80, "noventa": 90,
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_HUNDREDS = {
    "cem": 100, "cento": 100, "duzentos": 200, "trezentos": 300, "quatrocentos": 400,
    "quinhentos": 500, "seiscentos": 600, "setecentos": 700, "oitocentos": 800,
    "novecentos": 900,
}  # fmt: skip
_REPEAT = {"double": 2, "triple": 3, "duplo": 2, "dupla": 2, "triplo": 3}
_PLUS = frozenset({"mais", "plus"})
_ZEROS = frozenset({"zero", "oh"})
_THOUSAND = frozenset({"mil", "thousand"})
_HUNDRED = frozenset({"hundred"})
_TOKEN = re.compile(r"[0-9]+|[a-z]+|[+,;.]")


@attrs.frozen
class _Group:
    """A number being said in words: "vinte e um", "oitocentos", "quatro mil e quatro"."""

    value: int
    open_slot: int  # what may still follow: 3 hundreds, 2 tens, 1 units, 0 nothing


def _word(word: str) -> tuple[int, int, int]:
    """(value, slot it fills, slot left open after it) of a number word."""
    if word in _HUNDREDS:
        return _HUNDREDS[word], 3, 2
    if word in _TENS:
        return _TENS[word], 2, 1
    if word in _TEENS:
        return _TEENS[word], 2, 0
    return _UNITS[word], 1, 0


def dictated_digits(text: str) -> str:
    """The digits (and a leading ``+``) a caller dictated, digits as words or figures."""
    out: list[str] = []
    group: _Group | None = None
    repeat = 1

    def emit(digits: str) -> None:
        nonlocal group, repeat
        if group is not None:
            out.append(str(group.value))
            group = None
        out.append(digits * repeat)
        repeat = 1

    for word in _TOKEN.findall(_plain(text)[: MAX_INPUT * 4]):
        if word.isdigit():
            emit(word)
        elif word in _PLUS and not out and group is None:
            out.append("+")
        elif word in _REPEAT:
            emit("")
            repeat = _REPEAT[word]
        elif word in _ZEROS:
            emit("0")
        elif word in _UNITS or word in _TEENS or word in _TENS or word in _HUNDREDS:
            value, slot, left = _word(word)
            if repeat > 1:
                emit(str(value))
            elif group is not None and slot <= group.open_slot:
                group = _Group(group.value + value, left)
            else:
                emit("")
                group = _Group(value, left)
        elif word in _THOUSAND and group is not None and group.value < 10:
            group = _Group(group.value * 1000, 3)  # "quatro mil e quatro": 4004
        elif word in _HUNDRED and group is not None and group.value < 10:
            group = _Group(group.value * 100, 2)  # "eight hundred": 800
        elif word in (",", ";", "."):
            emit("")
        # every other word ("meu", "celular", "é", "e", "ddd", "my", "number") is filler
    emit("")
    return "".join(out)


def from_dictation(text: str, region: str = "BR") -> PhoneNumber | PhoneProblem:
    """A number said in words (pt-BR or English) or figures, validated like a typed one."""
    if is_withheld(text) and not re.search(r"\d", dictated_digits(text)):
        return PhoneProblem(Problem.WITHHELD, text[:MAX_INPUT])
    digits = dictated_digits(text)
    if not re.search(r"\d", digits):
        return PhoneProblem(Problem.NO_DIGITS, text[:MAX_INPUT])
    return normalise(digits, region)


def parse_number(text: str, region: str = "BR") -> PhoneNumber | PhoneProblem:
    """What the model sends as ``phone_number``: figures as typed, else a dictation in words."""
    if re.search(r"[a-zA-Z]", text) and not is_withheld(text):
        words = re.sub(r"[\d\s()+\-.]", "", _plain(text))
        if words:
            return from_dictation(text, region)
    return normalise(text, region)
