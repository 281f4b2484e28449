"""What a customer's WhatsApp message does to their ticket (the webhook's side, after the
signature was checked: ``api.whatsapp_webhook``).

Each message, in one transaction:

1. is recorded in ``callcontrol_whatsapp_inbound`` by its WhatsApp id; an id already there is a
   duplicate delivery (Meta retries) and changes nothing;
2. finds its ticket: the one our message it quotes (``context.id``, a wamid we were given) was
   sent for, else the newest ticket we wrote to at that number (an open one first);
3. becomes the ticket's ``whatsapp_response`` (shown to the agent) whatever it says;
4. one of the reply words moves the ticket — "sim"/"s"/"1"/"yes" to ``ready_to_call``,
   "depois"/"2"/"later" 30 minutes later (``pending``), "não"/"nao"/"n"/"3"/"no" to
   ``canceled`` — through the tickets' allowed moves, recorded in its history as ``whatsapp``,
   and the customer is sent a confirmation through the outbox; anything else moves nothing (it
   is not guessed at). A move the ticket cannot make (it is closed, or would expire before the
   new time) is ``refused``: stored, no confirmation.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

import attrs

from callcontrol.callbacks import whatsapp as wa
from callcontrol.callbacks.tickets import (
    MoveRefused,
    SnoozePastExpiry,
    TicketNotFound,
    TicketStatus,
    move,
    snooze_in,
)
from callcontrol.callbacks.whatsapp_delivery import (
    enqueue_text,
    sending_configured,
    undeliverable_reason,
    write_undeliverable,
)
from callcontrol.config import Settings
from callcontrol.db.database import Connection, Database
from callcontrol.logs import get_logger

LATER = timedelta(minutes=30)
BY = "whatsapp"
MAX_BODY = 1000

_log = get_logger("callcontrol.callbacks.whatsapp")

_RECORD = """
INSERT INTO callcontrol_whatsapp_inbound
    (message_id, sender, kind, body, context_id, outcome, received_at)
VALUES (%(id)s, %(sender)s, %(kind)s, %(body)s, %(context)s, 'unmatched', %(now)s)
ON CONFLICT (message_id) DO NOTHING
RETURNING message_id
"""

_BY_CONTEXT = """
SELECT request_uuid::text AS request_uuid FROM callcontrol_outbox
 WHERE kind = 'whatsapp' AND external_id = %(id)s AND request_uuid IS NOT NULL
 LIMIT 1
"""

_BY_NUMBER = """
SELECT request_uuid::text AS request_uuid FROM callcontrol_callback_requests
 WHERE kind = 'callback' AND phone_number = ANY(%(numbers)s) AND whatsapp_sent_at IS NOT NULL
 ORDER BY (status IN ('pending', 'notified', 'ready_to_call')) DESC, whatsapp_sent_at DESC
 LIMIT 1
"""

_RESPONSE = """
UPDATE callcontrol_callback_requests
   SET whatsapp_response = %(body)s, whatsapp_response_at = %(now)s, updated_at = now()
 WHERE request_uuid = %(uuid)s
"""

_OUTCOME = """
UPDATE callcontrol_whatsapp_inbound SET request_uuid = %(uuid)s, outcome = %(outcome)s
 WHERE message_id = %(id)s
"""


@attrs.frozen
class Handled:
    message_id: str
    outcome: str  # duplicate, not_ours, unmatched, other, refused, call_now, later, cancel
    request_uuid: str | None = None


async def handle_messages(
    db: Database, settings: Settings, messages: list[wa.Inbound], now: datetime
) -> list[Handled]:
    """Each message in its own transaction (one that cannot be matched does not hold up the
    others); ``DatabaseUnavailable`` is the caller's (the webhook answers 503: Meta retries)."""
    done = []
    for message in messages:
        ours = settings.whatsapp_phone_number_id
        if ours and message.phone_number_id and message.phone_number_id != ours:
            handled = Handled(message.message_id, "not_ours")  # another number of the app
        else:
            handled = await db.transaction(functools.partial(_handle, settings=settings,
                                                             message=message, now=now))
        _log.info("whatsapp.reply", message_id=handled.message_id, outcome=handled.outcome,
                  request_uuid=handled.request_uuid, kind=message.kind)  # fmt: skip
        done.append(handled)
    return done


def _handle(
    conn: Connection, *, settings: Settings, message: wa.Inbound, now: datetime
) -> Handled:
    body = (message.text or f"[{message.kind}]")[:MAX_BODY]
    fresh = conn.execute(_RECORD, {"id": message.message_id, "sender": message.sender,
                                   "kind": message.kind[:40], "body": body,
                                   "context": message.context_id, "now": now}).fetchone()
    if fresh is None:
        return Handled(message.message_id, "duplicate")
    ticket = _ticket_of(conn, message)
    outcome = "unmatched"
    if ticket is not None:
        conn.execute(_RESPONSE, {"body": body, "now": now, "uuid": ticket})
        outcome = _act(conn, settings, message, ticket, now)
    conn.execute(_OUTCOME, {"uuid": ticket, "outcome": outcome, "id": message.message_id})
    return Handled(message.message_id, outcome, ticket)


def _ticket_of(conn: Connection, message: wa.Inbound) -> str | None:
    if message.context_id:
        row = conn.execute(_BY_CONTEXT, {"id": message.context_id}).fetchone()
        if row is not None:
            return str(row["request_uuid"])
    row = conn.execute(_BY_NUMBER, {"numbers": wa.numbers_of(message.sender)}).fetchone()
    return None if row is None else str(row["request_uuid"])


def _act(
    conn: Connection, settings: Settings, message: wa.Inbound, ticket: str, now: datetime
) -> str:
    reply = wa.reply_of(message.text)
    if reply is wa.Reply.OTHER:
        return str(reply.value)
    why = f"the customer answered {wa.parameter(message.text, '?')[:40]!r} on WhatsApp"
    try:
        if reply is wa.Reply.CALL_NOW:
            move(conn, ticket, TicketStatus.READY_TO_CALL, by=BY, reason=why)
        elif reply is wa.Reply.LATER:
            snooze_in(conn, ticket, now + LATER, by=BY, reason=why)
        else:
            move(conn, ticket, TicketStatus.CANCELED, by=BY, reason=why)
    except (MoveRefused, SnoozePastExpiry, TicketNotFound):
        return "refused"
    if sending_configured(settings):
        texts = wa.CONFIRMATIONS.get(settings.language, wa.CONFIRMATIONS["pt-BR"])
        enqueue_text(conn, ticket, message.sender, texts[reply], now,
                     reply_to=message.message_id)  # fmt: skip
    return str(reply.value)


_FAILED_SEEN = """
INSERT INTO callcontrol_whatsapp_inbound
    (message_id, sender, kind, body, context_id, outcome, received_at)
VALUES ('failed:' || %(id)s, %(recipient)s, 'status', %(title)s, %(id)s, 'undeliverable',
        %(now)s)
ON CONFLICT (message_id) DO NOTHING
RETURNING message_id
"""

_FAILED_ROW = """
UPDATE callcontrol_outbox SET status = 'failed', last_error = %(error)s
 WHERE kind = 'whatsapp' AND external_id = %(id)s
RETURNING request_uuid::text AS request_uuid
"""


async def handle_failures(db: Database, failures: list[wa.Failed], now: datetime) -> int:
    """Each message Meta says it could not deliver: its outbox row becomes ``failed`` and its
    ticket's history says why (once, however often Meta repeats it); how many were ours."""
    ours = 0
    for failure in failures:
        ticket = await db.transaction(functools.partial(_failed, failure=failure, now=now))
        _log.info("whatsapp.undelivered", message_id=failure.message_id, code=failure.code,
                  request_uuid=ticket)  # fmt: skip
        ours += ticket is not None
    return ours


def _failed(conn: Connection, *, failure: wa.Failed, now: datetime) -> str | None:
    fresh = conn.execute(_FAILED_SEEN, {"id": failure.message_id, "recipient": failure.recipient,
                                        "title": failure.title, "now": now}).fetchone()
    if fresh is None:
        return None  # told already
    error = f"undeliverable: Graph error {failure.code}: {failure.title} (status webhook)"
    row = conn.execute(_FAILED_ROW, {"id": failure.message_id, "error": error}).fetchone()
    if row is None or row["request_uuid"] is None:
        return None
    ticket = str(row["request_uuid"])
    write_undeliverable(conn, ticket, undeliverable_reason(
        failure.code, wa.UNDELIVERABLE_CODES.get(failure.code or -1, failure.title)))
    return ticket
