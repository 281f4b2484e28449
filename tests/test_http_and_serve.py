"""The HTTP API's token rule, and ``run_secretary_server`` as ``callcontrol serve`` runs it:
database, services, ESL listener and HTTP together, over real sockets."""

from __future__ import annotations

import socket

import httpx
import psycopg
import trio

from callcontrol.api.http import build_app, serve_http, token_ok
from callcontrol.config import HostPort, load_settings
from callcontrol.metrics import Metrics
from callcontrol.server import App, run_secretary_server
from callcontrol.testing.database import add_destination, add_domain, add_secretary
from callcontrol.testing.freeswitch import open_freeswitch_sim
from callcontrol.testing.realtime import AwaitClient, GoSilent, Say, ScriptedRealtime
from tests.ports import unicast_ports


def test_token_comparison():
    assert token_ok("s3cret", "Bearer s3cret")
    assert not token_ok("s3cret", "Bearer s3cre")
    assert not token_ok("s3cret", "s3cret")
    assert not token_ok(None, "Bearer ")
    assert not token_ok("", "Bearer ")
    assert not token_ok("s3cret", None)


async def test_only_the_probes_answer_without_the_service_token(nursery):
    metrics = Metrics()
    metrics.transfers.labels(status="busy", destination_type="extension").inc()
    not_ready: dict[str, str] = {}

    async def ready() -> dict[str, str]:
        return not_ready

    port = _free_port()
    app = build_app(metrics, "s3cret", lambda: {"active_calls": 0}, ready)
    await nursery.start(serve_http, app, HostPort("127.0.0.1", port))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/healthz")).json() == {"status": "ok", "active_calls": 0}
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        not_ready["database"] = "not answering: connection refused"
        refused = await client.get("/readyz")
        assert refused.status_code == 503
        assert refused.json() == {
            "status": "not ready",
            "not_ready": {"database": "not answering: connection refused"},
        }
        for path in ("/metrics", "/nothing-here", "/healthz/"):
            assert (await client.get(path)).status_code == 401, path
        bad = {"Authorization": "Bearer nope"}
        assert (await client.get("/metrics", headers=bad)).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        body = (await client.get("/metrics", headers=good)).text
        assert 'voice_transfers_total{destination_type="extension",status="busy"} 1.0' in body
        # a bad token on a probe changes nothing: probes do not look at it
        assert (await client.get("/healthz", headers=bad)).status_code == 200


async def test_with_no_token_configured_only_the_probes_answer(nursery):
    port = _free_port()
    await nursery.start(serve_http, build_app(Metrics(), None), HostPort("127.0.0.1", port))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        guess = {"Authorization": "Bearer anything"}
        refused = await client.get("/metrics", headers=guess)
        assert refused.status_code == 503
        assert "VOICE_AI_SERVICE_TOKEN" in refused.json()["reason"]


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
        esl_port = (await sim.serve_inbound())[0].socket.getsockname()[1]
        http_port = _free_port()
        settings = load_settings(
            {
                "ESL_HOST": f"127.0.0.1:{esl_port}",
                "DATABASE_URL": db_url,
                "REALTIME_URL": model_url,
                "OPENAI_API_KEY": "k",
                "VOICE_AI_SERVICE_TOKEN": "s3cret",
                "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{http_port}",
                "CALLCONTROL_UNICAST_PORTS": unicast_ports(47000, 47099),
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
            health = await client.get("/healthz")
            assert health.json() == {"status": "ok", "active_calls": 1, "shutting_down": False}
            box = app.callbacks.client  # the callbacks' connection to the one box
            with trio.fail_after(10):
                while not box.connected:
                    await box.wait_changed()
            ready = (await client.get("/readyz")).json()
            assert ready == {"status": "ready", "freeswitch": {
                f"127.0.0.1:{esl_port}": {"connected": True, "since": ready["freeswitch"][
                    f"127.0.0.1:{esl_port}"]["since"]}}}  # fmt: skip
            app.shutting_down.set()  # SIGTERM: drains, the call in progress goes on
            draining = await client.get("/readyz")
            assert draining.status_code == 503
            assert draining.json()["not_ready"] == {
                "esl_listener": "shutting down: not taking new calls"
            }
            assert (await client.get("/healthz")).json()["shutting_down"] is True
        await call.hangup()
        with trio.fail_after(10):
            await call.wait_closed()
    rows = await db.fetch_all("SELECT outcome FROM callcontrol_calls")
    assert rows == [{"outcome": "caller_hangup"}]


class _TcpProxy:
    """Forwards connections to the test PostgreSQL until ``cut()``: then the open connections
    are closed and new ones refused, as when the database server goes away."""

    def __init__(self, target: HostPort) -> None:
        self.target = target
        self.cancel = trio.CancelScope()
        self.port = 0

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with self.cancel:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            self.port = listeners[0].socket.getsockname()[1]
            async with trio.open_nursery() as nursery:
                task_status.started()
                await trio.serve_listeners(self._pipe, listeners, handler_nursery=nursery)

    async def _pipe(self, client: trio.SocketStream) -> None:
        server = await trio.open_tcp_stream(self.target.host, self.target.port)

        async def copy(a: trio.SocketStream, b: trio.SocketStream) -> None:
            while data := await a.receive_some(65536):
                await b.send_all(data)
            nursery.cancel_scope.cancel()

        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(copy, client, server)
            nursery.start_soon(copy, server, client)

    def cut(self) -> None:
        self.cancel.cancel()


async def test_readyz_names_a_missing_key_and_a_database_that_stops_answering(db_url, nursery):
    parts = psycopg.conninfo.conninfo_to_dict(db_url)
    target = HostPort(str(parts.get("host") or "127.0.0.1"), int(parts.get("port") or 5432))
    proxy = _TcpProxy(target)
    await nursery.start(proxy.run)
    proxied = psycopg.conninfo.make_conninfo(db_url, host="127.0.0.1", port=str(proxy.port))
    http_port = _free_port()
    settings = load_settings(
        {
            "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "CALLCONTROL_UNICAST_PORTS": unicast_ports(47100, 47199),
        },
        database_url=proxied,  # a key=value DSN: the variable only takes URLs
    )
    app = App(settings=settings, ready_database_seconds=1.0)
    await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
        first = await client.get("/readyz")
        assert first.status_code == 503
        assert first.json()["not_ready"] == {
            "provider_key": "OPENAI_API_KEY is not set (REALTIME_PROVIDER=openai-realtime): "
            "every call takes the no-AI fallback path",
            # ESL_HOST is left at 127.0.0.1:8021, where nothing listens
            "freeswitch": "no FreeSWITCH box of ESL_HOST answers on its Event Socket: "
            "callbacks wait, click-to-call fails, every extension's status is UNKNOWN",
        }
        assert first.json()["freeswitch"]["127.0.0.1:8021"]["connected"] is False
        proxy.cut()
        second = (await client.get("/readyz")).json()["not_ready"]
        assert set(second) == {"provider_key", "database", "freeswitch"}
        assert second["database"].startswith(("not answering", "no answer to SELECT 1"))
        assert (await client.get("/healthz")).status_code == 200
    app.shutting_down.set()
