"""The callbacks inside ``callcontrol serve`` (``run_secretary_server``): real PostgreSQL, the
simulated FreeSWITCH's inbound Event Socket, real sockets and the real clock, waited on events
(the check interval is an hour, so only FreeSWITCH's event can explain what happens at once)."""

from __future__ import annotations

import socket

import structlog
import trio

from callcontrol.callbacks.requests import CallbackRequest, save_request
from callcontrol.callbacks.service import keep_running
from callcontrol.callbacks.tickets import history
from callcontrol.config import HostPort, load_settings
from callcontrol.server import App, run_secretary_server
from callcontrol.testing.database import add_destination, add_domain, add_extension
from callcontrol.testing.freeswitch import Answer, Manual, open_freeswitch_sim
from tests.ports import unicast_ports

DOMAIN = "clinica.example.com"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _ticket(db) -> str:
    domain = await add_domain(db, DOMAIN)
    await add_extension(db, domain, "1001")
    suporte = await add_destination(db, domain, "Suporte", "extension", "1001")
    saved = await save_request(
        db,
        CallbackRequest(
            "callback",
            "+5511988887777",
            caller_name="Maria",
            reason="resultado do exame",
            domain_uuid=str(domain),
            destination_uuid=str(suporte),
            destination_name="Suporte",
        ),
    )
    return saved.request_uuid


def _settings(db_url: str, esl_port: int, **more: str):
    return load_settings({
        "DATABASE_URL": db_url, "OPENAI_API_KEY": "k",
        "ESL_HOST": "127.0.0.1", "ESL_PORT": str(esl_port),
        "CALLCONTROL_HTTP_LISTEN": f"127.0.0.1:{_free_port()}",
        "CALLCONTROL_UNICAST_PORTS": unicast_ports(47100, 47199),
        "CALLBACK_CHECK_INTERVAL_MS": "3600000", **more,
    })  # fmt: skip


async def _status(db, ticket: str) -> str:
    return await db.fetch_value("SELECT status FROM callcontrol_callback_requests"
                                " WHERE request_uuid = %s", (ticket,))  # fmt: skip


async def test_inside_serve_an_agent_who_registers_is_told_at_once(db, db_url):
    ticket = await _ticket(db)
    async with open_freeswitch_sim(domain=DOMAIN) as sim:
        esl_port = (await sim.serve_inbound())[0].socket.getsockname()[1]
        app = App(settings=_settings(db_url, esl_port))
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
                scanner = app.callbacks.scanner
                while scanner.scans < 1:  # the first scan, at start: 1001 is not registered
                    await scanner.scanned.wait()
                assert await _status(db, ticket) == "pending"
                assert app.callbacks.client.connected
                started = trio.current_time()
                sim.register("1001", DOMAIN)
                while await _status(db, ticket) == "pending":
                    await scanner.scanned.wait()
                told_after = trio.current_time() - started
                app.shutting_down.set()  # SIGTERM: serve drains and stops, the scanner with it
    assert told_after < 5  # at once, not at the next interval (an hour)
    assert await _status(db, ticket) == "notified"
    last = (await history(db, ticket))[-1]
    assert (last["to_status"], last["changed_by"]) == ("notified", "scanner")
    assert app.services.metrics.value("voice_callbacks_total", status="notified") == 1


async def test_a_scan_that_fails_is_logged_and_serve_goes_on(db, db_url):
    ticket = await _ticket(db)
    async with open_freeswitch_sim(domain=DOMAIN) as sim:
        esl_port = (await sim.serve_inbound())[0].socket.getsockname()[1]
        app = App(settings=_settings(db_url, esl_port))
        with structlog.testing.capture_logs() as logs, trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
                scanner = app.callbacks.scanner
                while scanner.scans < 1:
                    await scanner.scanned.wait()

                async def broken(*_args: object, **_kw: object) -> None:
                    raise RuntimeError("a bug in a scan")

                scanner.snapshot_of = broken
                sim.register("1001", DOMAIN)  # wakes the scanner: this scan raises
                while scanner.failed_scans == 0:
                    await scanner.scanned.wait()
                assert app.listening  # still taking calls
                assert await _status(db, ticket) == "pending"
                scanner.snapshot_of = app.callbacks.boxes.snapshot
                sim.register("1001", DOMAIN)  # the next event: this scan tells the agent
                while await _status(db, ticket) == "pending":
                    await scanner.scanned.wait()
                app.shutting_down.set()
    failures = [e for e in logs if e["event"] == "callbacks.scan_failed"]
    assert failures and failures[0]["error"] == "RuntimeError('a bug in a scan')"
    assert app.services.metrics.value("voice_callback_scans_total", result="failed") >= 1


async def test_no_scanner_when_callbacks_are_disabled(db_url):
    app = App(settings=_settings(db_url, _free_port(), CALLBACK_ENABLED="false"))
    with structlog.testing.capture_logs() as logs, trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
            app.shutting_down.set()
    assert app.callbacks is None
    assert {"event": "callbacks.not_started", "reason": "CALLBACK_ENABLED is false",
            "log_level": "info"} in logs  # fmt: skip


async def test_a_task_that_raises_is_logged_and_run_again(autojump_clock):
    runs = []

    async def flaky() -> None:
        runs.append(trio.current_time())
        if len(runs) == 1:
            raise ValueError("first run")
        if len(runs) == 3:
            await trio.sleep_forever()

    with structlog.testing.capture_logs() as logs:
        with trio.move_on_after(60):
            await keep_running("x", flaky, pause=5)
    assert runs == [0, 5, 10]
    assert [(e["task"], e["error"]) for e in logs] == [
        ("x", "ValueError('first run')"),
        ("x", "returned"),
    ]


async def _serve_until_delivered(db_url, nursery, receiver, which: str, *, then=None,
                                 **env: str) -> None:  # fmt: skip
    """``serve`` with FreeSWITCH's 1001 registered, until ``which`` deliverer (helpdesk or
    whatsapp) has sent one row to ``receiver`` (a local server) and recorded it, and ``then``
    (given the app) has returned."""
    from callcontrol.api.http import serve_http

    port = _free_port()
    await nursery.start(serve_http, receiver.app(), HostPort("127.0.0.1", port))
    env = {k: v.replace("{port}", str(port)) for k, v in env.items()}
    async with open_freeswitch_sim(domain=DOMAIN) as sim:
        esl_port = (await sim.serve_inbound())[0].socket.getsockname()[1]
        sim.register("1001", DOMAIN)
        app = App(settings=_settings(db_url, esl_port, **env))
        with trio.fail_after(20):
            async with trio.open_nursery() as inner:
                await inner.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
                await receiver.got.wait()  # the first scan notifies; the kick sends it at once
                deliverer = getattr(app, which)
                while deliverer.delivered_rows < 1:  # and records it
                    await deliverer.recorded.wait()
                if then is not None:
                    await then(app)
                app.shutting_down.set()


async def test_inside_serve_the_helpdesk_gets_the_notification_signed(db, db_url, nursery):
    from tests.callbacks.test_outbox import SECRET, Helpdesk

    ticket = await _ticket(db)
    helpdesk = Helpdesk()
    await _serve_until_delivered(db_url, nursery, helpdesk, "helpdesk",
                                 OMNIPLAY_API_URL="http://127.0.0.1:{port}",
                                 OMNIPLAY_WEBHOOK_SECRET=SECRET)  # fmt: skip
    [(_key, body)] = helpdesk.received
    assert (body["event"], body["ticketUuid"], body["destinationExtension"]) == (
        "callback.notified",
        ticket,
        "1001",
    )
    assert await db.fetch_value("SELECT status FROM callcontrol_outbox") == "delivered"


async def test_inside_serve_the_customer_gets_the_whatsapp_template(db, db_url, nursery):
    from tests.callbacks import graph_api

    ticket = await _ticket(db)
    await db.execute("UPDATE callcontrol_callback_requests SET notify_via_whatsapp = true")
    graph = graph_api.GraphApi()
    await _serve_until_delivered(db_url, nursery, graph, "whatsapp",
                                 WHATSAPP_API_URL="http://127.0.0.1:{port}/v21.0",
                                 WHATSAPP_TOKEN=graph_api.TOKEN,
                                 WHATSAPP_PHONE_NUMBER_ID=graph_api.PHONE_NUMBER_ID)  # fmt: skip
    [body] = graph.sent
    assert (body["type"], body["to"]) == ("template", "5511988887777")
    [wamid] = graph.wamids()
    assert await db.fetch_value("SELECT whatsapp_message_id FROM callcontrol_callback_requests"
                                " WHERE request_uuid = %s", (ticket,)) == wamid  # fmt: skip


async def test_inside_serve_a_whatsapp_sim_over_http_makes_the_ticket_ready(db, db_url, nursery):
    """The customer's answer reaches serve's own HTTP listener, signed as Meta signs it; the
    ticket is ready to call and the confirmation goes out as a reply."""
    import hashlib
    import hmac
    import json

    import httpx

    from tests.callbacks import graph_api

    ticket = await _ticket(db)
    await db.execute("UPDATE callcontrol_callback_requests SET notify_via_whatsapp = true")
    graph = graph_api.GraphApi()
    answers = []

    async def answer_sim(app) -> None:
        [wamid] = graph.wamids()
        body = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{
            "field": "messages", "value": {"messages": [{
                "from": "5511988887777", "id": "wamid.FROM.MARIA", "type": "text",
                "text": {"body": "sim"}, "context": {"id": wamid}}]}}]}]}).encode()
        mac = hmac.new(graph_api.APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        url = f"http://{app.settings.http_listen}/webhooks/whatsapp"
        async with httpx.AsyncClient(timeout=5) as client:
            for headers in ({}, {"X-Hub-Signature-256": f"sha256={mac}"}):
                reply = await client.post(url, content=body, headers=headers)
                answers.append(reply.status_code)
        while app.whatsapp.delivered_rows < 2:  # the confirmation, woken by the webhook
            await app.whatsapp.recorded.wait()

    await _serve_until_delivered(db_url, nursery, graph, "whatsapp", then=answer_sim,
                                 WHATSAPP_API_URL="http://127.0.0.1:{port}/v21.0",
                                 WHATSAPP_TOKEN=graph_api.TOKEN,
                                 WHATSAPP_PHONE_NUMBER_ID=graph_api.PHONE_NUMBER_ID,
                                 WHATSAPP_APP_SECRET=graph_api.APP_SECRET)  # fmt: skip
    assert answers == [401, 200]  # unsigned refused, signed taken
    assert await _status(db, ticket) == "ready_to_call"
    template, confirmation = graph.sent
    assert template["type"] == "template"
    assert (confirmation["type"], confirmation["context"]) == ("text",
                                                               {"message_id": "wamid.FROM.MARIA"})


async def test_inside_serve_a_ready_to_call_ticket_is_called_when_its_agent_registers(db, db_url):
    ticket = await _ticket(db)
    await db.execute("UPDATE callcontrol_callback_requests SET status = 'ready_to_call'")
    customer_dial = f"loopback/+5511988887777/{DOMAIN}"
    async with open_freeswitch_sim(domain=DOMAIN) as sim:
        sim.endpoints[f"user/1001@{DOMAIN}"] = Answer(after=0.1)
        sim.endpoints[customer_dial] = Answer(after=0.1)
        esl_port = (await sim.serve_inbound())[0].socket.getsockname()[1]
        app = App(settings=_settings(db_url, esl_port))
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
                scanner = app.callbacks.scanner
                while scanner.scans < 1:  # at start 1001 is not registered: nobody is rung
                    await scanner.scanned.wait()
                assert not sim.legs()
                sim.register("1001", DOMAIN)  # wakes the scanner at once
                customer = await sim.wait_for_leg("loopback/")
                await sim.wait_for(lambda: customer.bridged_to is not None)
                assert await _status(db, ticket) == "in_progress"
                await customer.hangup()
                while ticket not in app.callbacks.caller.finished:
                    await scanner.scanned.wait()
                app.shutting_down.set()
        agent = sim.legs("sofia/internal/1001@")[0]
        assert agent.variables["callcontrol_ticket"] == ticket
        assert not sim.channels
    assert await _status(db, ticket) == "completed"
    moves = [(h["to_status"], h["changed_by"]) for h in await history(db, ticket)]
    assert moves[-2:] == [("in_progress", "click-to-call"), ("completed", "click-to-call")]
    metrics = app.services.metrics
    assert metrics.value("voice_callbacks_total", status="in_progress") == 1
    assert metrics.value("voice_callbacks_total", status="completed") == 1


async def test_sigterm_while_a_click_to_call_rings_the_customer_leaves_no_leg(db, db_url):
    ticket = await _ticket(db)
    await db.execute("UPDATE callcontrol_callback_requests SET status = 'ready_to_call'")
    async with open_freeswitch_sim(domain=DOMAIN) as sim:
        sim.endpoints[f"user/1001@{DOMAIN}"] = Answer(after=0.1)
        sim.endpoints[f"loopback/+5511988887777/{DOMAIN}"] = Manual()  # rings until told
        sim.register("1001", DOMAIN)
        esl_port = (await sim.serve_inbound())[0].socket.getsockname()[1]
        app = App(settings=_settings(db_url, esl_port))
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
                customer = await sim.wait_for_leg("loopback/")
                app.shutting_down.set()  # SIGTERM: serve stops, the click-to-call with it
            await sim.wait_for(lambda: not sim.channels)
        agent = sim.legs("sofia/internal/1001@")[0]
        assert (agent.hangup_cause, customer.hangup_cause) == ("ORIGINATOR_CANCEL",
                                                               "ORIGINATOR_CANCEL")
    assert await _status(db, ticket) == "pending"  # not counted: called again later
    assert (await history(db, ticket))[-1]["reason"].endswith("not counted as an attempt")
