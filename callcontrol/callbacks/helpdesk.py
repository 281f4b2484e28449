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
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
import trio

from callcontrol.callbacks import outbox
from callcontrol.config import Settings
from callcontrol.db.database import Database, DatabaseUnavailable
from callcontrol.logs import get_logger
from callcontrol.metrics import Metrics

PATH = "/api/voice/callback"
TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 2.0
RETRY_AFTER_CAP = timedelta(hours=1)
_RETRY_AFTER_STATUSES = frozenset({429, 503})

_log = get_logger("callcontrol.callbacks.helpdesk")


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


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """How long a ``Retry-After`` header asks us to wait (RFC 9110 §10.2.3), capped at
    ``RETRY_AFTER_CAP``; None when absent or unreadable (then only the backoff applies)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        wait = timedelta(seconds=int(value[:9]))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        wait = max(timedelta(0), when - now)
    return min(wait, RETRY_AFTER_CAP)


class HelpdeskDeliverer:
    """Sends due rows (``deliver_once``) and loops (``run``); updates the backlog metrics."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        policy: outbox.RetryPolicy | None = None,
        rng: random.Random | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        assert settings.omniplay_api_url
        self.db = db
        self.url = settings.omniplay_api_url.rstrip("/") + PATH
        self._secret = settings.omniplay_webhook_secret
        self.metrics = metrics
        self.clock = clock
        self.policy = policy or outbox.RetryPolicy()
        self.rng = rng or random.Random()
        self.timeout = timeout
        self.wake = trio.Event()  # set by whoever wrote a row, to send it now

    def kick(self) -> None:
        self.wake.set()
        self.wake = trio.Event()

    async def run(self, poll: float = POLL_SECONDS) -> None:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            while True:
                woken = self.wake
                try:
                    await self.deliver_once(client)
                    await self.measure()
                except DatabaseUnavailable as exc:
                    _log.error("outbox.not_read", error=str(exc), next="in a moment")
                with trio.move_on_after(poll):
                    await woken.wait()

    async def deliver_once(self, client: httpx.AsyncClient) -> int:
        """Send every due row once; how many were delivered."""
        done = 0
        for row in await outbox.claim(self.db, self.clock()):
            done += await self._send(client, row)
        return done

    async def _send(self, client: httpx.AsyncClient, row: outbox.Claimed) -> int:
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
            await outbox.delivered(self.db, row, self.clock(), status)
            self._count("delivered")
            _log.info("outbox.delivered", outbox_id=row.outbox_id, webhook=row.event,
                      request_uuid=row.request_uuid, attempts=row.attempts,
                      http=status)  # fmt: skip
            return 1
        wait = self.policy.delay(row.attempts, self.rng)
        if asked is not None and asked > wait:
            wait = asked
        retry_at = self.clock() + wait
        now_status = await outbox.failed(self.db, row, retry_at, error, status)
        self._count("failed")
        log = _log.error if now_status == "failing" else _log.warning
        log("outbox.delivery_failed", outbox_id=row.outbox_id, webhook=row.event,
            request_uuid=row.request_uuid, attempts=row.attempts, status=now_status,
            error=error, retry_at=retry_at.isoformat(), url=self.url,
            retry_after=None if asked is None else asked.total_seconds())  # fmt: skip
        return 0

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.outbox_deliveries.labels(kind=outbox.HELPDESK, result=result).inc()

    async def measure(self) -> outbox.Backlog:
        found = await outbox.backlog(self.db, self.clock())
        if self.metrics is not None:
            self.metrics.outbox_backlog.labels(kind=outbox.HELPDESK).set(found.rows)
            self.metrics.outbox_failing.labels(kind=outbox.HELPDESK).set(found.failing)
            self.metrics.outbox_oldest.labels(kind=outbox.HELPDESK).set(found.oldest_age_seconds)
        return found
