"""WhatsApp through the outbox: the rows (``enqueue_template`` in the scanner's notification
transaction, ``enqueue_text`` with a reply's ticket change) and their delivery to the Cloud API
(``WhatsAppDeliverer``, run by ``serve`` when ``WHATSAPP_TOKEN`` and ``WHATSAPP_PHONE_NUMBER_ID``
are set).

A ticket that asks for WhatsApp (``notify_via_whatsapp``) gets the template once when its agent
is first found free, and once more each time it is put off (a "depois" is asked again at the new
time); the re-notifications of the agent every minimum interval do not write to the customer
again. What the Graph API answers decides the row's fate:

- 2xx: delivered; the wamid is kept (``callcontrol_outbox.external_id``, and for the template
  the ticket's ``whatsapp_message_id`` and ``whatsapp_sent_at``) so a reply quoting it finds
  its ticket;
- rate limit (HTTP 429, Graph codes 130429, 131056, …): retried, not before ``Retry-After`` or
  ``RATE_LIMIT_WAIT``;
- expired or wrong token (HTTP 401, code 190): retried with the backoff, so the backlog goes once
  the admin renews the token; an error line the first time for a row, info lines after;
- the number cannot receive it (code 131026, …): ``failed``, never retried, and the ticket's
  history says why;
- anything else, a timeout, a refused connection: retried with the backoff, forever.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import httpx

from callcontrol.callbacks import outbox
from callcontrol.callbacks import whatsapp as wa
from callcontrol.callbacks.delivery import Deliverer, retry_after
from callcontrol.config import Settings
from callcontrol.db.database import Connection, Database

TEMPLATE = "whatsapp.template"
REPLY = "whatsapp.reply"
RATE_LIMIT_WAIT = timedelta(seconds=60)


def sending_configured(settings: Settings) -> bool:
    return bool(settings.whatsapp_token and settings.whatsapp_phone_number_id)


# Who the caller wanted and the company: the ticket's own words first, then its destination, the
# secretary's company name (its own row, else the domain's), the domain's name.
_TEMPLATE_DUE = """
SELECT r.request_uuid::text AS request_uuid, r.phone_number, r.reason,
       coalesce((SELECT s.company_name FROM callcontrol_secretaries s
                  WHERE s.domain_uuid = r.domain_uuid AND nullif(s.company_name, '') IS NOT NULL
                    AND (s.secretary_uuid IS NULL OR s.secretary_uuid = r.secretary_uuid)
                  ORDER BY s.secretary_uuid NULLS LAST LIMIT 1), d.domain_name) AS company,
       coalesce(nullif(r.intended_for, ''), nullif(r.destination_name, ''), t.name)
           AS intended_for
  FROM callcontrol_callback_requests r
  LEFT JOIN v_voice_transfer_destinations t ON t.transfer_destination_uuid = r.destination_uuid
  LEFT JOIN v_domains d ON d.domain_uuid = r.domain_uuid
 WHERE r.request_uuid = ANY(%(uuids)s::uuid[]) AND r.kind = 'callback' AND r.notify_via_whatsapp
   AND NOT EXISTS (SELECT 1 FROM callcontrol_outbox o
                    WHERE o.request_uuid = r.request_uuid AND o.kind = 'whatsapp'
                      AND o.event = 'whatsapp.template'
                      AND o.created_at >= coalesce(r.scheduled_at, '-infinity'))
 ORDER BY r.request_uuid
"""

_INSERT = """
INSERT INTO callcontrol_outbox (kind, event, request_uuid, payload, next_attempt_at, created_at)
VALUES ('whatsapp', %(event)s, %(uuid)s, %(payload)s::jsonb, %(now)s, %(now)s)
RETURNING outbox_id
"""


def enqueue_template(
    conn: Connection, settings: Settings, request_uuids: list[str], now: datetime
) -> int:
    """Inside the caller's transaction: the template for each of these tickets that asks for
    WhatsApp and has not been sent it since its scheduled time (a ticket put off — "depois" —
    is asked again at its new time); how many."""
    if not request_uuids:
        return 0
    fallback = {**wa.FALLBACKS.get(settings.language, wa.FALLBACKS["pt-BR"])}
    written = 0
    for row in conn.execute(_TEMPLATE_DUE, {"uuids": request_uuids}).fetchall():
        message = wa.template_message(
            row["phone_number"], settings.whatsapp_template_name,
            settings.whatsapp_template_language,
            wa.parameter(row["company"], fallback["company"]),
            wa.parameter(row["intended_for"], fallback["intended_for"]),
            wa.parameter(row["reason"], fallback["reason"]),
        )  # fmt: skip
        _insert(conn, TEMPLATE, row["request_uuid"], message, now)
        written += 1
    return written


def enqueue_text(
    conn: Connection, request_uuid: str | None, to: str, body: str, now: datetime,
    *, reply_to: str | None = None,
) -> None:  # fmt: skip
    _insert(conn, REPLY, request_uuid, wa.text_message(to, body, reply_to=reply_to), now)


def _insert(
    conn: Connection, event: str, request_uuid: str | None, message: dict[str, Any],
    now: datetime,
) -> None:  # fmt: skip
    conn.execute(_INSERT, {"event": event, "uuid": request_uuid, "now": now,
                           "payload": json.dumps(message, ensure_ascii=False)})  # fmt: skip


_SENT = """
UPDATE callcontrol_callback_requests
   SET whatsapp_sent_at = %(now)s, whatsapp_message_id = %(wamid)s, updated_at = now()
 WHERE request_uuid = %(uuid)s
"""

# The status does not change, so the trigger writes nothing: the reason is recorded here.
_UNDELIVERABLE_HISTORY = """
INSERT INTO callcontrol_callback_history (request_uuid, from_status, to_status, changed_by, reason)
SELECT request_uuid, status, status, 'whatsapp', %(reason)s
  FROM callcontrol_callback_requests WHERE request_uuid = %(uuid)s
"""


def undeliverable_reason(code: int | None, why: str) -> str:
    return f"WhatsApp message not delivered and not retried: {why} (Graph error {code})"


def write_undeliverable(conn: Connection, request_uuid: str, reason: str) -> None:
    """The ticket's history says why its customer got no WhatsApp (its status is unchanged)."""
    conn.execute(_UNDELIVERABLE_HISTORY, {"uuid": request_uuid, "reason": reason})


class WhatsAppDeliverer(Deliverer):
    """The outbox's ``whatsapp`` rows, POSTed to ``{WHATSAPP_API_URL}/{id}/messages``."""

    kind = outbox.WHATSAPP

    def __init__(self, db: Database, settings: Settings, **options: Any) -> None:
        assert sending_configured(settings)
        super().__init__(db, **options)
        base = settings.whatsapp_api_url.rstrip("/")
        self.url = f"{base}/{settings.whatsapp_phone_number_id}/messages"
        self._token = settings.whatsapp_token  # never logged

    async def send(self, client: httpx.AsyncClient, row: outbox.Claimed) -> int:
        body = json.dumps(row.payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        try:
            reply = await client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            await self.retry_later(row, f"{type(exc).__name__}: {exc}", None, url=self.url)
            return 0
        try:
            answered: Any = reply.json()
        except ValueError:
            answered = None
        answer = wa.read_answer(reply.status_code, answered)
        if answer.outcome is wa.Outcome.SENT:
            return await self.delivered(row, reply.status_code, external_id=answer.message_id,
                                        also=self._record_sent(row, answer.message_id),
                                        wamid=answer.message_id)  # fmt: skip
        await self._refused(row, reply, answer)
        return 0

    def _record_sent(self, row: outbox.Claimed, wamid: str | None) -> Any:
        if row.event != TEMPLATE or row.request_uuid is None:
            return None
        params = {"now": self.clock(), "wamid": wamid, "uuid": row.request_uuid}
        return lambda conn: conn.execute(_SENT, params)

    async def _refused(self, row: outbox.Claimed, reply: httpx.Response, answer: wa.Answer) -> None:
        error = answer.error or f"HTTP {reply.status_code}"
        status = reply.status_code
        if answer.outcome is wa.Outcome.RATE_LIMITED:
            asked = retry_after(reply.headers.get("Retry-After"), self.clock()) or RATE_LIMIT_WAIT
            await self.retry_later(row, error, status, asked=asked, code=answer.code)
        elif answer.outcome is wa.Outcome.UNAUTHORIZED:
            # every row fails alike until the token is renewed: one error line per row is enough
            again = (row.last_error or "").startswith(wa.Outcome.UNAUTHORIZED.value + ":")
            await self.retry_later(row, error, status, level="info" if again else "error",
                                   code=answer.code,
                                   fix="renew WHATSAPP_TOKEN (a system user's permanent token) "
                                       "and restart")  # fmt: skip
        elif answer.outcome is wa.Outcome.UNDELIVERABLE:
            reason = undeliverable_reason(answer.code, answer.why)
            ticket = row.request_uuid
            also = None if ticket is None else lambda c: write_undeliverable(c, ticket, reason)
            await self.retry_later(row, error, status, permanent=True, also=also,
                                   code=answer.code)  # fmt: skip
        else:
            await self.retry_later(row, error, status, code=answer.code, url=self.url)
