"""What every outbox deliverer shares (the helpdesk webhook, WhatsApp): the loop that claims due
rows of its ``kind`` and sends them (``run``, woken at once by ``kick``), the way a failed send
goes back to the queue (``retry_later``: ``RetryPolicy``'s backoff, or longer when the receiver
asked with ``Retry-After``), the log lines and the backlog metrics. A subclass only says how one
row is sent (``send``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx
import trio

from callcontrol.callbacks import outbox
from callcontrol.db.database import Connection, Database, DatabaseUnavailable
from callcontrol.logs import get_logger
from callcontrol.metrics import Metrics

TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 2.0
RETRY_AFTER_CAP = timedelta(hours=1)

_log = get_logger("callcontrol.callbacks.outbox")


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


class Deliverer:
    """Sends due rows of ``kind`` (``deliver_once``) and loops (``run``)."""

    kind: ClassVar[str]

    def __init__(
        self,
        db: Database,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        policy: outbox.RetryPolicy | None = None,
        rng: random.Random | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.clock = clock
        self.policy = policy or outbox.RetryPolicy()
        self.rng = rng or random.Random()
        self.timeout = timeout
        self.wake = trio.Event()  # set by whoever wrote a row, to send it now
        self.delivered_rows = 0
        self.recorded = trio.Event()  # set (and replaced) after each delivery is recorded

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
                    _log.error("outbox.not_read", kind=self.kind, error=str(exc),
                               next="in a moment")  # fmt: skip
                with trio.move_on_after(poll):
                    await woken.wait()

    async def deliver_once(self, client: httpx.AsyncClient) -> int:
        """Send every due row once; how many were delivered."""
        done = 0
        for row in await outbox.claim(self.db, self.clock(), kind=self.kind):
            done += await self.send(client, row)
        return done

    async def send(self, client: httpx.AsyncClient, row: outbox.Claimed) -> int:
        """Send one claimed row; 1 when delivered, else 0 (after ``retry_later``)."""
        raise NotImplementedError

    async def delivered(
        self,
        row: outbox.Claimed,
        http_status: int,
        *,
        external_id: str | None = None,
        also: Callable[[Connection], object] | None = None,
        **fields: Any,
    ) -> int:
        await outbox.delivered(self.db, row, self.clock(), http_status, external_id=external_id,
                               also=also)  # fmt: skip
        self._count("delivered")
        self.delivered_rows += 1
        self.recorded.set()
        self.recorded = trio.Event()
        _log.info("outbox.delivered", kind=self.kind, outbox_id=row.outbox_id,
                  outbox_event=row.event, request_uuid=row.request_uuid, attempts=row.attempts,
                  http=http_status, **fields)  # fmt: skip
        return 1

    async def retry_later(
        self,
        row: outbox.Claimed,
        error: str,
        http_status: int | None,
        *,
        asked: timedelta | None = None,
        permanent: bool = False,
        also: Callable[[Connection], object] | None = None,
        level: str | None = None,
        **fields: Any,
    ) -> str:
        """Back to the queue after the backoff (or ``asked``, when longer); ``permanent``: never
        again. One log line: an error once the row is failing or failed, else a warning, unless
        the caller knows better (``level``)."""
        wait = self.policy.delay(row.attempts, self.rng)
        if asked is not None and asked > wait:
            wait = asked
        retry_at = self.clock() + wait
        status = await outbox.failed(self.db, row, retry_at, error, http_status,
                                     permanent=permanent, also=also)  # fmt: skip
        self._count("failed")
        level = level or ("error" if status in ("failing", "failed") else "warning")
        log = getattr(_log, level)
        log("outbox.delivery_failed", kind=self.kind, outbox_id=row.outbox_id,
            outbox_event=row.event, request_uuid=row.request_uuid, attempts=row.attempts,
            status=status, error=error, retry_at=None if permanent else retry_at.isoformat(),
            retry_after=None if asked is None else asked.total_seconds(), **fields)  # fmt: skip
        return status

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.outbox_deliveries.labels(kind=self.kind, result=result).inc()

    async def measure(self) -> outbox.Backlog:
        found = await outbox.backlog(self.db, self.clock(), self.kind)
        if self.metrics is not None:
            self.metrics.outbox_backlog.labels(kind=self.kind).set(found.rows)
            self.metrics.outbox_failing.labels(kind=self.kind).set(found.failing)
            self.metrics.outbox_oldest.labels(kind=self.kind).set(found.oldest_age_seconds)
        return found
