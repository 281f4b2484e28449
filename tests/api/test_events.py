"""GET /api/events over real HTTP, as ``callcontrol serve`` runs it: the ticket the scanner
notifies arrives on its agent's stream and on no other domain's; a client that goes away
leaves nothing subscribed; a reconnecting client gets what it missed (Last-Event-ID)."""

from __future__ import annotations

import json
import uuid
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from starlette.requests import Request

from callcontrol.api.errors import ApiError
from callcontrol.api.events import watch_for
from callcontrol.api.principal import Principal, Role
from callcontrol.callbacks.events import Watch
from callcontrol.config import HostPort, load_settings
from callcontrol.server import App, run_secretary_server
from callcontrol.testing.database import add_destination, add_domain, add_extension
from callcontrol.testing.freeswitch import open_freeswitch_sim
from tests.api.conftest import AUTH, TOKEN, add_ticket
from tests.ports import unicast_ports
from tests.test_http_and_serve import _free_port

DOMAIN = "clinica.example.com"


class Stream:
    """A server-sent events client: one event (its fields) at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()

    async def next(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        async for line in self.lines:
            if not line:
                if fields:
                    return fields
                continue
            name, _, value = line.partition(":")
            fields[name or "comment"] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    async def ticket(self) -> tuple[str, dict[str, Any]]:
        """The next ``ticket`` event (id, data), passing heartbeats."""
        while True:
            found = await self.next()
            if found.get("event") == "ticket":
                return found["id"], json.loads(found["data"])
            assert "comment" in found or "retry" in found, found


@asynccontextmanager
async def events(client: httpx.AsyncClient, **query: str):
    headers = {"Last-Event-ID": query.pop("last_event_id")} if "last_event_id" in query else {}
    async with client.stream("GET", "/api/events", params=query, headers=headers) as reply:
        assert reply.status_code == 200, await reply.aread()
        assert reply.headers["content-type"].startswith("text/event-stream")
        stream = Stream(reply)
        assert await stream.next() == {"retry": "3000"}  # subscribed by now
        yield stream


async def test_the_notified_ticket_reaches_its_agent_and_no_other_domain(db, db_url, nursery):
    clinic = await add_domain(db, DOMAIN)
    other = await add_domain(db, "outra.example.com")
    for domain in (clinic, other):
        await add_extension(db, domain, "1001")
    suporte = await add_destination(db, clinic, "Suporte", "extension", "1001")
    ticket = await add_ticket(db, clinic, extension=None, destination_uuid=suporte)
    async with open_freeswitch_sim(domain=DOMAIN) as sim:
        esl_port = (await sim.serve_inbound())[0].socket.getsockname()[1]
        http_port = _free_port()
        app = App(settings=load_settings({
            "DATABASE_URL": db_url, "VOICE_AI_SERVICE_TOKEN": TOKEN, "OPENAI_API_KEY": "k",
            "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "CALLCONTROL_UNICAST_PORTS": unicast_ports(47300, 47399),
            "ESL_HOST": "127.0.0.1", "ESL_PORT": str(esl_port),
            "CALLBACK_CHECK_INTERVAL_MS": "3600000",
        }))  # fmt: skip
        await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
        hub = app.events.hub
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", headers=AUTH,
                                     timeout=None) as client:  # fmt: skip
            with trio.fail_after(20):
                await app.events.listening.wait()
                async with events(client, domain_uuid=str(clinic), extension="1001") as agent, \
                        events(client, domain_uuid=str(other)) as elsewhere:  # fmt: skip
                    sim.register("1001", DOMAIN)  # free: the scanner notifies at once
                    told_id, told = await agent.ticket()
                    assert (told["id"], told["change"], told["previous_status"],
                            told["status"], told["extension"], told["domain_uuid"],
                            told["caller_name"]) == (
                        ticket, "status", "pending", "notified", "1001", str(clinic),
                        "Maria Souza")  # fmt: skip
                    # the other domain's first event is its own, stored after the notice
                    theirs = await add_ticket(db, other)
                    _, first = await elsewhere.ticket()
                    assert first["id"] == theirs
                    assert hub.subscribers == 2
                    assert app.services.metrics.value("voice_console_streams") == 2
                while hub.subscribers:  # both clients went away: nothing is left subscribed
                    await hub.left.wait()

                # while nobody listens, the agent cancels it; back, the agent gets it
                canceled = await client.post(f"/api/callbacks/{ticket}/cancel",
                                             params={"domain_uuid": str(clinic)},
                                             json={"reason": "resolvido"})  # fmt: skip
                assert canceled.status_code == 200
                async with events(client, domain_uuid=str(clinic),
                                  last_event_id=told_id) as back:  # fmt: skip
                    _, missed = await back.ticket()
                    assert (missed["id"], missed["status"]) == (ticket, "canceled")

            for query, status in (({}, 400), ({"domain_uuid": "x"}, 400),
                                  ({"domain_uuid": str(clinic), "extension": "1 OR 1"}, 400)):
                refused = await client.get("/api/events", params=query)
                assert refused.status_code == status and refused.json()["reason"], query
            anonymous = await client.get("/api/events", params={"domain_uuid": str(clinic)},
                                         headers={"Authorization": ""})  # fmt: skip
            assert anonymous.status_code == 401
        app.shutting_down.set()


async def test_serve_stops_on_sigterm_with_a_console_still_listening(db, db_url):
    """An open stream does not hold serve up: the drain ends it, and serve returns."""
    domain = await add_domain(db, DOMAIN)
    http_port = _free_port()
    app = App(settings=load_settings({
        "DATABASE_URL": db_url, "VOICE_AI_SERVICE_TOKEN": TOKEN, "CALLBACK_ENABLED": "false",
        "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{http_port}",
        "CALLCONTROL_UNICAST_PORTS": unicast_ports(47300, 47399),
    }))  # fmt: skip
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}",
                                         headers=AUTH, timeout=None) as client, \
                    events(client, domain_uuid=str(domain)) as listening:  # fmt: skip
                app.shutting_down.set()  # what SIGTERM does
                with pytest.raises((AssertionError, httpx.HTTPError)):
                    await listening.next()  # the stream ends (closed, or cut)
    assert app.events.hub.subscribers == 0


def _request(principal: Principal, query: str = "") -> Request:
    return Request({"type": "http", "method": "GET", "path": "/api/events", "headers": [],
                    "query_string": query.encode(), "state": {"principal": principal}})


def test_a_person_is_shown_only_their_domain_and_an_agent_only_their_extensions():
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    agent = Principal(Role.AGENT, mine, extensions=("1001", "1002"))
    supervisor = Principal(Role.SUPERVISOR, mine)
    assert watch_for(_request(agent)) == Watch(mine, frozenset({"1001", "1002"}))
    assert watch_for(_request(agent, "extension=1002")) == Watch(mine, frozenset({"1002"}))
    # another's extension narrows an agent's stream to nothing, never widens it
    assert watch_for(_request(agent, "extension=1003")) == Watch(mine, frozenset())
    assert watch_for(_request(supervisor)) == Watch(mine, None)
    with pytest.raises(ApiError) as other_domain:
        watch_for(_request(supervisor, f"domain_uuid={theirs}"))
    assert other_domain.value.status == 404
