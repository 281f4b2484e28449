"""The session instructions: what the secretary is told at the start of every call.

pt-BR by default (English by configuration). The model is given the secretary's own text, the
caller's number (with its spoken form), the current date and time and business hours in the
configured time zone, the destinations by name and department — never their numbers, which stay
server-side in the handoff engine — and how to use the tools. Numbers are spoken digit by digit in
groups, times as "às quatorze horas".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

import attrs
import phonenumbers

from callcontrol.callbacks.phone import PhoneNumber, normalise

Language = Literal["pt-BR", "en"]

_PT_UNITS = [
    "zero",
    "um",
    "dois",
    "três",
    "quatro",
    "cinco",
    "seis",
    "sete",
    "oito",
    "nove",
    "dez",
    "onze",
    "doze",
    "treze",
    "quatorze",
    "quinze",
    "dezesseis",
    "dezessete",
    "dezoito",
    "dezenove",
]
_PT_TENS = {20: "vinte", 30: "trinta", 40: "quarenta", 50: "cinquenta"}
_EN_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_PT_WEEKDAYS = [
    "segunda-feira",
    "terça-feira",
    "quarta-feira",
    "quinta-feira",
    "sexta-feira",
    "sábado",
    "domingo",
]
_EN_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_PT_MONTHS = [
    "janeiro",
    "fevereiro",
    "março",
    "abril",
    "maio",
    "junho",
    "julho",
    "agosto",
    "setembro",
    "outubro",
    "novembro",
    "dezembro",
]
_EN_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


@attrs.frozen
class Destination:
    """What the model may know about a destination. There is deliberately no number field."""

    name: str
    department: str | None = None
    description: str | None = None


@attrs.frozen
class OpeningHours:
    """Opening intervals per weekday (0 = Monday); a missing day is closed."""

    days: dict[int, tuple[tuple[time, time], ...]] = attrs.field(factory=dict)

    def is_open(self, moment: datetime) -> bool:
        now = moment.time()
        return any(start <= now < end for start, end in self.days.get(moment.weekday(), ()))


# --- spoken forms ------------------------------------------------------------------------------


def pt_number(n: int, *, feminine: bool = False) -> str:
    """Words for 0–59 in pt-BR ("hora" is feminine: "uma", "duas")."""
    if not 0 <= n < 60:
        raise ValueError("only 0..59 are needed for clock times")
    if n < 20:
        word = _PT_UNITS[n]
    else:
        tens, unit = divmod(n, 10)
        word = _PT_TENS[tens * 10] + ("" if unit == 0 else " e " + _PT_UNITS[unit])
    if feminine:
        word = re.sub(r"\bum$", "uma", word)
        word = re.sub(r"\bdois$", "duas", word)
    return word


def spoken_time(moment: time, language: Language = "pt-BR") -> str:
    """``às quatorze horas``, ``às nove e meia``, ``à uma hora``, ``ao meio-dia``."""
    h, m = moment.hour, moment.minute
    if language == "en":
        suffix = "AM" if h < 12 else "PM"
        hour12 = h % 12 or 12
        return f"at {hour12} {suffix}" if m == 0 else f"at {hour12}:{m:02d} {suffix}"
    if m == 0 and h == 12:
        return "ao meio-dia"
    if m == 0 and h == 0:
        return "à meia-noite"
    article = "à" if h in (0, 1) else "às"
    hours = pt_number(h, feminine=True)
    if m == 0:
        return f"{article} {hours} {'hora' if h == 1 else 'horas'}"
    minutes = "meia" if m == 30 else pt_number(m)
    return f"{article} {hours} e {minutes}"


def spoken_digits(number: str, language: Language = "pt-BR", region: str = "BR") -> str:
    """Digits read one by one, in the groups people use: "um um, nove oito sete ..."."""
    groups = _digit_groups(number, region)
    words = _EN_DIGITS if language == "en" else _PT_UNITS[:10]
    return ", ".join(" ".join(words[int(d)] for d in group) for group in groups)


def _digit_groups(number: str, region: str) -> list[str]:
    try:
        parsed = phonenumbers.parse(number, region)
        if phonenumbers.is_possible_number(parsed):
            national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
            groups = re.findall(r"\d+", national)
            if groups:
                return groups
    except phonenumbers.NumberParseException:
        pass
    digits = re.sub(r"\D", "", number)
    return [digits[i : i + 4] for i in range(0, len(digits), 4)] or [""]


def spoken_date(moment: datetime, language: Language = "pt-BR") -> str:
    if language == "en":
        weekday, month = _EN_WEEKDAYS[moment.weekday()], _EN_MONTHS[moment.month - 1]
        return f"{weekday}, {month} {moment.day}, {moment.year}"
    weekday, month = _PT_WEEKDAYS[moment.weekday()], _PT_MONTHS[moment.month - 1]
    return f"{weekday}, {moment.day} de {month} de {moment.year}"


# --- the instructions --------------------------------------------------------------------------

_LONG_DIGITS = re.compile(r"\d{3,}")


def _scrub(text: str) -> str:
    # Destination names and descriptions come from admins; a "Ramal 2001" must not tell the
    # model (and so the caller) an internal number.
    return _LONG_DIGITS.sub("…", " ".join(text.split()))


def _destination_lines(destinations: Sequence[Destination]) -> list[str]:
    lines = []
    for d in destinations:
        line = f"- {_scrub(d.name)}"
        if d.department:
            line += f" ({_scrub(d.department)})"
        if d.description:
            line += f": {_scrub(d.description)}"
        lines.append(line)
    return lines


def _hours_lines(hours: OpeningHours, language: Language) -> list[str]:
    names = _EN_WEEKDAYS if language == "en" else _PT_WEEKDAYS
    closed = "closed" if language == "en" else "fechado"
    lines = []
    for day in range(7):
        spans = hours.days.get(day, ())
        if language == "en":
            text = ", ".join(f"{s:%H:%M}–{e:%H:%M}" for s, e in spans) or closed
        else:
            text = ", ".join(f"das {s:%H:%M} às {e:%H:%M}" for s, e in spans) or closed
        lines.append(f"- {names[day]}: {text}")
    return lines


@attrs.frozen
class CallContext:
    """Everything the instructions are built from, for one call."""

    now: datetime
    timezone: ZoneInfo
    destinations: Sequence[Destination] = ()
    caller_number: str | None = None
    caller_name: str | None = None
    company_name: str | None = None
    secretary_prompt: str | None = None
    hours: OpeningHours | None = None
    language: Language = "pt-BR"


def build_instructions(ctx: CallContext) -> str:
    local = ctx.now.astimezone(ctx.timezone)
    text = _PT if ctx.language == "pt-BR" else _EN
    parts = [text["role"].format(company=ctx.company_name or text["the_company"])]
    if ctx.secretary_prompt:
        parts += [text["own"], ctx.secretary_prompt.strip()]
    parts.append(
        text["now"].format(
            date=spoken_date(local, ctx.language),
            time=f"{local:%H:%M}",
            spoken=spoken_time(local.time(), ctx.language),
            tz=ctx.timezone.key,
        )
    )
    if ctx.hours is not None:
        state = text["open"] if ctx.hours.is_open(local) else text["closed"]
        parts += [text["hours"], *_hours_lines(ctx.hours, ctx.language), state]
    parts.append(_caller_line(ctx, text))
    parts.append(text["destinations"])
    parts += _destination_lines(ctx.destinations) or [text["no_destinations"]]
    parts.append(text["tools"])
    parts.append(text["style"])
    return "\n".join(parts)


def _caller_line(ctx: CallContext, text: dict[str, str]) -> str:
    if not ctx.caller_number or not re.search(r"\d", ctx.caller_number):
        return text["caller_unknown"]
    number = normalise(ctx.caller_number)
    spoken = (
        number.readback(ctx.language)
        if isinstance(number, PhoneNumber)
        else spoken_digits(ctx.caller_number, ctx.language)
    )
    line = text["caller"].format(number=ctx.caller_number, spoken=spoken)
    if ctx.caller_name:
        line += " " + text["caller_name"].format(name=_scrub(ctx.caller_name))
    return line


def say_instruction(text: str, language: Language = "pt-BR") -> str:
    """Instructions for a ``say``: speak this, in the call's language, and nothing else."""
    if language == "en":
        return f"Say this to the caller, naturally and briefly, then wait: {text}"
    return (
        "Diga isto ao chamador, em português do Brasil, de forma natural e breve, "
        f"e depois aguarde: {text}"
    )


_PT = {
    "role": (
        "Você é a secretária virtual de {company}, atendendo uma ligação telefônica. "
        "Fale sempre em português do Brasil, com frases curtas, cordiais e naturais."
    ),
    "the_company": "uma empresa",
    "own": "Instruções da empresa:",
    "now": "Agora é {date}, {time} ({spoken}), fuso horário {tz}.",
    "hours": "Horário de atendimento:",
    "open": "Neste momento a empresa está dentro do horário de atendimento.",
    "closed": (
        "Neste momento a empresa está fora do horário de atendimento: ofereça anotar um recado "
        "ou agendar um retorno."
    ),
    "caller": "O número de quem liga é {number} (leia assim: {spoken}).",
    "caller_name": "O nome informado pela operadora é {name}; confirme antes de usar.",
    "caller_unknown": "O número de quem liga não foi identificado.",
    "destinations": (
        "Destinos para onde você pode transferir (use o nome exato na ferramenta; nunca diga "
        "números de ramal):"
    ),
    "no_destinations": "- (nenhum destino configurado: ofereça recado ou retorno)",
    "tools": (
        "Ferramentas: use request_handoff quando o chamador quiser falar com alguém ou o assunto "
        "exigir uma pessoa; enquanto transfere, avise que vai transferir. Se a transferência não "
        "der certo, diga ao chamador o motivo que a ferramenta devolver e ofereça recado "
        "(take_message) ou retorno (schedule_callback). Antes de registrar, confirme nome e "
        "número lendo os dígitos em grupos. Use end_call só depois de se despedir. Se uma "
        "ferramenta devolver um erro, peça ao chamador a informação que faltou."
    ),
    "style": (
        "Diga números de telefone com o DDD como número e o resto dígito por dígito, em grupos "
        "(por exemplo: onze, nove oito sete seis cinco, quatro três dois um; o 6 é seis, nunca "
        'meia) e horários por extenso (por exemplo: "às quatorze horas", '
        '"às nove e meia"). Não invente informações sobre a empresa.'
    ),
}

_EN = {
    "role": (
        "You are the virtual receptionist of {company}, answering a phone call. Speak English "
        "in short, friendly, natural sentences."
    ),
    "the_company": "a company",
    "own": "The company's instructions:",
    "now": "It is now {date}, {time} ({spoken}), time zone {tz}.",
    "hours": "Business hours:",
    "open": "The company is open right now.",
    "closed": "The company is closed right now: offer to take a message or schedule a callback.",
    "caller": "The caller's number is {number} (read it as: {spoken}).",
    "caller_name": "The carrier gives the name {name}; confirm before using it.",
    "caller_unknown": "The caller's number is unknown.",
    "destinations": (
        "Destinations you can transfer to (use the exact name with the tool; never say "
        "extension numbers):"
    ),
    "no_destinations": "- (no destinations configured: offer a message or a callback)",
    "tools": (
        "Tools: use request_handoff when the caller wants someone or needs a person; say you are "
        "transferring. If it fails, tell the caller the reason the tool returns and offer a "
        "message (take_message) or a callback (schedule_callback). Before recording either, "
        "confirm the name and read the number back in digit groups. Use end_call only after "
        "saying goodbye. If a tool returns an error, ask the caller for what was missing."
    ),
    "style": (
        "Say phone numbers with the area code as a number, then digit by digit in groups (e.g. "
        "eleven, nine eight seven six five, four three two one), and times in words. Do not make "
        "up facts about the company."
    ),
}
