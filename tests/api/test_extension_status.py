"""GET /api/extension/status/{extension}?domain_uuid=: the scanner's answer for one agent, by
domain, with the reason; bad input is a 400 with a reason; every answer is counted."""

from __future__ import annotations

from callcontrol.testing.database import set_do_not_disturb
from tests.api.conftest import AUTH


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
