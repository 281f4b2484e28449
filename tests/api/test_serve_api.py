"""The API as ``callcontrol serve`` runs it: over real HTTP (hypercorn), on the server's database,
asking the (simulated) FreeSWITCH's inbound Event Socket for availability."""

from __future__ import annotations

import httpx
import trio

from callcontrol.config import HostPort, load_settings
from callcontrol.server import App, run_secretary_server
from callcontrol.testing.database import add_domain, add_extension
from callcontrol.testing.freeswitch import open_freeswitch_sim
from callcontrol.testing.fusionpbx_users import add_user
from tests.api.conftest import AUTH, TOKEN, add_ticket
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
            "CALLCONTROL_UNICAST_PORTS": "127.0.0.1:47200-47299",
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
            "CALLCONTROL_UNICAST_PORTS": f"127.0.0.1:{47300 + 100 * n}-{47399 + 100 * n}",
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
