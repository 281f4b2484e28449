"""WhatsApp (Meta's WhatsApp Cloud API), sans-IO: the messages we send, what the Graph API's
answers mean, the webhook's signature and bodies, and what a customer's reply asks for.

Sending is ``POST {WHATSAPP_API_URL}/{WHATSAPP_PHONE_NUMBER_ID}/messages`` with
``Authorization: Bearer {WHATSAPP_TOKEN}`` (``whatsapp_delivery`` does the I/O). The first
message of a conversation must be an approved template; its body takes three text parameters:
the company, who the caller wanted, and the reason. Meta refuses a text parameter that is empty
or holds a newline, a tab or more than four spaces in a row, so each is folded to one line and
given a fallback. The replies we send (the confirmations) are plain text: the customer has just
written, so the 24-hour customer-service window is open.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import attrs

MAX_PARAMETER = 200  # characters; a ticket's reason is ≤ 200 already
_SPACES = re.compile(r"\s+")


def parameter(value: str | None, fallback: str) -> str:
    """A template text parameter Meta accepts: one line, not empty, not too long."""
    text = _SPACES.sub(" ", value or "").strip()[:MAX_PARAMETER].strip()
    return text or fallback


def recipient(e164: str) -> str:
    """``to`` as the Cloud API takes it: the digits of the E.164 number, without the +."""
    return "".join(c for c in e164 if c.isascii() and c.isdigit())


def numbers_of(sender: str) -> list[str]:
    """The E.164 numbers a WhatsApp sender (wa_id) may be stored as. Brazilian mobiles that
    joined WhatsApp before the ninth digit keep a wa_id without it (55 11 8888 7777 for
    +55 11 98888 7777), so both forms are tried."""
    digits = recipient(sender)
    found = ["+" + digits]
    if digits.startswith("55") and len(digits) == 12 and digits[4] in "6789":
        found.append(f"+{digits[:4]}9{digits[4:]}")
    elif digits.startswith("55") and len(digits) == 13 and digits[4] == "9":
        found.append(f"+{digits[:4]}{digits[5:]}")
    return found


def template_message(
    to: str, template: str, language: str, company: str, intended_for: str, reason: str
) -> dict[str, Any]:
    params = [{"type": "text", "text": value} for value in (company, intended_for, reason)]
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": recipient(to),
        "type": "template",
        "template": {"name": template, "language": {"code": language},
                     "components": [{"type": "body", "parameters": params}]},
    }  # fmt: skip


def text_message(to: str, body: str, *, reply_to: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": recipient(to),
        "type": "text",
        "text": {"preview_url": False, "body": body},
    }
    if reply_to:
        message["context"] = {"message_id": reply_to}  # shown as a reply to the customer's
    return message


# What the template's parameters become when the ticket does not say.
FALLBACKS = {
    "pt-BR": {"company": "nossa empresa", "intended_for": "nossa equipe", "reason": "seu contato"},
    "en": {"company": "our company", "intended_for": "our team", "reason": "your call"},
}


# --- the Graph API's answers ---------------------------------------------------------------


class Outcome(enum.Enum):
    SENT = "sent"
    RATE_LIMITED = "rate_limit"  # retried later, not before RATE_LIMIT_WAIT
    UNAUTHORIZED = "token"  # expired or wrong WHATSAPP_TOKEN: retried (an admin must renew it)
    UNDELIVERABLE = "undeliverable"  # never: this number cannot receive it
    RETRY = "retry"  # anything else: retried with the backoff


# https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
RATE_LIMIT_CODES = frozenset({4, 80007, 130429, 131048, 131056})
TOKEN_CODES = frozenset({0, 190})
# What a retry cannot change: about the recipient, not about us or Meta's state.
UNDELIVERABLE_CODES: Mapping[int, str] = {
    131026: "the number is not on WhatsApp or cannot receive this message",
    131021: "the number is the business's own",
    131030: "the number is not in the test number's allowed list",
    131047: "more than 24 hours since the customer last wrote (only a template may be sent)",
    131051: "message type not supported",
}


@attrs.frozen
class Answer:
    outcome: Outcome
    message_id: str | None = None  # wamid.…, when SENT
    code: int | None = None
    error: str | None = None  # for last_error and the log: never the token

    @property
    def why(self) -> str:
        return UNDELIVERABLE_CODES.get(self.code or -1, self.error or "")


def read_answer(http_status: int, body: Any) -> Answer:
    """What one POST /messages answer means (``body``: its JSON, or None if it was not)."""
    if 200 <= http_status < 300:
        messages = body.get("messages") if isinstance(body, dict) else None
        first = messages[0] if isinstance(messages, list) and messages else None
        wamid = first.get("id") if isinstance(first, dict) else None
        return Answer(Outcome.SENT, message_id=wamid if isinstance(wamid, str) else None)
    err = body.get("error") if isinstance(body, dict) else None
    err = err if isinstance(err, dict) else {}
    code = err.get("code") if isinstance(err.get("code"), int) else None
    text = f"HTTP {http_status}"
    if code is not None:
        text += f", Graph error {code}"
    if isinstance(err.get("message"), str):
        text += f": {err['message'][:200]}"
    if http_status == 429 or code in RATE_LIMIT_CODES:
        outcome = Outcome.RATE_LIMITED
    elif http_status == 401 or code in TOKEN_CODES:
        outcome = Outcome.UNAUTHORIZED
    elif code in UNDELIVERABLE_CODES:
        outcome = Outcome.UNDELIVERABLE
    else:
        outcome = Outcome.RETRY
    return Answer(outcome, code=code, error=f"{outcome.value}: {text}")


# --- the webhook ---------------------------------------------------------------------------


def signature_ok(app_secret: str, body: bytes, header: str | None) -> bool:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``, in constant time."""
    if not app_secret or not header:
        return False
    expected = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode(errors="replace"))


def token_ok(expected: str | None, given: str | None) -> bool:
    if not expected or given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode(errors="replace"))


@attrs.frozen
class Inbound:
    """One message a customer sent."""

    message_id: str
    sender: str  # digits, as WhatsApp gives them (wa_id)
    text: str | None  # what they wrote, or the button they pressed
    context_id: str | None  # the message of ours they replied to, if they did
    kind: str
    phone_number_id: str | None = None  # which of the business's numbers received it


def inbound_messages(payload: Any) -> list[Inbound]:
    """``entry[].changes[].value.messages[]`` of a webhook body; anything else (status updates,
    other fields, malformed parts) is skipped, never an error."""
    found: list[Inbound] = []
    for entry in _items(payload, "entry"):
        for change in _items(entry, "changes"):
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            metadata = value.get("metadata")
            number_id = _str(metadata.get("phone_number_id")) if isinstance(metadata,
                                                                           dict) else None
            for message in _items(value, "messages"):
                ident, sender = _str(message.get("id")), _str(message.get("from"))
                if not ident or not sender:
                    continue
                context = message.get("context")
                found.append(Inbound(
                    ident[:200], recipient(sender)[:20], _text_of(message),
                    _str(context.get("id")) if isinstance(context, dict) else None,
                    _str(message.get("type")) or "unknown", number_id))  # fmt: skip
    return found


@attrs.frozen
class Failed:
    """Meta's later word that a message it accepted could not be delivered (a status update
    ``failed``: an undeliverable number is often reported so, not in the send's answer)."""

    message_id: str  # our wamid
    recipient: str
    code: int | None
    title: str


def failed_statuses(payload: Any) -> list[Failed]:
    """``entry[].changes[].value.statuses[]`` whose ``status`` is ``failed``; the others (sent,
    delivered, read) are skipped."""
    found: list[Failed] = []
    for entry in _items(payload, "entry"):
        for change in _items(entry, "changes"):
            for status in _items(change.get("value"), "statuses"):
                ident = _str(status.get("id"))
                if status.get("status") != "failed" or not ident:
                    continue
                errors = _items(status, "errors")
                first = errors[0] if errors else {}
                code = first.get("code") if isinstance(first.get("code"), int) else None
                title = _str(first.get("title")) or _str(first.get("message")) or "failed"
                found.append(Failed(ident[:200], recipient(_str(status.get("recipient_id"))
                                                           or "")[:20], code, title[:200]))
    return found


def _items(node: Any, key: str) -> list[dict[str, Any]]:
    items = node.get(key) if isinstance(node, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _str(value: Any) -> str | None:
    """A string of the body, storable: JSON may carry NUL and lone surrogates ("\\u0000",
    "\\ud800"), which PostgreSQL text cannot hold."""
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return text or None


def _text_of(message: dict[str, Any]) -> str | None:
    """The words of a text, or the button pressed (its payload when it is one of the reply
    words, which a template's quick-reply buttons can be given; else its title)."""
    kind = message.get("type")
    part = message.get(kind) if isinstance(kind, str) else None
    if not isinstance(part, dict):
        return None
    if kind == "text":
        return _str(part.get("body"))
    if kind == "button":
        payload, title = _str(part.get("payload")), _str(part.get("text"))
    elif kind == "interactive":
        reply = part.get("button_reply") or part.get("list_reply")
        if not isinstance(reply, dict):
            return None
        payload, title = _str(reply.get("id")), _str(reply.get("title"))
    else:
        return None
    if payload and reply_of(payload) is not Reply.OTHER:
        return payload
    return title or payload


class Reply(enum.Enum):
    CALL_NOW = "call_now"  # → ready_to_call
    LATER = "later"  # → 30 minutes later
    CANCEL = "cancel"  # → canceled
    OTHER = "other"  # shown to the agent, not guessed at


_WORDS = {
    **dict.fromkeys(("sim", "s", "1", "yes"), Reply.CALL_NOW),
    **dict.fromkeys(("depois", "2", "later"), Reply.LATER),
    **dict.fromkeys(("nao", "n", "3", "no"), Reply.CANCEL),
}


def reply_of(text: str | None) -> Reply:
    """One of the words alone ("Sim!", " NÃO ", "2") is an answer; anything more is not."""
    return _WORDS.get(_bare(text or ""), Reply.OTHER)


def _bare(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    letters = "".join(c for c in folded if not unicodedata.combining(c))
    return letters.strip().strip(".!?,;:()[]'\"*_~ ").strip()


CONFIRMATIONS = {
    "pt-BR": {
        Reply.CALL_NOW: "Combinado! Vamos ligar para você em instantes.",
        Reply.LATER: "Sem problema: voltamos a falar com você daqui a 30 minutos.",
        Reply.CANCEL: "Tudo bem, cancelamos o retorno. Se precisar, é só ligar de novo.",
    },
    "en": {
        Reply.CALL_NOW: "Great! We will call you in a moment.",
        Reply.LATER: "No problem: we will get back to you in 30 minutes.",
        Reply.CANCEL: "All right, the callback is canceled. Call us again whenever you need.",
    },
}
