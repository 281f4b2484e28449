"""Two FreeSWITCH boxes in ESL_HOST inside ``callcontrol serve`` and its scanner (issue 8):
real PostgreSQL, two simulated switches on two ports, real sockets; waited on events."""

from __future__ import annotations

import structlog
import trio

from callcontrol.callbacks.availability import Boxes
from callcontrol.callbacks.requests import CallbackRequest, save_request
from callcontrol.callbacks.scanner import ALERT_AFTER_FAILURES, Scanner
from callcontrol.config import HostPort
from callcontrol.metrics import Metrics
from callcontrol.server import App, run_secretary_server
from callcontrol.testing.database import add_destination, add_domain, add_extension
from callcontrol.testing.freeswitch import Answer, Busy, esl_hosts, open_freeswitch_sims
from tests.callbacks.test_serve_callbacks import DOMAIN, _settings, _status

OTHER = "loja.example.com"


async def _ticket_for(db, domain_name: str, extension: str = "1001") -> str:
    domain = await add_domain(db, domain_name)
    await add_extension(db, domain, extension)
    suporte = await add_destination(db, domain, "Suporte", "extension", extension)
    saved = await save_request(db, CallbackRequest(
        "callback", "+5511988887777", caller_name="Maria", reason="resultado do exame",
        domain_uuid=str(domain), destination_uuid=str(suporte), destination_name="Suporte"))
    return saved.request_uuid


async def test_click_to_call_rings_the_agent_on_the_box_the_extension_is_registered_on(
    db, db_url
):
    ticket = await _ticket_for(db, DOMAIN)
    await db.execute("UPDATE callcontrol_callback_requests SET status = 'ready_to_call'")
    async with open_freeswitch_sims(2, domain=DOMAIN) as (fs1, fs2):
        for sim in (fs1, fs2):
            sim.endpoints[f"user/1001@{DOMAIN}"] = Answer(after=0.1)
            sim.endpoints[f"loopback/+5511988887777/{DOMAIN}"] = Answer(after=0.1)
        fs1.register("1002", DOMAIN)  # the domain has phones on box 1 too; not the agent's
        app = App(settings=_settings(db_url, 8021, ESL_HOST=esl_hosts([fs1, fs2])))
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
                scanner = app.callbacks.scanner
                while scanner.scans < 1:  # 1001 is registered nowhere yet: nobody is rung
                    await scanner.scanned.wait()
                fs2.register("1001", DOMAIN)  # box 2's event wakes the scanner
                customer = await fs2.wait_for_leg("loopback/")
                await fs2.wait_for(lambda: customer.bridged_to is not None)
                await customer.hangup()
                while ticket not in app.callbacks.caller.finished:
                    await scanner.scanned.wait()
                app.shutting_down.set()
        originates = fs2.inbound_commands("bgapi originate")
        assert [o.split("}", 1)[1] for o in originates] == [
            f"user/1001@{DOMAIN} &park()", f"loopback/+5511988887777/{DOMAIN} &park()"]
        assert f"callcontrol_ticket={ticket}" in originates[0]
        assert fs2.inbound_commands("api uuid_bridge")
        assert fs1.inbound_commands("bgapi") == [] and not fs1.legs()
    assert await _status(db, ticket) == "completed"


async def test_a_retry_rings_the_agent_on_the_box_they_moved_to(db, db_url):
    ticket = await _ticket_for(db, DOMAIN)
    await db.execute("UPDATE callcontrol_callback_requests SET status = 'ready_to_call'")
    async with open_freeswitch_sims(2, domain=DOMAIN) as (fs1, fs2):
        fs2.endpoints[f"user/1001@{DOMAIN}"] = Busy()  # busy on box 2 at the first attempt
        fs1.endpoints[f"user/1001@{DOMAIN}"] = Answer(after=0.1)
        fs1.endpoints[f"loopback/+5511988887777/{DOMAIN}"] = Answer(after=0.1)
        fs2.register("1001", DOMAIN)
        app = App(settings=_settings(db_url, 8021, ESL_HOST=esl_hosts([fs1, fs2]),
                                     CALLBACK_RETRY_DELAY_SECONDS="1"))  # fmt: skip
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
                await fs2.wait_for(lambda: fs2.inbound_commands("bgapi originate"))
                fs2.unregister("1001", DOMAIN)  # the agent's phone moves to box 1
                fs1.register("1001", DOMAIN)
                customer = await fs1.wait_for_leg("loopback/")
                await fs1.wait_for(lambda: customer.bridged_to is not None)
                await customer.hangup()
                while ticket not in app.callbacks.caller.finished:
                    await app.callbacks.scanner.scanned.wait()
                app.shutting_down.set()
        assert [o.split("}", 1)[1] for o in fs2.inbound_commands("bgapi originate")] == [
            f"user/1001@{DOMAIN} &park()"]  # the first attempt, busy
        assert [o.split("}", 1)[1] for o in fs1.inbound_commands("bgapi originate")] == [
            f"user/1001@{DOMAIN} &park()", f"loopback/+5511988887777/{DOMAIN} &park()"]
    assert await _status(db, ticket) == "completed"


async def test_an_agent_registered_on_both_boxes_is_notified_once(db, db_url):
    ticket = await _ticket_for(db, DOMAIN)
    async with open_freeswitch_sims(2, domain=DOMAIN) as (fs1, fs2):
        app = App(settings=_settings(db_url, 8021, ESL_HOST=esl_hosts([fs1, fs2])))
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(run_secretary_server, app, HostPort("127.0.0.1", 0))
                scanner = app.callbacks.scanner
                while scanner.scans < 1:
                    await scanner.scanned.wait()
                fs1.register("1001", DOMAIN)  # a desk phone on box 1, a softphone on box 2:
                fs2.register("1001", DOMAIN)  # two events, two wakes
                while await _status(db, ticket) == "pending":
                    await scanner.scanned.wait()
                scans = scanner.scans
                fs1.register("1001", DOMAIN)  # it registers again: one more scan, no more told
                while scanner.scans < scans + 1:
                    await scanner.scanned.wait()
                app.shutting_down.set()
    assert await db.fetch_value("SELECT notification_count FROM callcontrol_callback_requests"
                                " WHERE request_uuid = %s", (ticket,)) == 1  # fmt: skip
    assert app.services.metrics.value("voice_callbacks_total", status="notified") == 1


async def test_a_box_down_alerts_for_that_box_and_the_other_boxs_agents_are_told(
    db, db_url, nursery
):
    on_box1 = await _ticket_for(db, DOMAIN)
    on_box2 = await _ticket_for(db, OTHER)
    async with open_freeswitch_sims(2) as (fs1, fs2):
        fs1.register("1001", DOMAIN)
        fs2.register("1002", OTHER)  # a phone of the other domain: box 2 holds that domain
        settings = _settings(db_url, 8021, ESL_HOST=esl_hosts([fs1, fs2]))
        boxes = Boxes.connect(settings)
        nursery.start_soon(boxes.run_clients)
        nursery.start_soon(boxes.run_monitors)
        metrics = Metrics()
        scanner = Scanner(db, boxes.snapshot, settings, clock=_now, metrics=metrics,
                          boxes=boxes.names)  # fmt: skip
        box2 = boxes.names[1]
        with trio.fail_after(20):
            for client in boxes.clients.values():
                await client.connection()
            assert await boxes.snapshot() is not None  # both read once: box 2 holds OTHER
            fs2.stop_inbound()
            while boxes.clients[box2].connected:
                await boxes.clients[box2].wait_changed()
            with structlog.testing.capture_logs() as logs:
                results = [await scanner.scan() for _ in range(ALERT_AFTER_FAILURES + 1)]
    assert all(r is not None and r.boxes_down == (box2,) for r in results)
    assert [t.request_uuid for t in results[0].notified] == [on_box1]  # box 1 answered
    assert await _status(db, on_box2) == "pending"  # its box is down: UNKNOWN, not told
    alerts = [e for e in logs if e["event"] == "callbacks.availability_alert"]
    assert [(a["box"], a["scans"]) for a in alerts] == [(box2, ALERT_AFTER_FAILURES)]
    assert metrics.value("voice_callback_availability_alerts_total", box=box2) == 1
    assert scanner.down_in_a_row == {boxes.names[0]: 0, box2: ALERT_AFTER_FAILURES + 1}
    nursery.cancel_scope.cancel()


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)
