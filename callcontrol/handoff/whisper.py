"""The whisper: one line to the agent, before the bridge, about who is calling and why.

FreeSWITCH speaks it on the agent's leg only (``uuid_broadcast <b> speak::<engine>|<voice>|
<text> aleg``), so the caller — still on hold music — does not hear it. It needs a TTS module
on the switch (``TRANSFER_WHISPER_TTS=engine|voice``, e.g. ``flite|kal`` or a pt-BR engine);
without one configured there is no whisper and the bridge follows the answer at once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

from callcontrol.ai.instructions import spoken_digits

MAX_CHARS = 160
_ENGINE = re.compile(r"[A-Za-z0-9_\-]+\|[A-Za-z0-9_\-.]+")


def whisper_text(caller_name: str | None, caller_number: str | None, reason: str,
                 language: str = "pt-BR") -> str:  # fmt: skip
    """"Ligação de Maria Souza, número 11 98888 7777, sobre resultado de exame." — cleaned of
    everything that is syntax for ``speak`` (``|``), FreeSWITCH (braces, quotes) or a line."""
    english = language.startswith("en")
    who = _clean(caller_name or "") or ("a customer" if english else "um cliente")
    parts = [("Call from " if english else "Ligação de ") + who]
    if caller_number and any(ch.isdigit() for ch in caller_number):
        digits = spoken_digits(caller_number, "en" if english else "pt-BR")
        parts.append(("number " if english else "número ") + _clean(digits))
    about = _clean(reason)
    if about:
        parts.append(("about " if english else "sobre ") + about)
    return (", ".join(parts) + ".")[:MAX_CHARS]


def _clean(text: str) -> str:
    kept = []
    for ch in unicodedata.normalize("NFC", text):
        if ch.isspace():
            kept.append(" ")
        elif unicodedata.category(ch)[0] in "LN" or ch in ".,-":
            kept.append(ch)
    return " ".join("".join(kept).split())


def speak_whisper(ctx: Any, engine_voice: str, text: str) -> Callable[[str], Awaitable[None]]:
    """The whisper step for ``HandoffRunner``: speak ``text`` to leg ``b`` and wait for it."""
    if not _ENGINE.fullmatch(engine_voice):
        raise ValueError(f"TRANSFER_WHISPER_TTS must be engine|voice, got {engine_voice!r}")

    async def whisper(leg: str) -> None:
        conn = ctx.call.conn
        async with conn.subscribe(leg) as events:
            reply = await ctx.call.api("uuid_broadcast", leg,
                                       f"speak::{engine_voice}|{text}", "aleg")  # fmt: skip
            if not reply.startswith("+OK"):
                ctx.log.warning("handoff.whisper_refused", leg=leg, reply=reply.strip())
                return
            async for event in events:
                if event.name == "CHANNEL_EXECUTE_COMPLETE" and event.get("Application") == "speak":
                    return

    return whisper
