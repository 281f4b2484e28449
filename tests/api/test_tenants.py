"""What a signed-in person sees: their own domain only (another's tickets do not exist for them,
even by id), and for an agent only the tickets of their own extensions; a supervisor sees the
whole domain. Over HTTP, with users written into v_users as FusionPBX does."""

from __future__ import annotations

import pytest

from callcontrol.testing.database import StockPBX
from callcontrol.testing.fusionpbx_users import add_user
from tests.api.conftest import AUTH, add_ticket
from tests.api.people import browser_on, sign_in

BOTH_PBX = [StockPBX("5.5.7"), StockPBX("5.4.4")]


@pytest.fixture
async def tickets(db, domains):
    """Domain A: one ticket each for 1001 and 1002; domain B: one for its 1001."""
    (a, _), (b, _) = domains
    return {
        "a1001": await add_ticket(db, a, extension="1001"),
        "a1002": await add_ticket(db, a, extension="1002"),
        "b1001": await add_ticket(db, b, extension="1001"),
    }


def ids(page) -> set[str]:
    assert page.status_code == 200, page.text
    return {item["id"] for item in page.json()["items"]}


@pytest.mark.parametrize("fusionpbx_schema", BOTH_PBX, ids=str)
async def test_a_user_of_another_domain_sees_none_of_its_tickets(db, app, domains, tickets):
    (a, _), (b, _) = domains
    await add_user(db, b, "bruno", "pw-bruno", group="admin", extensions=["1001"])
    async with browser_on(app) as c:
        csrf = await sign_in(c, "bruno", "pw-bruno")
        assert ids(await c.get("/api/callbacks")) == {tickets["b1001"]}
        assert ids(await c.get("/api/callbacks", params={"domain_uuid": str(b)})) == {
            tickets["b1001"]}
        assert (await c.get("/api/callbacks", params={"domain_uuid": str(a)})).status_code == 404
        theirs = tickets["a1001"]
        assert (await c.get(f"/api/callbacks/{theirs}")).status_code == 404
        assert (await c.get(f"/api/callbacks/{theirs}",
                            params={"domain_uuid": str(a)})).status_code == 404
        for action, body in (("snooze", {"minutes": 5}), ("cancel", {"reason": "x"}),
                             ("initiate", None)):  # fmt: skip
            refused = await c.post(f"/api/callbacks/{theirs}/{action}", json=body,
                                   headers={"X-CSRF-Token": csrf})  # fmt: skip
            assert refused.status_code == 404, action
        refused = await c.post("/api/callback/originate", json={"ticketUuid": theirs},
                               headers={"X-CSRF-Token": csrf})  # fmt: skip
        assert refused.status_code == 404
        report = await c.get("/api/callbacks/report.csv")
        assert theirs not in report.text and tickets["b1001"] in report.text
        assert (await c.get("/api/extension/status/1002")).status_code == 404  # A's only
    statuses = await db.fetch_all("SELECT status FROM callcontrol_callback_requests"
                                  " WHERE domain_uuid = %s", (a,))  # fmt: skip
    assert [r["status"] for r in statuses] == ["pending", "pending"]


async def test_a_supervisor_sees_every_ticket_of_the_domain(db, app, domains, tickets):
    (a, _), _ = domains
    await add_user(db, a, "sueli", "pw-sueli", group="admin")
    async with browser_on(app) as c:
        await sign_in(c, "sueli", "pw-sueli")
        assert ids(await c.get("/api/callbacks")) == {tickets["a1001"], tickets["a1002"]}
        assert (await c.get("/api/stats")).json()["domain_uuid"] == str(a)
        assert (await c.get(f"/api/callbacks/{tickets['a1002']}")).status_code == 200


async def test_an_agent_sees_and_acts_on_the_tickets_of_their_own_extensions_only(
        db, app, domains, tickets, switch, calls):  # fmt: skip
    (a, _), _ = domains
    await add_user(db, a, "ana", "pw-ana", extensions=["1002"])
    switch.registrations.append({"reg_user": "1001", "realm": "a.example.com"})
    switch.registrations.append({"reg_user": "1002", "realm": "a.example.com"})
    mine, other = tickets["a1002"], tickets["a1001"]
    async with browser_on(app) as c:
        csrf = {"X-CSRF-Token": await sign_in(c, "ana", "pw-ana")}
        assert ids(await c.get("/api/callbacks")) == {mine}
        assert ids(await c.get("/api/callbacks", params={"extension": "1001"})) == set()
        assert ids(await c.get("/api/callbacks", params={"extension": "1002"})) == {mine}
        report = await c.get("/api/callbacks/report.csv")
        assert mine in report.text and other not in report.text
        assert (await c.get(f"/api/callbacks/{mine}")).status_code == 200
        assert (await c.get(f"/api/callbacks/{other}")).status_code == 404
        for action, body in (("snooze", {"minutes": 5}), ("cancel", {"reason": "x"}),
                             ("initiate", None)):  # fmt: skip
            refused = await c.post(f"/api/callbacks/{other}/{action}", json=body, headers=csrf)
            assert refused.status_code == 404, action
        refused = await c.post("/api/callback/originate", json={"ticketUuid": other},
                               headers=csrf)  # fmt: skip
        assert refused.status_code == 404
        assert calls.tickets == []
        assert (await c.get("/api/extension/status/1001")).status_code == 404
        assert (await c.get("/api/extension/status/1002")).json()["status"] == "AVAILABLE"
        assert (await c.get("/api/stats")).status_code == 403
        started = await c.post(f"/api/callbacks/{mine}/initiate", headers=csrf)
        assert started.status_code == 202, started.text
        assert calls.tickets == [mine]
        snoozed = await c.post(f"/api/callbacks/{mine}/snooze", json={"minutes": 5},
                               headers=csrf)  # fmt: skip
        assert snoozed.status_code == 200 and snoozed.json()["scheduled_at"]
        cancelled = await c.post(f"/api/callbacks/{mine}/cancel", json={"reason": "resolvido"})
        assert cancelled.status_code == 403  # no CSRF token: nothing changed
    rows = await db.fetch_all("SELECT request_uuid::text AS id, status, scheduled_at"
                              " FROM callcontrol_callback_requests WHERE domain_uuid = %s",
                              (a,))  # fmt: skip
    by_id = {r["id"]: r for r in rows}
    assert by_id[other]["status"] == "pending" and by_id[other]["scheduled_at"] is None
    assert by_id[mine]["scheduled_at"] is not None and by_id[mine]["status"] != "canceled"
    history = await db.fetch_all("SELECT changed_by, reason FROM callcontrol_callback_history"
                                 " WHERE request_uuid = %s ORDER BY changed_at", (mine,))
    assert [(h["changed_by"], h["reason"]) for h in history][-1] == ("ana", "snoozed 5 min")


async def test_an_agent_without_extensions_sees_nothing(db, app, domains, tickets):
    (a, _), _ = domains
    await add_user(db, a, "novo", "pw-novo")
    async with browser_on(app) as c:
        await sign_in(c, "novo", "pw-novo")
        assert ids(await c.get("/api/callbacks")) == set()
        assert (await c.get(f"/api/callbacks/{tickets['a1001']}")).status_code == 404


async def test_the_service_still_names_its_domain(client, domains):
    for path in ("/api/callbacks", "/api/callbacks/report.csv", "/api/stats",
                 "/api/extension/status/1001"):  # fmt: skip
        refused = await client.get(path, headers=AUTH)
        assert refused.status_code == 400 and "domain_uuid" in refused.json()["reason"], path
