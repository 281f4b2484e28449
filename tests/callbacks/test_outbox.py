"""The outbox and the helpdesk webhook (issue 8): rows written with the ticket change on real
PostgreSQL, delivered over real HTTP to a local receiver that checks the signature the way
docs/callbacks.md tells a helpdesk to."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from datetime import UTC, datetime, timedelta

import httpx
import trio
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callcontrol.api.http import serve_http
from callcontrol.callbacks.availability import Snapshot
from callcontrol.callbacks.helpdesk import RETRY_AFTER_CAP, HelpdeskDeliverer, retry_after
from callcontrol.callbacks.outbox import RetryPolicy, backlog
from callcontrol.callbacks.requests import CallbackRequest, save_request
from callcontrol.callbacks.scanner import scan_once
from callcontrol.config import HostPort, load_settings
from callcontrol.db import PoolOptions, open_database
from callcontrol.metrics import Metrics
from callcontrol.testing.database import add_destination, add_domain, add_extension

DOMAIN = "clinica.example.com"
SECRET = "s3cret-shared-with-the-helpdesk"
FIELDS = {"callUuid", "callerNumber", "destinationExtension", "destinationName",
          "destinationDepartment", "reason", "scheduledAt", "notifyViaWhatsApp", "transcript",
          "summary", "durationSeconds", "secretaryUuid", "domainUuid"}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Helpdesk:
    """OmniPlay's side: verifies each webhook, answers ``status`` (503 while 'down')."""

    def __init__(self) -> None:
        self.status = 200
        self.retry_after: str | None = None  # sent with a refusal when set
        self.received: list[tuple[str, dict]] = []  # (idempotency key, body)
        self.refused = 0
        self.got = trio.Event()

    def app(self) -> Starlette:
        async def callback(request: Request) -> Response:
            body = await request.body()
            stamp = request.headers["X-Callcontrol-Timestamp"]
            expected = "v1=" + hmac.new(SECRET.encode(), stamp.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()  # fmt: skip
            if not hmac.compare_digest(expected, request.headers["X-Callcontrol-Signature"]):
                return JSONResponse({"error": "bad signature"}, status_code=401)
            if self.status != 200:
                self.refused += 1
                extra = {"Retry-After": self.retry_after} if self.retry_after else None
                return JSONResponse({"error": "down"}, status_code=self.status, headers=extra)
            self.received.append((request.headers["Idempotency-Key"], json.loads(body)))
            self.got.set()
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/api/voice/callback", callback, methods=["POST"])])


async def _clinic(db):
    domain = await add_domain(db, DOMAIN)
    await add_extension(db, domain, "1001")
    suporte = await add_destination(db, domain, "Suporte", "extension", "1001")
    return domain, suporte


def _settings(port: int):
    return load_settings({"OMNIPLAY_API_URL": f"http://127.0.0.1:{port}",
                          "OMNIPLAY_WEBHOOK_SECRET": SECRET})  # fmt: skip


async def _save(db, clinic, **fields):
    domain, suporte = clinic
    return await save_request(db, CallbackRequest(
        "callback", "+5511988887777", caller_name="Maria", reason="resultado do exame",
        domain_uuid=str(domain), destination_uuid=str(suporte), destination_name="Suporte",
        **fields), helpdesk=True)


async def _outbox(db):
    return await db.fetch_all("SELECT event, status, attempts, last_error, payload"
                              " FROM callcontrol_outbox ORDER BY outbox_id")  # fmt: skip


async def test_capture_and_notification_write_rows_in_their_transaction(db):
    clinic = await _clinic(db)
    saved = await _save(db, clinic)
    await _save(db, clinic, request_uuid=saved.request_uuid)  # the caller's correction
    await save_request(db, CallbackRequest("message", "+5511988887777", message="oi"),
                       helpdesk=True)  # a message is not a callback: no webhook
    settings = _settings(_free_port())
    registered = Snapshot.from_rows([{"reg_user": "1001", "realm": DOMAIN}], [])

    async def snapshot():
        return registered

    result = await scan_once(db, snapshot, settings, datetime.now(UTC))
    assert len(result.notified) == 1
    rows = await _outbox(db)
    assert [r["event"] for r in rows] == ["callback.created", "callback.updated",
                                          "callback.notified"]  # fmt: skip
    body = rows[-1]["payload"]
    assert set(body) >= FIELDS
    assert (body["callerNumber"], body["destinationExtension"], body["destinationName"],
            body["status"], body["ticketUuid"]) == ("+5511988887777", "1001", "Suporte",
                                                    "notified", saved.request_uuid)  # fmt: skip
    # without OMNIPLAY_API_URL nothing is written for the helpdesk
    other = await save_request(db, CallbackRequest("callback", "+5511977776666"))
    assert other.stored_in == "database" and len(await _outbox(db)) == 3


async def test_helpdesk_down_then_back_delivered_once_signed(db, nursery):
    clinic = await _clinic(db)
    saved = await _save(db, clinic)
    port = _free_port()
    helpdesk = Helpdesk()
    now = [datetime.now(UTC)]
    metrics = Metrics()
    deliverer = HelpdeskDeliverer(db, _settings(port), metrics=metrics, clock=lambda: now[0],
                                  policy=RetryPolicy(base=5, cap=60))  # fmt: skip
    async with httpx.AsyncClient(timeout=5) as client:
        # nothing listens: a refused connection
        assert await deliverer.deliver_once(client) == 0
        [row] = await _outbox(db)
        assert (row["status"], row["attempts"]) == ("pending", 1)
        assert row["last_error"].startswith("ConnectError")
        assert await deliverer.deliver_once(client) == 0  # not due again yet
        await nursery.start(serve_http, helpdesk.app(), HostPort("127.0.0.1", port))
        helpdesk.status = 503
        for _ in range(3):  # 503 twice: failing, still retried
            now[0] += timedelta(minutes=5)
            await deliverer.deliver_once(client)
        [row] = await _outbox(db)
        assert (row["status"], row["attempts"], row["last_error"][:8]) == ("failing", 4,
                                                                           "HTTP 503")
        found = await deliverer.measure()
        assert found.rows == 1 and found.failing == 1
        assert metrics.value("voice_outbox_backlog", kind="helpdesk_webhook") == 1
        assert metrics.value("voice_outbox_oldest_age_seconds", kind="helpdesk_webhook") >= 900
        helpdesk.status = 200
        now[0] += timedelta(minutes=5)
        assert await deliverer.deliver_once(client) == 1
        for _ in range(3):
            now[0] += timedelta(hours=1)
            assert await deliverer.deliver_once(client) == 0
    assert helpdesk.refused == 3 and len(helpdesk.received) == 1
    key, body = helpdesk.received[0]
    assert key  # the row's Idempotency-Key
    assert body["ticketUuid"] == saved.request_uuid and body["event"] == "callback.created"
    [row] = await _outbox(db)
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 5, None)
    assert (await backlog(db, now[0])).rows == 0
    assert metrics.value("voice_outbox_deliveries_total", kind="helpdesk_webhook",
                         result="failed") == 4  # fmt: skip


async def test_two_deliverers_send_each_row_once(db, db_url, nursery):
    clinic = await _clinic(db)
    for _ in range(20):
        await _save(db, clinic)
    port = _free_port()
    helpdesk = Helpdesk()
    await nursery.start(serve_http, helpdesk.app(), HostPort("127.0.0.1", port))

    async def one():
        async with (open_database(db_url, PoolOptions(min_size=1, max_size=2)) as instance,
                    httpx.AsyncClient(timeout=5) as client):  # fmt: skip
            deliverer = HelpdeskDeliverer(instance, _settings(port))
            while await deliverer.deliver_once(client):
                pass

    with trio.fail_after(30):
        async with trio.open_nursery() as both:
            for _ in range(2):
                both.start_soon(one)
    keys = [key for key, _ in helpdesk.received]
    assert len(keys) == 20 and len(set(keys)) == 20


async def test_the_loop_sends_a_new_row_when_kicked(db, nursery):
    clinic = await _clinic(db)
    port = _free_port()
    helpdesk = Helpdesk()
    await nursery.start(serve_http, helpdesk.app(), HostPort("127.0.0.1", port))
    deliverer = HelpdeskDeliverer(db, _settings(port))
    nursery.start_soon(deliverer.run, 3600)  # polls hourly: only the kick explains a send
    await _save(db, clinic)
    deliverer.kick()
    with trio.fail_after(10):
        await helpdesk.got.wait()
    assert len(helpdesk.received) == 1


async def test_retry_after_is_honoured_beyond_the_backoff(db, nursery):
    clinic = await _clinic(db)
    await _save(db, clinic)
    port = _free_port()
    helpdesk = Helpdesk()
    await nursery.start(serve_http, helpdesk.app(), HostPort("127.0.0.1", port))
    now = [datetime.now(UTC)]
    deliverer = HelpdeskDeliverer(db, _settings(port), clock=lambda: now[0],
                                  policy=RetryPolicy(base=5, cap=60))  # fmt: skip
    async with httpx.AsyncClient(timeout=5) as client:
        helpdesk.status, helpdesk.retry_after = 429, "600"
        assert await deliverer.deliver_once(client) == 0
        [row] = await db.fetch_all("SELECT next_attempt_at FROM callcontrol_outbox")
        assert row["next_attempt_at"] - now[0] == timedelta(seconds=600)
        helpdesk.status = 200
        now[0] += timedelta(minutes=5)  # the backoff alone (≤ 5 s) would send it now
        assert await deliverer.deliver_once(client) == 0
        now[0] += timedelta(minutes=6)
        assert await deliverer.deliver_once(client) == 1
    assert helpdesk.refused == 1 and len(helpdesk.received) == 1


def test_retry_after_reads_seconds_and_dates_and_caps_them():
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert retry_after("120", now) == timedelta(seconds=120)
    assert retry_after(" 0 ", now) == timedelta(0)
    assert retry_after("Mon, 07 Dec 2026 12:10:00 GMT", now) == timedelta(minutes=10)
    assert retry_after("Mon, 07 Dec 2026 11:00:00 GMT", now) == timedelta(0)  # past: now
    assert retry_after("86400", now) == RETRY_AFTER_CAP
    for unreadable in (None, "", "soon", "-5", "1.5", "Mon, 99 Foo", "²"):
        assert retry_after(unreadable, now) is None


@given(st.text(max_size=60))
def test_retry_after_never_fails_and_stays_within_the_cap(value):
    wait = retry_after(value, datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
    assert wait is None or timedelta(0) <= wait <= RETRY_AFTER_CAP
