"""The API as ``callcontrol serve`` runs it: over real HTTP (hypercorn), on the server's database,
asking the (simulated) FreeSWITCH's inbound Event Socket for availability."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
import trio

from callcontrol.config import HostPort, load_settings
from callcontrol.server import App, run_secretary_server, watched_boxes
from callcontrol.testing.database import add_domain, add_extension
from callcontrol.testing.freeswitch import esl_hosts, open_freeswitch_sim, open_freeswitch_sims
from callcontrol.testing.fusionpbx_users import add_user
from tests.api.conftest import AUTH, TOKEN, add_ticket
from tests.ports import unicast_ports
from tests.test_http_and_serve import _free_port


async def test_serve_answers_status_callbacks_stats_and_openapi_over_http(db, db_url, nursery):
    domain = await add_domain(db, "pbx.example.com")
    await add_extension(db, domain, "1001")
    ticket = await add_ticket(db, domain)
    async with open_freeswitch_sim(domain="pbx.example.com") as sim:
        esl_port = (await sim.serve_inbound())[0].socket.getsockname()[1]
        http_port = _free_port()
        settings = load_settings({
            "DATABASE_URL": db_url, "VOICE_AI_SERVICE_TOKEN": TOKEN,
            "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "CALLCONTROL_UNICAST_PORTS": unicast_ports(47200, 47299),
            "ESL_HOST": "127.0.0.1", "ESL_PORT": str(esl_port),
        })  # fmt: skip
        app = App(settings=settings)
        await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}",
                                     headers=AUTH) as client:  # fmt: skip
            url = f"/api/extension/status/1001?domain_uuid={domain}"
            with trio.fail_after(10):
                assert (await client.get(url)).json()["status"] == "OFFLINE"
                sim.register("1001", "pbx.example.com")
                # the monitor reads again once the registration event reached it
                while (await client.get(url)).json()["status"] != "AVAILABLE":
                    pass
            listed = (await client.get(f"/api/callbacks?domain_uuid={domain}")).json()
            assert [item["id"] for item in listed["items"]] == [ticket]
            canceled = await client.post(f"/api/callbacks/{ticket}/cancel?domain_uuid={domain}",
                                         json={"reason": "cliente ligou de volta"})  # fmt: skip
            assert canceled.json()["status"] == "canceled"
            stats = (await client.get(f"/api/stats?domain_uuid={domain}")).json()
            assert stats["callbacks"]["by_status"]["canceled"] == 1
            document = await client.get("/openapi.json")
            assert document.json()["openapi"] == "3.1.0"
            assert "/api/stats" in document.json()["paths"]
            refused = await client.get("/api/callbacks/", headers={"Authorization": "x"})
            assert refused.status_code == 401
            slash = await client.get("/api/callbacks/")
            assert slash.status_code == 404 and slash.json()["error"] == "not_found"
            metrics = (await client.get("/metrics")).text
            assert 'voice_extension_status_requests_total{status="AVAILABLE"} 1.0' in metrics
        app.shutting_down.set()


async def test_serve_signs_people_in_over_http_with_the_secret_derived_from_the_token(
        db, db_url, nursery):  # fmt: skip
    """No CALLCONTROL_SESSION_SECRET: the secret comes from the service token, so a second
    serve of the same configuration (a restart, another worker) takes the same cookie."""
    domain = await add_domain(db, "pbx.example.com")
    await add_extension(db, domain, "1001")
    await add_extension(db, domain, "1002")
    mine = await add_ticket(db, domain, extension="1001")
    await add_ticket(db, domain, extension="1002")
    await add_user(db, domain, "ana", "pw-de-ana", extensions=["1001"])
    ports = [_free_port(), _free_port()]
    apps = []
    for n, port in enumerate(ports):
        settings = load_settings({
            "DATABASE_URL": db_url, "VOICE_AI_SERVICE_TOKEN": TOKEN,
            "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{port}", "CALLBACK_ENABLED": "false",
            "CALLCONTROL_UNICAST_PORTS": unicast_ports(47300 + 100 * n, 47399 + 100 * n),
        })  # fmt: skip
        apps.append(App(settings=settings))
        await nursery.start(run_secretary_server, apps[-1], HostPort("127.0.0.1", 0))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}") as first:
        signed = await first.post("/login", data={"username": "ana", "password": "pw-de-ana"})
        assert signed.status_code == 303 and signed.headers["location"] == "/console"
        cookie = signed.cookies["callcontrol_session"]
        assert "httponly" in signed.headers["set-cookie"].lower()
        me = (await first.get("/api/me")).json()
        assert (me["username"], me["role"], me["extensions"]) == ("ana", "agent", ["1001"])
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[1]}",
                                 cookies={"callcontrol_session": cookie}) as second:
        listed = (await second.get("/api/callbacks")).json()
        assert [item["id"] for item in listed["items"]] == [mine]
    for app in apps:
        app.shutting_down.set()


@pytest.mark.parametrize("callbacks", ["true", "false"], ids=["callbacks", "no-callbacks"])
async def test_readyz_lists_each_box_and_is_ready_while_one_answers(db_url, nursery, callbacks):
    """With callbacks on, /readyz reports their connections (always open); off, the API's own
    for extension status, which the probe opens."""
    async with open_freeswitch_sims(2) as (fs1, fs2):
        http_port = _free_port()
        settings = load_settings({
            "DATABASE_URL": db_url, "VOICE_AI_SERVICE_TOKEN": TOKEN, "OPENAI_API_KEY": "k",
            "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "CALLCONTROL_UNICAST_PORTS": unicast_ports(47500, 47599),
            "CALLBACK_ENABLED": callbacks, "ESL_HOST": esl_hosts([fs1, fs2]),
        })  # fmt: skip
        one, two = (box.name for box in settings.esl_boxes)
        app = App(settings=settings)
        await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))

        async def readyz_once(client, want):
            """/readyz once the boxes' connections are as ``want`` says (box -> connected)."""
            with trio.fail_after(20):
                while True:
                    boxes = watched_boxes(app)
                    clients = boxes.clients if boxes is not None else {}
                    changes = [c.changed for c in clients.values()]
                    if {name: c.connected for name, c in clients.items()} == want:
                        return await client.get("/readyz")
                    if not clients:  # not yet started: the probe opens the API's own
                        await client.get("/readyz")
                        continue
                    async with trio.open_nursery() as first:
                        for change in changes:
                            first.start_soon(_set_then_cancel, change, first.cancel_scope)

        def connected(answer):
            return {name: box["connected"] for name, box in answer.json()["freeswitch"].items()}

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
            both = await readyz_once(client, {one: True, two: True})
            assert both.status_code == 200 and both.json()["status"] == "ready"
            up_since = datetime.fromisoformat(both.json()["freeswitch"][two]["since"])
            fs2.stop_inbound()
            half = await readyz_once(client, {one: True, two: False})
            # the other box keeps serving its calls and callbacks: still ready, the box named
            assert half.status_code == 200, half.json()
            assert connected(half) == {one: True, two: False}
            assert datetime.fromisoformat(half.json()["freeswitch"][two]["since"]) >= up_since
            fs1.stop_inbound()
            none = await readyz_once(client, {one: False, two: False})
            assert none.status_code == 503
            assert set(none.json()["not_ready"]) == {"freeswitch"}
            assert "no FreeSWITCH box" in none.json()["not_ready"]["freeswitch"]
            await fs2.serve_inbound(port=fs2.inbound_ports[0])
            back = await readyz_once(client, {one: False, two: True})
            assert back.status_code == 200 and connected(back) == {one: False, two: True}
        assert (watched_boxes(app) is getattr(app.callbacks, "boxes", None)) == (
            callbacks == "true")
        app.shutting_down.set()


async def _set_then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
