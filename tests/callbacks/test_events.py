"""The tickets' events: the database announces every committed change (migration 014's
trigger), a listener on its own connection hears what any process commits, and the hub hands
each change to the subscribers it concerns, never blocking on a slow one."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
import trio
from trio.testing import MockClock

from callcontrol.api.events import stream
from callcontrol.callbacks import tickets
from callcontrol.callbacks.events import (
    Event,
    EventHub,
    TicketChange,
    TicketListener,
    Watch,
    encode,
    parse_payload,
)
from callcontrol.db import PoolOptions, open_database
from callcontrol.metrics import Metrics
from callcontrol.testing.database import add_destination, add_domain, add_extension
from tests.api.conftest import add_ticket

A = uuid.UUID("a0000000-0000-4000-8000-000000000001")
B = uuid.UUID("b0000000-0000-4000-8000-000000000002")


def change(domain: uuid.UUID = A, extension: str | None = "1001", status: str = "pending",
           ident: str | None = None) -> TicketChange:  # fmt: skip
    return TicketChange(ident or str(uuid.uuid4()), "created", status, None, "callback", domain,
                        extension)  # fmt: skip


def drain(channel) -> list[Event]:
    found = []
    while True:
        try:
            found.append(channel.receive_nowait())
        except trio.WouldBlock:
            return found


async def test_each_subscriber_gets_only_its_domain_and_its_extensions():
    hub = EventHub()
    with hub.subscribe(Watch(A)) as supervisor, \
            hub.subscribe(Watch(A, frozenset({"1001"}))) as agent, \
            hub.subscribe(Watch(B)) as other_domain:  # fmt: skip
        mine = hub.publish(change(A, "1001"))
        colleague = hub.publish(change(A, "1002"))
        ring_group = hub.publish(change(A, None))
        elsewhere = hub.publish(change(B, "1001"))
        assert drain(supervisor) == [mine, colleague, ring_group]
        assert drain(agent) == [mine]
        assert drain(other_domain) == [elsewhere]
    assert hub.subscribers == 0


async def test_a_slow_subscriber_is_told_to_resync_and_never_blocks_the_publisher():
    metrics = Metrics()
    hub = EventHub(buffer=4, metrics=metrics)
    with hub.subscribe(Watch(A)) as slow, hub.subscribe(Watch(A)) as keeping_up:
        for _ in range(10):
            published = hub.publish(change())  # returns at once however full ``slow`` is
            assert drain(keeping_up) == [published]
        behind = drain(slow)
    # what it had not read was dropped for one resync; what came after that, it has
    assert [e.name for e in behind][:1] == ["resync"] and behind[0].reason == "behind"
    assert all(e.name == "ticket" for e in behind[1:]) and len(behind) <= 4
    assert behind[-1] == published
    assert hub.resyncs >= 1
    assert metrics.value("voice_console_resyncs_total", reason="behind") == hub.resyncs
    assert metrics.value("voice_console_streams") == 0


async def test_a_reconnecting_client_gets_what_it_missed_or_a_resync():
    hub = EventHub(remembered=3)
    seen = hub.publish(change(A))
    missed = [hub.publish(change(A)), hub.publish(change(A))]
    hub.publish(change(B))
    with hub.subscribe(Watch(A), last_event_id=seen.id) as resumed:
        assert drain(resumed) == missed
    with hub.subscribe(Watch(A), last_event_id=f"{hub.epoch}-0") as too_old:
        assert [e.name for e in drain(too_old)] == ["resync"]
    with hub.subscribe(Watch(A), last_event_id="0badc0de-7") as before_a_restart:
        assert [e.name for e in drain(before_a_restart)] == ["resync"]


def test_an_event_is_one_server_sent_event_whose_data_is_one_line_of_json():
    ticket = TicketChange("t-1", "status", "notified", "pending", "callback", A, "1001",
                          reason="linha 1\nlinha 2")  # fmt: skip
    text = encode(Event("ab-3", "ticket", ticket)).decode()
    lines = text.split("\n")
    assert lines[:2] == ["id: ab-3", "event: ticket"] and text.endswith("\n\n")
    data = json.loads(lines[2].removeprefix("data: "))
    assert data["reason"] == "linha 1\nlinha 2" and data["domain_uuid"] == str(A)
    assert lines[3:] == ["", ""]


def test_a_payload_of_another_schema_or_garbled_is_ignored():
    one = {"id": "x", "change": "created", "status": "pending", "kind": "callback",
           "domain_uuid": str(A), "extension": "1001"}
    payload = json.dumps({"schema": "s1", "changes": [one, {**one, "id": "y"}]})
    assert parse_payload(payload, "s1") == [
        TicketChange("x", "created", "pending", None, "callback", A, "1001"),
        TicketChange("y", "created", "pending", None, "callback", A, "1001")]
    assert parse_payload(payload, "s2") == []
    assert parse_payload("{not json", "s1") == []
    garbled = json.dumps({"schema": "s1", "changes": [{"id": "z"}, 7, one]})
    assert [c.request_uuid for c in parse_payload(garbled, "s1")] == ["x"]


async def test_one_statement_of_many_changes_is_a_few_payloads_each_under_8000_bytes(db,
                                                                                    db_url):
    """The scanner notifies thousands of tickets in one UPDATE: they go out in few payloads
    (NOTIFY refuses one over 8000 bytes), every change in order, long texts cut short."""
    domain = await add_domain(db, "a.example.com")
    ours = [await add_ticket(db, domain, reason="r" * 5000, caller_name="ç" * 300)
            for _ in range(40)]  # fmt: skip
    with psycopg.connect(db_url, autocommit=True) as listening:
        listening.execute("LISTEN callcontrol_tickets")
        schema = listening.execute("SELECT current_schema()").fetchone()[0]
        await db.execute("UPDATE callcontrol_callback_requests SET status = 'notified',"
                         " notification_count = notification_count + 1")  # fmt: skip
        await db.execute("UPDATE callcontrol_callback_requests SET caller_name = 'x'")
        await db.execute("SELECT pg_notify('callcontrol_tickets', 'end')")
        payloads = []
        for notice in listening.notifies(timeout=10):
            if notice.payload == "end":
                break
            payloads.append(notice.payload)
    ours_only = [p for p in payloads if parse_payload(p, schema)]
    assert 1 < len(ours_only) < 40 and all(len(p.encode()) < 8000 for p in ours_only)
    changes = [c for p in ours_only for c in parse_payload(p, schema)]
    assert [c.request_uuid for c in changes] == ours  # the name's change is no event
    assert {(c.change, c.previous_status, c.status) for c in changes} == {
        ("status", "pending", "notified")}
    assert all(len(c.reason or "") == 200 and len(c.caller_name or "") == 100 for c in changes)


async def test_the_stream_beats_every_15_seconds_while_nothing_happens(autojump_clock):
    hub = EventHub()
    body = stream(hub, Watch(A), None)
    assert await body.__anext__() == b"retry: 3000\n\n"
    started = trio.current_time()
    assert await body.__anext__() == b": heartbeat\n\n"
    assert trio.current_time() - started == pytest.approx(15)
    published = hub.publish(change(A))
    assert await body.__anext__() == encode(published)
    await body.aclose()
    assert hub.subscribers == 0


@pytest.fixture
def autojump_clock() -> MockClock:
    return MockClock(autojump_threshold=0)


async def _next_ticket(channel) -> Event:
    while True:
        event = await channel.receive()
        if event.name == "ticket":
            return event


async def test_what_another_process_commits_reaches_the_listener(db, db_url, nursery):
    """Two Database objects, as two serve instances would have: the listener of one hears the
    tickets the other stores and moves, with their domain and agent; a rolled-back change is
    never announced."""
    domain = await add_domain(db, "a.example.com")
    await add_extension(db, domain, "1001")
    suporte = await add_destination(db, domain, "Suporte", "extension", "1001")
    hub = EventHub()
    listener = TicketListener(db_url, hub)
    nursery.start_soon(listener.run)
    with trio.fail_after(10), hub.subscribe(Watch(domain, frozenset({"1001"}))) as events:
        await listener.listening.wait()
        async with open_database(db_url, PoolOptions(min_size=1, max_size=2)) as other:
            # its agent is its destination's extension: no extension column of its own
            ticket = await add_ticket(other, domain, extension=None, destination_uuid=suporte)
            created = await _next_ticket(events)
            assert created.change is not None
            assert (created.change.request_uuid, created.change.change, created.change.status,
                    created.change.extension, created.change.caller_name) == (
                ticket, "created", "pending", "1001", "Maria Souza")  # fmt: skip

            def refused(conn):
                tickets.move(conn, ticket, tickets.TicketStatus.CANCELED, by="test")
                raise RuntimeError("rolled back")

            with pytest.raises(RuntimeError):
                await other.transaction(refused)
            await tickets.change_status(other, ticket, tickets.TicketStatus.NOTIFIED,
                                        by="scanner")  # fmt: skip
            moved = await _next_ticket(events)  # not the cancel that was rolled back
            assert moved.change is not None
            assert (moved.change.change, moved.change.previous_status, moved.change.status,
                    moved.change.notification_count) == ("status", "pending", "notified", 1)


async def test_a_listener_whose_connection_is_killed_tells_everyone_to_resync(db, db_url,
                                                                              nursery):  # fmt: skip
    domain = await add_domain(db, "a.example.com")
    hub = EventHub()
    listener = TicketListener(db_url, hub)
    nursery.start_soon(listener.run)
    with trio.fail_after(20), hub.subscribe(Watch(domain)) as events:
        await listener.listening.wait()
        listener.listening = trio.Event()
        assert await db.fetch_value("SELECT pg_terminate_backend(%s)", (listener.backend_pid,))
        resync = await events.receive()
        assert (resync.name, resync.reason) == ("resync", "database_restored")
        await add_ticket(db, domain)
        assert (await _next_ticket(events)).change is not None
