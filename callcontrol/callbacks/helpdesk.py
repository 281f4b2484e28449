"""Delivering the outbox's helpdesk rows: ``POST {OMNIPLAY_API_URL}/api/voice/callback``.

Each request carries ``Idempotency-Key`` (the row's key: a retry of one change has the same
key), ``X-Callcontrol-Event`` and, when ``OMNIPLAY_WEBHOOK_SECRET`` is set,
``X-Callcontrol-Timestamp`` (Unix seconds) and ``X-Callcontrol-Signature: v1=<hex>``, the
HMAC-SHA256 with the secret of ``<timestamp>.<body bytes>``. The receiver recomputes it over the
raw body, compares in constant time, and refuses a timestamp too far from its clock (replays).
A 2xx is delivered; anything else (another status, a timeout, a refused connection) is retried
with ``RetryPolicy``'s backoff, forever, and stays visible in ``callcontrol_outbox``. A 429 or
503 with ``Retry-After`` (seconds or an HTTP date) is not tried again before that time, up to
``RETRY_AFTER_CAP`` — a receiver's wish to be left alone is honoured, but a typo there cannot park
a ticket's news for a day.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any

import httpx

from callcontrol.callbacks import outbox
from callcontrol.callbacks.delivery import RETRY_AFTER_CAP, Deliverer, retry_after
from callcontrol.config import Settings
from callcontrol.db.database import Database

__all__ = ["RETRY_AFTER_CAP", "HelpdeskDeliverer", "request_parts", "retry_after", "signature"]

PATH = "/api/voice/callback"
_RETRY_AFTER_STATUSES = frozenset({429, 503})


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def request_parts(
    row: outbox.Claimed, secret: str | None, now: datetime
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(row.payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": row.idempotency_key,
               "X-Callcontrol-Event": row.event}  # fmt: skip
    if secret:
        timestamp = str(int(now.timestamp()))
        headers["X-Callcontrol-Timestamp"] = timestamp
        headers["X-Callcontrol-Signature"] = signature(secret, timestamp, body)
    return body, headers


class HelpdeskDeliverer(Deliverer):
    """The outbox's ``helpdesk_webhook`` rows, POSTed to OmniPlay."""

    kind = outbox.HELPDESK

    def __init__(self, db: Database, settings: Settings, **options: Any) -> None:
        assert settings.omniplay_api_url
        super().__init__(db, **options)
        self.url = settings.omniplay_api_url.rstrip("/") + PATH
        self._secret = settings.omniplay_webhook_secret

    async def send(self, client: httpx.AsyncClient, row: outbox.Claimed) -> int:
        body, headers = request_parts(row, self._secret, self.clock())
        status: int | None = None
        asked: timedelta | None = None
        try:
            reply = await client.post(self.url, content=body, headers=headers)
            status = reply.status_code
            error = None if 200 <= status < 300 else f"HTTP {status}: {reply.text[:200]}"
            if status in _RETRY_AFTER_STATUSES:
                asked = retry_after(reply.headers.get("Retry-After"), self.clock())
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            assert status is not None
            return await self.delivered(row, status)
        await self.retry_later(row, error, status, asked=asked, url=self.url)
        return 0
