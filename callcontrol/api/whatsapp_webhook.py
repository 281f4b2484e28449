"""``/webhooks/whatsapp``: Meta's WhatsApp Cloud API webhook. Not behind the service token —
Meta cannot send it — but checked by what Meta does send:

- ``GET`` is the subscription handshake the app dashboard makes when the admin saves the
  callback URL: ``hub.mode=subscribe``, ``hub.verify_token`` (compared in constant time with
  ``WHATSAPP_VERIFY_TOKEN``) and ``hub.challenge``, echoed back as text;
- ``POST`` carries ``X-Hub-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the raw body with
  ``WHATSAPP_APP_SECRET``, compared in constant time: unsigned or forged is a 401 and a log line
  (the client's address and the body's size, never a secret). A genuine POST is answered 200 as
  soon as its messages are stored (``callbacks.whatsapp_replies``), whatever it holds — status
  updates, malformed parts and unknown fields are skipped — because Meta retries anything else
  for days. Only a database that does not answer gets a 503, so that Meta delivers it again
  (a retry changes nothing twice).

Without ``WHATSAPP_VERIFY_TOKEN`` (GET) or ``WHATSAPP_APP_SECRET`` (POST) the webhook is off: a
404 that names the variable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from callcontrol.api.context import ApiContext
from callcontrol.api.errors import ApiError
from callcontrol.callbacks import whatsapp as wa
from callcontrol.callbacks.whatsapp_replies import handle_failures, handle_messages
from callcontrol.config import Settings
from callcontrol.logs import get_logger

PATH = "/webhooks/whatsapp"
MAX_BODY = 1 << 20  # Meta's webhooks are a few KiB; a batch of messages stays far below
MAX_CHALLENGE = 200
_MOVED = frozenset({"call_now", "later", "cancel"})

_log = get_logger("callcontrol.api.whatsapp")


@attrs.define(eq=False)
class WhatsAppWebhook:
    settings: Settings
    kick: Callable[[], None] = lambda: None  # wakes the WhatsApp deliverer (confirmations)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


def _hook(request: Request, needs: str) -> WhatsAppWebhook:
    hook = ApiContext.of(request).whatsapp
    if hook is None or not getattr(hook.settings, needs):
        variable = needs.upper()
        raise ApiError(404, "whatsapp_not_configured",
                       f"{variable} is not set on this server, so the WhatsApp webhook is off")
    assert isinstance(hook, WhatsAppWebhook)
    return hook


async def subscribe(request: Request) -> Response:
    hook = _hook(request, "whatsapp_verify_token")
    query = request.query_params
    mode, token, challenge = (query.get("hub.mode"), query.get("hub.verify_token"),
                              query.get("hub.challenge"))  # fmt: skip
    client = request.client.host if request.client else None
    metrics = ApiContext.of(request).metrics
    if mode != "subscribe" or not wa.token_ok(hook.settings.whatsapp_verify_token, token):
        metrics.whatsapp_webhooks.labels(result="subscription_refused").inc()
        _log.warning("whatsapp.subscription_refused", client=client, mode=mode,
                     why="hub.mode is not subscribe" if mode != "subscribe"
                     else "hub.verify_token is not WHATSAPP_VERIFY_TOKEN")  # fmt: skip
        raise ApiError(403, "forbidden", "hub.mode must be subscribe and hub.verify_token must "
                                         "be this server's WHATSAPP_VERIFY_TOKEN")  # fmt: skip
    if not challenge or len(challenge) > MAX_CHALLENGE or not challenge.isprintable():
        raise ApiError(400, "bad_request", "hub.challenge is missing or not a short text")
    metrics.whatsapp_webhooks.labels(result="subscribed").inc()
    _log.info("whatsapp.subscribed", client=client)
    return PlainTextResponse(challenge)


async def receive(request: Request) -> Response:
    hook = _hook(request, "whatsapp_app_secret")
    body = await _body(request)
    header = request.headers.get("x-hub-signature-256")
    secret = hook.settings.whatsapp_app_secret or ""
    ctx = ApiContext.of(request)
    if not wa.signature_ok(secret, body, header):
        ctx.metrics.whatsapp_webhooks.labels(result="refused").inc()
        _log.warning("whatsapp.webhook_refused", bytes=len(body),
                     client=request.client.host if request.client else None,
                     why="unsigned" if not header else "the signature does not match "
                     "WHATSAPP_APP_SECRET")  # fmt: skip
        raise ApiError(401, "unauthorized", "X-Hub-Signature-256 is missing or wrong")
    payload = _json(body)
    messages = wa.inbound_messages(payload)
    handled = await handle_messages(ctx.database(), hook.settings, messages, hook.clock())
    for done in handled:
        ctx.metrics.whatsapp_replies.labels(outcome=done.outcome).inc()
    if any(h.outcome in _MOVED for h in handled):
        hook.kick()  # the confirmations are in the outbox: send them now
    failures = wa.failed_statuses(payload)
    await handle_failures(ctx.database(), failures, hook.clock())
    ctx.metrics.whatsapp_webhooks.labels(result="accepted").inc()
    if not messages and not failures:
        _log.info("whatsapp.webhook_skipped", bytes=len(body),
                  why="no customer message nor failed delivery in it (a status update, or "
                  "another field)")
    return JSONResponse({"received": len(messages)})


async def _body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, "too_large", f"the body is over {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None  # signed but not JSON: Meta's to answer for, nothing of ours to do
