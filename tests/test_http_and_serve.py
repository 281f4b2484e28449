"""The HTTP API's token rule, and ``run_secretary_server`` as ``callcontrol serve`` runs it:
database, services, ESL listener and HTTP together, over real sockets."""

from __future__ import annotations

import socket

import httpx
import trio

from callcontrol.api.http import build_app, token_ok
from callcontrol.config import HostPort, load_settings
from callcontrol.metrics import Metrics
from callcontrol.server import App, run_secretary_server
from callcontrol.testing.database import add_destination, add_domain, add_secretary
from callcontrol.testing.freeswitch import open_freeswitch_sim
from callcontrol.testing.realtime import AwaitClient, GoSilent, Say, ScriptedRealtime


def test_token_comparison():
    assert token_ok("s3cret", "Bearer s3cret")
    assert not token_ok("s3cret", "Bearer s3cre")
    assert not token_ok("s3cret", "s3cret")
    assert not token_ok(None, "Bearer ")
    assert not token_ok("", "Bearer ")
    assert not token_ok("s3cret", None)


async def test_every_endpoint_needs_the_service_token():
    metrics = Metrics()
    metrics.transfers.labels(status="busy", destination_type="extension").inc()
    app = build_app(metrics, "s3cret", lambda: {"active_calls": 0})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cc") as client:
        assert (await client.get("/metrics")).status_code == 401
        bad = {"Authorization": "Bearer nope"}
        assert (await client.get("/healthz", headers=bad)).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        body = (await client.get("/metrics", headers=good)).text
        assert 'voice_transfers_total{destination_type="extension",status="busy"} 1.0' in body
        assert (await client.get("/healthz", headers=good)).json() == {
            "status": "ok",
            "active_calls": 0,
        }
    closed = build_app(metrics, None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=closed), base_url="http://cc"
    ) as client:
        assert (
            await client.get("/healthz", headers={"Authorization": "Bearer "})
        ).status_code == 401


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_runs_the_secretary_with_database_media_and_http(db, db_url, nursery):
    domain = await add_domain(db, "pbx.example.com")
    secretary = await add_secretary(db, domain)
    await add_destination(
        db, domain, "Atendimento", "ring_group", "9000", secretary_uuid=secretary, is_default=True
    )
    script = [AwaitClient("response.create"), Say("Olá!", ms=100), GoSilent()]
    async with (
        ScriptedRealtime(script, strict=False) as model_url,
        open_freeswitch_sim(domain="pbx.example.com") as sim,
    ):
        http_port = _free_port()
        settings = load_settings(
            {
                "DATABASE_URL": db_url,
                "REALTIME_URL": model_url,
                "OPENAI_API_KEY": "k",
                "VOICE_AI_SERVICE_TOKEN": "s3cret",
                "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{http_port}",
                "CALLCONTROL_UNICAST_PORTS": "127.0.0.1:47000-47099",
            }
        )
        app = App(settings=settings)
        listeners = await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
        port = listeners[0].socket.getsockname()[1]
        call = await sim.place_call(
            "127.0.0.1",
            port,
            variables={
                "domain_uuid": str(domain),
                "domain_name": "pbx.example.com",
                "voice_secretary_uuid": str(secretary),
            },
        )
        with trio.fail_after(10):
            await call.wait_for(lambda: call.answer_state == "answered")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
            health = await client.get("/healthz", headers={"Authorization": "Bearer s3cret"})
        assert health.json() == {"status": "ok", "active_calls": 1, "shutting_down": False}
        await call.hangup()
        with trio.fail_after(10):
            await call.wait_closed()
        app.shutting_down.set()
    rows = await db.fetch_all("SELECT outcome FROM callcontrol_calls")
    assert rows == [{"outcome": "caller_hangup"}]
