"""GET /api/extension/status/{extension}?domain_uuid=: the scanner's answer for one agent, by
domain, with the reason; bad input is a 400 with a reason; every answer is counted; with
several FreeSWITCH boxes, each domain from its box."""

from __future__ import annotations

import httpx
import trio

from callcontrol.config import HostPort, load_settings
from callcontrol.server import App, run_secretary_server
from callcontrol.testing.database import add_domain, add_extension, set_do_not_disturb
from callcontrol.testing.freeswitch import esl_hosts, open_freeswitch_sims
from tests.api.conftest import AUTH, TOKEN
from tests.ports import unicast_ports
from tests.test_http_and_serve import _free_port


async def status(client, extension, domain):
    return await client.get(f"/api/extension/status/{extension}",
                            params={"domain_uuid": str(domain)}, headers=AUTH)  # fmt: skip


async def test_each_status_with_its_reason(client, db, domains, switch, metrics):
    (a, a_name), (b, _) = domains
    reply = await status(client, "1001", a)
    assert reply.status_code == 200
    assert reply.json() == {"extension": "1001", "status": "OFFLINE", "available": False,
                            "reason": "not registered: no phone is signed in to this extension"}
    switch.registrations = [{"reg_user": "1001", "realm": a_name},
                            {"reg_user": "1002", "realm": a_name}]  # fmt: skip
    assert (await status(client, "1001", a)).json()["status"] == "AVAILABLE"
    assert (await status(client, "1001", a)).json()["available"] is True
    # the same extension number in the other domain is another phone: still offline
    assert (await status(client, "1001", b)).json()["status"] == "OFFLINE"
    switch.channels = [{"presence_id": f"1001@{a_name}", "callstate": "ACTIVE"},
                       {"presence_id": f"1002@{a_name}", "callstate": "RINGING"}]  # fmt: skip
    assert (await status(client, "1001", a)).json()["status"] == "IN_CALL"
    assert (await status(client, "1002", a)).json()["status"] == "RINGING"
    await set_do_not_disturb(db, a, "1001", True)
    dnd = (await status(client, "1001", a)).json()
    assert dnd == {"extension": "1001", "status": "DND", "available": False,
                   "reason": "do not disturb is on (FusionPBX)"}
    switch.down = True
    unknown = (await status(client, "1002", a)).json()
    assert unknown["status"] == "UNKNOWN" and unknown["available"] is False
    await db.execute("UPDATE v_extensions SET enabled = 'false' WHERE extension = '1002'")
    disabled = (await status(client, "1002", a)).json()
    assert disabled["status"] == "OFFLINE"
    assert disabled["reason"] == "the extension is disabled in FusionPBX"
    assert metrics.value("voice_extension_status_requests_total", status="OFFLINE") == 3
    assert metrics.value("voice_extension_status_requests_total", status="AVAILABLE") == 2
    assert metrics.value("voice_extension_status_requests_total", status="DND") == 1


async def test_dnd_kept_in_the_dial_string_is_reported_as_dnd(client, db, domains, switch):
    (a, a_name), _ = domains
    await db.execute("UPDATE v_extensions SET dial_string = 'error/user_busy'"
                     " WHERE domain_uuid = %s AND extension = '1001'", (a,))  # fmt: skip
    switch.registrations = [{"reg_user": "1001", "realm": a_name}]
    assert (await status(client, "1001", a)).json()["status"] == "DND"


async def test_unknown_extension_or_domain_and_bad_input_say_why(client, domains, metrics):
    (a, _), _ = domains
    missing = await status(client, "1003", a)
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found",
                              "reason": "domain a.example.com has no extension 1003"}
    nobody = await status(client, "1001", "00000000-0000-4000-8000-000000000000")
    assert nobody.status_code == 404
    assert "domain" in nobody.json()["reason"]
    for extension in ("10 01", "1001;drop", "%00", "-1", "x" * 40, "1001@b.example.com"):
        bad = await status(client, extension, a)
        assert bad.status_code in (400, 404), extension
        assert bad.json()["reason"], extension
    for domain in ("", "nope", "1" * 100, "'; select 1"):
        bad = await client.get("/api/extension/status/1001", params={"domain_uuid": domain},
                               headers=AUTH)  # fmt: skip
        assert bad.status_code == 400
        assert "domain_uuid" in bad.json()["reason"]
    assert metrics.value("voice_extension_status_requests_total", status="bad_request") >= 4
    assert metrics.value("voice_extension_status_requests_total", status="not_found") == 2


async def test_inside_serve_two_boxes_each_domain_from_its_box_and_a_box_down(db, db_url):
    """serve's own connections, one per box of ESL_HOST, over real HTTP and real sockets."""
    clinic, shop = await add_domain(db, "clinica.example.com"), await add_domain(
        db, "loja.example.com")
    for domain in (clinic, shop):
        await add_extension(db, domain, "1001")
        await add_extension(db, domain, "1002")
    async with open_freeswitch_sims(2) as (fs1, fs2):
        fs1.register("1001", "clinica.example.com")
        fs2.register("1001", "loja.example.com")
        http_port = _free_port()
        settings = load_settings({
            "DATABASE_URL": db_url, "VOICE_AI_SERVICE_TOKEN": TOKEN,
            "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "CALLCONTROL_UNICAST_PORTS": unicast_ports(47400, 47499),
            "CALLBACK_ENABLED": "false", "ESL_HOST": esl_hosts([fs1, fs2]),
        })  # fmt: skip
        app = App(settings=settings)
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}",
                                             headers=AUTH) as client:  # fmt: skip

                    answers = {(e, d): (await status(client, e, d)).json()["status"]
                               for e in ("1001", "1002") for d in (clinic, shop)}
                    assert answers == {("1001", clinic): "AVAILABLE",
                                       ("1002", clinic): "OFFLINE",
                                       ("1001", shop): "AVAILABLE",
                                       ("1002", shop): "OFFLINE"}  # fmt: skip
                    box2 = app.api_boxes.clients[app.api_boxes.names[1]]
                    fs2.stop_inbound()  # the shop's box goes down
                    while box2.connected:
                        await box2.wait_changed()
                    answers = {(e, d): (await status(client, e, d)).json()["status"]
                               for e in ("1001", "1002") for d in (clinic, shop)}
                    assert answers == {("1001", clinic): "AVAILABLE",  # box 1 answers
                                       ("1002", clinic): "OFFLINE",
                                       ("1001", shop): "UNKNOWN",  # could be on box 2
                                       ("1002", shop): "UNKNOWN"}  # fmt: skip
                app.shutting_down.set()
