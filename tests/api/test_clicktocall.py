"""Click-to-call over the API: ``POST /api/callbacks/{id}/initiate`` and
``POST /api/callback/originate``. The refusals on the app with a fixed FreeSWITCH snapshot
(nothing written, nothing handed over); the call itself inside ``callcontrol serve`` against the
simulated FreeSWITCH, over real HTTP."""

from __future__ import annotations

import httpx
import pytest
import trio

from callcontrol.api.http import build_app
from callcontrol.callbacks.tickets import MoveRefused, TicketStatus
from callcontrol.config import HostPort, load_settings
from callcontrol.metrics import Metrics
from callcontrol.server import App, run_secretary_server
from callcontrol.testing.database import add_domain, add_extension
from callcontrol.testing.freeswitch import Manual, open_freeswitch_sim
from tests.api.conftest import AUTH, TOKEN, add_ticket
from tests.ports import unicast_ports
from tests.test_http_and_serve import _free_port


def _registered(switch, ext: str = "1001", realm: str = "a.example.com") -> None:
    switch.registrations.append({"reg_user": ext, "realm": realm})


async def _row(db, ticket: str) -> tuple:
    return await db.fetch_one("SELECT status, attempts, scheduled_at, updated_at"
                              " FROM callcontrol_callback_requests WHERE request_uuid = %s",
                              (ticket,))  # fmt: skip


def _initiate(ticket: str, domain) -> tuple[str, dict]:
    return f"/api/callbacks/{ticket}/initiate", {"domain_uuid": str(domain)}


async def test_an_available_agent_is_called_at_once_with_the_leg_uuid(client, db, domains,
                                                                      switch, calls):  # fmt: skip
    (a, _), _ = domains
    _registered(switch)
    ticket = await add_ticket(db, a)
    url, query = _initiate(ticket, a)
    reply = await client.post(url, params=query, headers=AUTH)
    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert body["ticketUuid"] == ticket and body["status"] == "in_progress"
    assert len(body["agentLegUuid"]) == 36
    assert calls.tickets == [ticket]


async def test_originate_takes_the_ticket_in_its_body(client, db, domains, switch, calls):
    (a, _), _ = domains
    _registered(switch)
    ticket = await add_ticket(db, a, status="ready_to_call")
    reply = await client.post("/api/callback/originate", params={"domain_uuid": str(a)},
                              json={"ticketUuid": ticket}, headers=AUTH)  # fmt: skip
    assert reply.status_code == 202, reply.text
    assert reply.json()["ticketUuid"] == ticket
    assert calls.tickets == [ticket]
    again = await client.post("/api/callback/originate", params={"domain_uuid": str(a)},
                              json={"ticketUuid": ticket}, headers=AUTH)  # fmt: skip
    assert (again.status_code, again.json()["error"]) == (409, "already_calling")
    missing = await client.post("/api/callback/originate", params={"domain_uuid": str(a)},
                                json={}, headers=AUTH)  # fmt: skip
    assert missing.status_code == 400 and "ticketUuid" in missing.json()["reason"]


@pytest.mark.parametrize(("channel", "what"), [("ACTIVE", "in_call"), ("RINGING", "ringing")])
async def test_a_busy_agent_is_user_busy_with_when_to_retry(db, domains, switch, calls,
                                                            channel, what):  # fmt: skip
    (a, _), _ = domains
    _registered(switch)
    switch.channels.append({"presence_id": "1001@a.example.com", "callstate": channel})
    ticket = await add_ticket(db, a)
    before = await _row(db, ticket)
    app = build_app(Metrics(), TOKEN, db=db, availability=switch, calls=calls,
                    retry_delay_seconds=90)  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as client:  # fmt: skip
        url, query = _initiate(ticket, a)
        reply = await client.post(url, params=query, headers=AUTH)
    assert reply.status_code == 409
    body = reply.json()
    assert (body["error"], body["shouldRetry"], body["retryAfterSeconds"]) == (
        "USER_BUSY", True, 90)
    assert body["extensionState"] == what  # the console tells a ringing phone from a call
    assert what.replace("_", " ") in body["reason"]
    assert calls.tickets == [] and await _row(db, ticket) == before


async def test_offline_dnd_and_freeswitch_down_are_refused_by_name(client, db, domains, switch,
                                                                   calls):  # fmt: skip
    (a, _), _ = domains
    ticket = await add_ticket(db, a)
    await add_extension(db, a, "1003", do_not_disturb=True)
    dnd_ticket = await add_ticket(db, a, extension="1003")
    _registered(switch, "1003")
    before = await _row(db, ticket)

    async def refused(ident: str) -> tuple[int, str, bool]:
        url, query = _initiate(ident, a)
        reply = await client.post(url, params=query, headers=AUTH)
        return reply.status_code, reply.json()["error"], reply.json()["shouldRetry"]

    assert await refused(ticket) == (409, "OFFLINE", False)
    assert await refused(dnd_ticket) == (409, "DND", False)
    switch.down = True  # FreeSWITCH not answering: never taken as available
    _registered(switch)
    assert await refused(ticket) == (503, "UNKNOWN", True)
    assert calls.tickets == [] and await _row(db, ticket) == before


@pytest.mark.parametrize("status", ["completed", "canceled", "expired", "failed", "in_progress"])
async def test_a_ticket_not_callable_in_its_status_is_409(client, db, domains, switch, calls,
                                                          status):  # fmt: skip
    (a, _), _ = domains
    _registered(switch)
    ticket = await add_ticket(db, a, status=status)
    url, query = _initiate(ticket, a)
    reply = await client.post(url, params=query, headers=AUTH)
    assert (reply.status_code, reply.json()["error"]) == (409, "illegal_move")
    assert status in reply.json()["reason"]
    assert calls.tickets == []


async def test_a_message_or_a_queue_ticket_is_not_callable(client, db, domains, switch, calls):
    (a, _), _ = domains
    _registered(switch)
    for ticket in (await add_ticket(db, a, kind="message"), await add_ticket(db, a,
                                                                            extension=None)):
        url, query = _initiate(ticket, a)
        reply = await client.post(url, params=query, headers=AUTH)
        assert (reply.status_code, reply.json()["error"]) == (409, "not_callable"), reply.text
    assert calls.tickets == []


async def test_another_domains_ticket_is_404_and_no_token_is_401(client, db, domains, switch,
                                                                 calls):  # fmt: skip
    (a, _), (b, _) = domains
    _registered(switch)
    _registered(switch, realm="b.example.com")
    theirs = await add_ticket(db, b)
    url, query = _initiate(theirs, a)
    assert (await client.post(url, params=query, headers=AUTH)).status_code == 404
    url, query = _initiate(theirs, b)
    assert (await client.post(url, params=query)).status_code == 401
    wrong = await client.post(url, params=query, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    no_token = await client.post("/api/callback/originate", params=query,
                                 json={"ticketUuid": theirs})  # fmt: skip
    assert no_token.status_code == 401
    assert calls.tickets == []


async def test_no_click_to_call_running_is_503(db, domains, switch):
    (a, _), _ = domains
    _registered(switch)
    ticket = await add_ticket(db, a)
    app = build_app(Metrics(), TOKEN, db=db, availability=switch)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as client:  # fmt: skip
        url, query = _initiate(ticket, a)
        reply = await client.post(url, params=query, headers=AUTH)
    assert (reply.status_code, reply.json()["error"]) == (503, "click_to_call_unavailable")


async def test_a_race_lost_at_the_claim_is_refused_not_202(db, domains, switch):
    (a, _), _ = domains
    _registered(switch)
    ticket = await add_ticket(db, a)

    class TakenMeanwhile:  # the scanner claimed it between the check and the hand-over
        async def initiate(self, request_uuid: str) -> str | None:
            raise MoveRefused(request_uuid, "in_progress", TicketStatus.IN_PROGRESS)

    app = build_app(Metrics(), TOKEN, db=db, availability=switch, calls=TakenMeanwhile())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as client:  # fmt: skip
        url, query = _initiate(ticket, a)
        reply = await client.post(url, params=query, headers=AUTH)
    assert (reply.status_code, reply.json()["error"]) == (409, "illegal_move")
    assert "in_progress" in reply.json()["reason"]


async def test_an_agent_whose_box_went_away_meanwhile_is_offline_or_unknown(db, domains,
                                                                           switch):
    """Several boxes: the starter finds no box with the agent registered (it moved, its box
    went down) after the API's check: the same typed refusal as if seen before."""
    from callcontrol.callbacks.availability import Availability
    from callcontrol.callbacks.clicktocall import NoBox

    (a, _), _ = domains
    _registered(switch)
    ticket = await add_ticket(db, a)
    answers = []
    for now in (Availability.OFFLINE, Availability.UNKNOWN):
        class NoBoxNow:
            async def initiate(self, request_uuid: str, now=now) -> str | None:
                raise NoBox(request_uuid, "1001", now)

        app = build_app(Metrics(), TOKEN, db=db, availability=switch, calls=NoBoxNow())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api") as client:  # fmt: skip
            url, query = _initiate(ticket, a)
            reply = await client.post(url, params=query, headers=AUTH)
        answers.append((reply.status_code, reply.json()["error"]))
    assert answers == [(409, "OFFLINE"), (503, "UNKNOWN")]
    row = await _row(db, ticket)
    assert (row["status"], row["attempts"]) == ("pending", 0)  # nothing claimed


# -- inside serve, against the simulated FreeSWITCH ---------------------------------------

DOMAIN = "pbx.example.com"


def _serve_settings(db_url: str, esl_port: int, http_port: int):
    return load_settings({
        "DATABASE_URL": db_url, "VOICE_AI_SERVICE_TOKEN": TOKEN,
        "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{http_port}",
        "CALLCONTROL_UNICAST_PORTS": unicast_ports(47300, 47399),
        "CALLBACK_CHECK_INTERVAL_MS": "3600000", "CALLBACK_RETRY_DELAY_SECONDS": "45",
        "ESL_HOST": "127.0.0.1", "ESL_PORT": str(esl_port),
    })  # fmt: skip


async def test_inside_serve_initiate_rings_the_agent_with_the_promised_leg(db, db_url):
    domain = await add_domain(db, DOMAIN)
    await add_extension(db, domain, "1001")
    ticket = await add_ticket(db, domain)
    async with open_freeswitch_sim(domain=DOMAIN) as sim:
        sim.endpoints[f"user/1001@{DOMAIN}"] = Manual()  # rings until told
        sim.register("1001", DOMAIN)
        esl_port = (await sim.serve_inbound())[0].socket.getsockname()[1]
        http_port = _free_port()
        app = App(settings=_serve_settings(db_url, esl_port, http_port))
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}",
                                             headers=AUTH) as client:  # fmt: skip
                    reply = await client.post(f"/api/callbacks/{ticket}/initiate",
                                              params={"domain_uuid": str(domain)})  # fmt: skip
                    assert reply.status_code == 202, reply.text
                    leg_uuid = reply.json()["agentLegUuid"]
                    # answered once claimed: a client reading it now sees it being called
                    assert await db.fetch_value(
                        "SELECT status FROM callcontrol_callback_requests"
                        " WHERE request_uuid = %s", (ticket,)) == "in_progress"
                    await sim.wait_for(lambda: any(leg.uuid == leg_uuid
                                                   for leg in sim.legs()))  # fmt: skip
                    agent = sim.leg(leg_uuid)
                    assert agent.channel.name.startswith(f"sofia/internal/1001@{DOMAIN}")
                    assert agent.variables["callcontrol_ticket"] == ticket
                    assert agent.variables["callcontrol_leg"] == "agent"
                    assert await db.fetch_value(
                        "SELECT status FROM callcontrol_callback_requests"
                        " WHERE request_uuid = %s", (ticket,)) == "in_progress"
                    # a second click while it rings: refused, nobody rung twice
                    again = await client.post(f"/api/callbacks/{ticket}/initiate",
                                              params={"domain_uuid": str(domain)})  # fmt: skip
                    assert again.status_code == 409
                    assert again.json()["error"] in ("already_calling", "illegal_move")
                app.shutting_down.set()
        assert len(sim.legs("sofia/internal/1001@")) == 1
