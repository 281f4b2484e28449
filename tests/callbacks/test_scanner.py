"""The scanner (issue 8): the original plan's scenarios on real PostgreSQL with the stock
FusionPBX schema; availability from a snapshot of simulated registrations and channels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import structlog
import trio

from callcontrol.callbacks.availability import Snapshot
from callcontrol.callbacks.requests import CallbackRequest, save_request
from callcontrol.callbacks.scanner import ALERT_AFTER_FAILURES, Scanner, scan_once
from callcontrol.callbacks.tickets import history
from callcontrol.config import load_settings
from callcontrol.db import PoolOptions, open_database
from callcontrol.testing.database import EVERY_PBX, add_destination, add_domain, add_extension

DOMAIN = "clinica.example.com"
T0 = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)


class Switch:
    """What FreeSWITCH would say: who is registered, who is on a call."""

    def __init__(self) -> None:
        self.registered: set[str] = set()
        self.in_call: set[str] = set()
        self.down = False
        self.asked = 0

    async def snapshot(self) -> Snapshot | None:
        self.asked += 1
        if self.down:
            return None
        return Snapshot.from_rows(
            [{"reg_user": u, "realm": DOMAIN} for u in self.registered],
            [{"presence_id": f"{u}@{DOMAIN}", "callstate": "ACTIVE"} for u in self.in_call],
        )


@pytest.fixture
async def clinic(db):
    domain = await add_domain(db, DOMAIN)
    await add_extension(db, domain, "1001")
    await add_extension(db, domain, "1002", do_not_disturb=True)
    suporte = await add_destination(db, domain, "Suporte", "extension", "1001")
    return domain, suporte


async def _ticket(db, clinic, **fields) -> str:
    domain, suporte = clinic
    saved = await save_request(db, CallbackRequest(
        "callback", "+5511988887777", caller_name="Maria", reason="resultado do exame",
        domain_uuid=str(domain), destination_uuid=str(suporte), destination_name="Suporte"))
    if fields:
        sets = ", ".join(f"{k} = %({k})s" for k in fields)
        await db.execute(f"UPDATE callcontrol_callback_requests SET {sets}"
                         " WHERE request_uuid = %(u)s", {**fields, "u": saved.request_uuid})
    return saved.request_uuid


async def _status(db, ticket):
    return await db.fetch_value("SELECT status FROM callcontrol_callback_requests"
                                " WHERE request_uuid = %s", (ticket,))  # fmt: skip


SETTINGS = load_settings({})


@pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)
async def test_an_unavailable_agent_is_not_told_until_the_extension_frees(db, clinic):
    ticket = await _ticket(db, clinic)
    switch = Switch()
    switch.registered.add("1001")
    switch.in_call.add("1001")
    result = await scan_once(db, switch.snapshot, SETTINGS, T0)
    assert result.due == 1 and result.notified == ()
    assert await _status(db, ticket) == "pending"
    switch.in_call.clear()
    told = []

    async def notify(t):
        told.append(t)

    result = await scan_once(db, switch.snapshot, SETTINGS, T0 + timedelta(seconds=30),
                             notify=notify)
    assert [t.request_uuid for t in told] == [ticket] and told[0].extension == "1001"
    assert await _status(db, ticket) == "notified"
    steps = [(h["to_status"], h["changed_by"], h["reason"]) for h in await history(db, ticket)]
    assert steps[-1] == ("notified", "scanner", "the agent's extension is available")


async def test_dnd_and_offline_agents_are_not_told(db, clinic):
    offline = await _ticket(db, clinic)
    dnd = await _ticket(db, clinic, extension="1002")
    switch = Switch()
    switch.registered.add("1002")  # 1002 is registered but on DND; 1001 is not registered
    result = await scan_once(db, switch.snapshot, SETTINGS, T0)
    assert result.due == 2 and result.notified == ()
    assert {await _status(db, offline), await _status(db, dnd)} == {"pending"}


@pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)
async def test_dnd_written_only_into_the_dial_string_is_dnd_too(db, clinic):
    # FusionPBX 4.x (and a DND set by the feature code on an old box) marks DND by the
    # dial string alone; the handoff already refused to ring it, so the scanner must agree
    domain, _ = clinic
    await add_extension(db, domain, "1003", do_not_disturb=None, dial_string="error/user_busy")
    ticket = await _ticket(db, clinic, extension="1003")
    switch = Switch()
    switch.registered.add("1003")
    result = await scan_once(db, switch.snapshot, SETTINGS, T0)
    assert result.due == 1 and result.notified == ()
    assert await _status(db, ticket) == "pending"


async def test_the_minimum_interval_and_the_limit_of_notifications(db, clinic):
    ticket = await _ticket(db, clinic, min_interval_minutes=10)
    switch = Switch()
    switch.registered.add("1001")
    settings = load_settings({"CALLBACK_MAX_NOTIFICATIONS": "2"})
    told_at = []
    for minute in (0, 5, 10, 15, 20, 30):
        result = await scan_once(db, switch.snapshot, settings, T0 + timedelta(minutes=minute))
        if result.notified:
            told_at.append(minute)
    assert told_at == [0, 10]  # every 10 minutes, twice, then a person must look
    assert await _status(db, ticket) == "needs_review"


async def test_a_scheduled_ticket_waits_for_its_time_and_an_old_one_expires(db, clinic):
    later = await _ticket(db, clinic, scheduled_at=T0 + timedelta(hours=2))
    old = await _ticket(db, clinic, expires_at=T0 - timedelta(minutes=1))
    switch = Switch()
    switch.registered.add("1001")
    result = await scan_once(db, switch.snapshot, SETTINGS, T0)
    assert result.expired == (old,) and result.notified == ()
    assert await _status(db, old) == "expired"
    result = await scan_once(db, switch.snapshot, SETTINGS, T0 + timedelta(hours=2))
    assert [t.request_uuid for t in result.notified] == [later]


async def test_two_scanners_at_once_notify_once(db, db_url, clinic):
    ticket = await _ticket(db, clinic)
    switch = Switch()
    switch.registered.add("1001")
    results = []

    async def one():
        # its own pool, queries in worker threads: two instances really at once
        async with open_database(db_url, PoolOptions(min_size=1, max_size=2)) as instance:
            results.append(await scan_once(instance, switch.snapshot, SETTINGS, T0))

    async with trio.open_nursery() as both:
        for _ in range(4):
            both.start_soon(one)
    assert sum(len(r.notified) for r in results) == 1
    assert await db.fetch_value("SELECT notification_count FROM callcontrol_callback_requests"
                                " WHERE request_uuid = %s", (ticket,)) == 1  # fmt: skip


async def test_one_snapshot_per_scan_however_many_tickets(db, clinic):
    for _ in range(50):
        await _ticket(db, clinic)
    switch = Switch()
    result = await scan_once(db, switch.snapshot, SETTINGS, T0)
    assert result.due == 50 and switch.asked == 1


async def test_freeswitch_down_notifies_nobody_alerts_after_three_and_catches_up(
    db, clinic, autojump_clock
):
    ticket = await _ticket(db, clinic)
    switch = Switch()
    switch.registered.add("1001")
    switch.down = True
    now = [T0]
    scanner = Scanner(db, switch.snapshot, SETTINGS, clock=lambda: now[0])
    with structlog.testing.capture_logs() as logs:
        for _ in range(ALERT_AFTER_FAILURES + 1):
            result = await scanner.scan()
            assert result is not None and not result.availability_known
    assert scanner.alerts == 1
    assert [e["event"] for e in logs].count("callbacks.availability_alert") == 1
    assert await _status(db, ticket) == "pending"
    switch.down = False
    result = await scanner.scan()
    assert result is not None and [t.request_uuid for t in result.notified] == [ticket]
    assert scanner.unknown_in_a_row == 0


async def test_the_loop_scans_every_interval_and_at_once_when_woken(db, clinic, autojump_clock):
    await _ticket(db, clinic)
    switch = Switch()
    woken = [trio.Event()]
    settings = load_settings({"CALLBACK_CHECK_INTERVAL_MS": "30000"})
    scanner = Scanner(db, switch.snapshot, settings, clock=lambda: T0, wake=lambda: woken[0])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scanner.run)
        await trio.sleep(61)
        assert scanner.scans == 3  # at 0, 30 and 60 s
        woken[0].set()
        woken[0] = trio.Event()
        await trio.sleep(1)
        assert scanner.scans == 4  # at once, not at 90 s
        nursery.cancel_scope.cancel()


async def test_a_ready_to_call_ticket_is_handed_to_click_to_call_when_its_agent_is_free(
    db, clinic
):
    ready = await _ticket(db, clinic, status="ready_to_call")
    pending = await _ticket(db, clinic)
    started = []

    async def start_call(ticket):
        started.append(ticket.request_uuid)

    switch = Switch()
    switch.registered.add("1001")
    switch.in_call.add("1001")
    result = await scan_once(db, switch.snapshot, SETTINGS, T0, start_call=start_call)
    assert started == [] and result.called == ()  # on a call: not now
    switch.in_call.clear()
    result = await scan_once(db, switch.snapshot, SETTINGS, T0 + timedelta(minutes=11),
                             start_call=start_call)  # fmt: skip
    assert started == [ready]  # the pending one is notified, not called
    assert [t.extension for t in result.called] == ["1001"]
    assert [t.request_uuid for t in result.notified] == [pending]
    assert await _status(db, ready) == "ready_to_call"  # click-to-call claims it, not the scan


async def test_a_click_to_call_killed_with_its_process_is_pending_again_after_two_rings(
    db, clinic
):
    lost, ringing, talking = [await _ticket(db, clinic, status="in_progress") for _ in range(3)]
    for ticket, age, bridged in ((lost, "3 minutes", False), (ringing, "20 seconds", False),
                                 (talking, "1 hour", True)):  # fmt: skip
        await db.execute(
            "INSERT INTO callcontrol_callback_attempts (request_uuid, attempt, call_order,"
            " agent_endpoint, customer_endpoint, agent_uuid, customer_uuid, started_at,"
            " bridged_at) VALUES (%(t)s, 1, 'agent-first', 'user/1001@x', 'loopback/+55/x',"
            " gen_random_uuid(), gen_random_uuid(), now() - %(age)s::interval,"
            " CASE WHEN %(bridged)s THEN now() END)", {"t": ticket, "age": age, "bridged": bridged})
    with structlog.testing.capture_logs() as logs:
        result = await scan_once(db, Switch().snapshot, SETTINGS, T0)
    assert result.reclaimed == (lost,)  # 2 × (30 s ring + 15 s grace) + 60 s = 150 s
    assert [await _status(db, t) for t in (lost, ringing, talking)] == [
        "pending", "in_progress", "in_progress"]
    row = await db.fetch_one("SELECT outcome, hangup_cause, ended_at IS NOT NULL AS ended"
                             " FROM callcontrol_callback_attempts WHERE request_uuid = %s",
                             (lost,))  # fmt: skip
    assert row == {"outcome": "cancelled", "hangup_cause": "CALLCONTROL_STOPPED", "ended": True}
    assert await db.fetch_value("SELECT attempts FROM callcontrol_callback_requests"
                                " WHERE request_uuid = %s", (lost,)) == 0  # fmt: skip
    last = (await history(db, lost))[-1]
    assert (last["to_status"], last["changed_by"]) == ("pending", "scanner")
    assert [e["event"] for e in logs].count("callbacks.c2c_lost") == 1
