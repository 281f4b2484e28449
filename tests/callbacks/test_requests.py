"""Callback requests are never lost: written to the database, or spooled and loaded later."""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import trio

from callcontrol.callbacks.requests import CallbackRequest, drain_spool, save_request
from callcontrol.db.database import Database, PoolOptions


def _request(phone_number="+5511988887777", **kwargs):
    return CallbackRequest(
        "callback",
        phone_number,
        caller_name="Maria",
        preferred_time="amanhã cedo",
        reason="exame",
        **kwargs,
    )


async def test_saved_in_the_database(db):
    saved = await save_request(db, _request())
    assert saved.stored_in == "database"
    rows = await db.fetch_all(
        "SELECT request_uuid::text, phone_number, status FROM callcontrol_callback_requests"
    )
    assert rows == [
        {"request_uuid": saved.request_uuid, "phone_number": "+5511988887777", "status": "pending"}
    ]


async def _proxy(target_port, streams, *, task_status=trio.TASK_STATUS_IGNORED):
    """A TCP forwarder to PostgreSQL that the test can pull the plug on."""

    async def handle(client):
        server = await trio.open_tcp_stream("127.0.0.1", target_port)
        streams.extend([client, server])

        async def pump(a, b):
            try:
                async for data in a:
                    await b.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                await trio.aclose_forcefully(b)

        async with trio.open_nursery() as n:
            n.start_soon(pump, client, server)
            n.start_soon(pump, server, client)

    await trio.serve_tcp(handle, 0, host="127.0.0.1", task_status=task_status)


async def test_database_that_drops_spools_then_drains_once(db, db_url, tmp_path):
    spool = tmp_path / "spool.jsonl"
    target = urlsplit(db_url).port or 5432
    streams: list = []
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(_proxy, target, streams)
        port = listeners[0].socket.getsockname()[1]
        via_proxy = db_url.replace(f":{target}/", f":{port}/", 1)
        flaky = await Database.open(
            via_proxy, PoolOptions(connect_timeout=1, checkout_timeout=1, min_size=1, max_size=1)
        )
        assert await flaky.fetch_value("SELECT 1") == 1
        nursery.cancel_scope.cancel()  # the network drops
    for stream in streams:
        await trio.aclose_forcefully(stream)
    try:
        saved = await save_request(flaky, _request(), spool=spool)
    finally:
        await flaky.close()
    assert saved.stored_in == "spool"
    line = json.loads(spool.read_text())
    assert line["request_uuid"] == saved.request_uuid and line["reason"] == "exame"
    assert await drain_spool(db, spool) == 1
    assert not spool.exists()
    assert await drain_spool(db, spool) == 0
    rows = await db.fetch_all("SELECT request_uuid::text FROM callcontrol_callback_requests")
    assert rows == [{"request_uuid": saved.request_uuid}]


SCHEDULED = datetime(2026, 12, 11, 9, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))


async def test_scheduled_at_is_stored_and_a_correction_replaces_the_request(db):
    saved = await save_request(db, _request(scheduled_at=SCHEDULED, time_understood=True))
    corrected = _request(request_uuid=saved.request_uuid, scheduled_at=SCHEDULED, phone_number=
                         "+552134567890", time_understood=False)  # fmt: skip
    await save_request(db, corrected)
    rows = await db.fetch_all(
        "SELECT phone_number, preferred_time, scheduled_at, time_understood"
        " FROM callcontrol_callback_requests"
    )
    assert rows == [{"phone_number": "+552134567890", "preferred_time": "amanhã cedo",
                     "scheduled_at": SCHEDULED, "time_understood": False}]  # fmt: skip


async def test_the_spool_keeps_scheduled_at_and_drains_lines_of_the_earlier_release(db, tmp_path):
    spool = tmp_path / "spool.jsonl"
    request = _request(scheduled_at=SCHEDULED, time_understood=True)
    old = {k: v for k, v in _request().row().items()
           if k not in ("scheduled_at", "time_understood")}  # fmt: skip
    spool.write_text(json.dumps(request.row()) + "\n" + json.dumps(old) + "\n")
    assert await drain_spool(db, spool) == 2
    rows = await db.fetch_all(
        "SELECT request_uuid::text AS id, scheduled_at FROM callcontrol_callback_requests"
    )
    assert {r["id"]: r["scheduled_at"] for r in rows} == {
        request.request_uuid: SCHEDULED, old["request_uuid"]: None}  # fmt: skip
