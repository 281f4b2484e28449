"""A callback request taken during the call: which hours apply, when it is due, what the AI says.

``callback_hours`` is the only part that reads anything (the destination directory); the rest
is pure. The hours are those of the destination the caller was trying to reach (the last
handoff), else the default destination's; none means always open.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from callcontrol.callbacks.phone import Kind, Language, PhoneNumber
from callcontrol.callbacks.when import CallbackTime, schedule
from callcontrol.config import Settings
from callcontrol.db.database import DatabaseUnavailable
from callcontrol.destinations.directory import Directory
from callcontrol.destinations.hours import WorkingHours
from callcontrol.handoff.service import CallIdentity, HandoffReply

ASAP_WORDS = "o quanto antes"


async def callback_hours(
    directory: Directory, who: CallIdentity, last: HandoffReply | None
) -> WorkingHours | None:
    """The working hours the callback must fall in (None: always open, or unknown)."""
    if who.domain_uuid is None:
        return None
    try:
        if last is not None and last.destination_uuid:
            found = await directory.get(who.domain_uuid, who.secretary_uuid,
                                        UUID(last.destination_uuid))  # fmt: skip
            if found is not None:
                return found.working_hours
        default = await directory.default(who.domain_uuid, who.secretary_uuid)
    except (DatabaseUnavailable, ValueError):
        return None  # the request is still stored; the time is then only kept from the past
    return default.working_hours if default is not None else None


def callback_time(
    words: str,
    now: datetime,
    settings: Settings,
    hours: WorkingHours | None,
    holidays: frozenset[date] = frozenset(),
) -> CallbackTime:
    return schedule(
        words,
        now,
        zone=settings.tz,
        hours=hours,
        holidays=holidays,
        expires_after=timedelta(hours=settings.callback_expiration_hours),
    )


_SAY = {
    "pt-BR": "Retorno anotado para o número {number}, {when}.",
    "en": "Callback noted for {number}, {when}.",
}
_NOT_UNDERSTOOD = {
    "pt-BR": ' Não entendi um horário em "{words}": ligaremos o quanto antes.',
    "en": ' No time was understood in "{words}": we will call as soon as possible.',
}
_WHATSAPP = {
    "pt-BR": " Avisaremos também pelo WhatsApp.",
    "en": " We will also send a WhatsApp message.",
}
_NO_WHATSAPP = {
    "pt-BR": " Esse número não é celular, então não dá para avisar pelo WhatsApp; ligaremos.",
    "en": " That number is not a mobile, so no WhatsApp message; we will call.",
}
_NOTE = (
    "saved; read the number (readback) and the time (scheduled_for) back to the caller and ask "
    "if both are right; if the caller corrects either, call schedule_callback again with the "
    "correction (it replaces this request)"
)


def confirmation(
    number: PhoneNumber, when: CallbackTime, language: Language = "pt-BR", *,
    whatsapp: bool = False,
) -> dict[str, Any]:
    """The tool output fields the AI confirms with the caller; ``whatsapp``: the caller asked
    to be told on WhatsApp (kept for a mobile, said to be impossible for any other number)."""
    phrase = when.say(language)
    say = _SAY[language].format(number=number.readback(language), when=phrase)
    whatsapp_kept = whatsapp and number.kind is Kind.MOBILE
    if whatsapp_kept:
        say += _WHATSAPP[language]
    elif whatsapp:
        say += _NO_WHATSAPP[language]
    if not when.understood:
        say += _NOT_UNDERSTOOD[language].format(words=when.words[:80])
    out: dict[str, Any] = {
        "number": number.e164,
        "readback": number.readback(language),
        "scheduled_at": when.scheduled_at.isoformat(),
        "scheduled_for": phrase,
        "time_understood": when.understood,
        "notify_via_whatsapp": whatsapp_kept,
    }
    moved = when.why_moved(language)
    if moved:
        out["moved_because"] = moved
        say += f" ({moved})"
    out["say"] = say
    out["note"] = _NOTE
    return out
