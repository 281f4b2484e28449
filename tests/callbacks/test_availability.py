"""An extension's availability from one FreeSWITCH snapshot (issue 8): the sans-IO reading, on
rows as the real switch printed them, and the monitor over the simulated inbound socket."""

from __future__ import annotations

import json

import trio
from hypothesis import given
from hypothesis import strategies as st

from callcontrol.callbacks.availability import (
    Availability,
    AvailabilityMonitor,
    Snapshot,
    availability,
)
from callcontrol.esl.inbound import Backoff, InboundClient
from callcontrol.testing.freeswitch import Manual, open_freeswitch_sim

DOMAIN = "pbx.example.com"

# `api show registrations as json` and one row of `show channels as json`, as FreeSWITCH 1.10
# printed them (../shared/traces/media/d1_directory_originate.inbound.jsonl)
REAL_REGISTRATIONS = (
    '{"row_count":1,"rows":[{"reg_user":"1004","realm":"127.0.0.1","token":'
    '"ee9afbf57c76282a@127.0.0.1","url":"sofia/internal/sip:1004@127.0.0.1:5099","expires":'
    '"1795628240","network_ip":"127.0.0.1","network_port":"5099","network_proto":"udp",'
    '"hostname":"vm","metadata":""}]}'
)
REAL_NO_REGISTRATIONS = '{"row_count": 0}\n'
REAL_CHANNEL = {
    "uuid": "d51496b0-4321-4928-8e91-db0641b72575", "direction": "outbound",
    "name": "loopback/9001-a", "state": "CS_EXECUTE", "dest": "9001", "application": "park",
    "presence_id": "1001@127.0.0.1", "callstate": "ACTIVE",
}


def test_real_rows_are_read_exactly():
    snapshot = Snapshot.parse(REAL_REGISTRATIONS,
                              json.dumps({"row_count": 1, "rows": [REAL_CHANNEL]}))
    assert availability(snapshot, "1004", "127.0.0.1") is Availability.AVAILABLE
    assert availability(snapshot, "1001", "127.0.0.1") is Availability.IN_CALL
    assert availability(snapshot, "100", "127.0.0.1") is Availability.OFFLINE  # not 1001
    assert availability(snapshot, "1004", "other.example.com") is Availability.OFFLINE
    assert availability(snapshot, "1004", "127.0.0.1", dnd=True) is Availability.DND
    assert availability(None, "1004", "127.0.0.1") is Availability.UNKNOWN
    empty = Snapshot.parse(REAL_NO_REGISTRATIONS, REAL_NO_REGISTRATIONS)
    assert availability(empty, "1004", "127.0.0.1") is Availability.OFFLINE


def test_a_reply_that_is_not_a_listing_is_refused():
    for text in ("-ERR no reply\n", "[]", '{"rows": 3}'):
        try:
            Snapshot.parse(text, REAL_NO_REGISTRATIONS)
        except ValueError:
            continue
        raise AssertionError(f"{text!r} was taken for a listing")


extensions = st.sampled_from(["100", "1001", "1002", "10010"])
domains = st.sampled_from(["a.example.com", "b.example.com"])
states = st.sampled_from(["ACTIVE", "HELD", "RINGING", "EARLY", "DOWN", "HANGUP"])


@given(
    registered=st.lists(st.tuples(extensions, domains), max_size=6),
    channels=st.lists(st.tuples(extensions, domains, states), max_size=6),
    asked=st.tuples(extensions, domains),
    dnd=st.booleans(),
)
def test_available_only_when_registered_idle_and_not_dnd(registered, channels, asked, dnd):
    snapshot = Snapshot.from_rows(
        [{"reg_user": u, "realm": d} for u, d in registered],
        [{"presence_id": f"{u}@{d}", "callstate": s} for u, d, s in channels],
    )
    result = availability(snapshot, *asked, dnd=dnd)
    busy = {(u, d) for u, d, s in channels if s != "HANGUP"}
    if result is Availability.AVAILABLE:
        assert not dnd and asked in set(registered) and asked not in busy
    if dnd:
        assert result is Availability.DND
    assert result is not Availability.UNKNOWN


async def test_the_monitor_follows_the_switch_with_one_read_per_change(nursery):
    async with open_freeswitch_sim(domain=DOMAIN) as sim:
        sim.endpoints[f"user/1001@{DOMAIN}"] = Manual()
        port = (await sim.serve_inbound())[0].socket.getsockname()[1]
        client = InboundClient("127.0.0.1", port, "ClueCon", events=AvailabilityMonitor.events())
        monitor = AvailabilityMonitor(client)
        nursery.start_soon(client.run)
        nursery.start_soon(monitor.run)
        with trio.fail_after(10):
            await client.connection()
            assert await monitor.of("1001", DOMAIN) is Availability.OFFLINE

            async def after_change(action):
                changed = monitor.changed
                action()
                await changed.wait()
                return await monitor.of("1001", DOMAIN)

            assert await after_change(lambda: sim.register("1001", DOMAIN)) \
                is Availability.AVAILABLE
            for _ in range(100):  # nothing happened: no new read
                assert await monitor.of("1001", DOMAIN) is Availability.AVAILABLE
            reads = monitor.reads
            leg = "33333333-0000-4000-8000-000000000001"
            assert await after_change(lambda: sim.bgapi(
                f"originate {{origination_uuid={leg}}}user/1001@{DOMAIN} &park()",
                sim.new_uuid())) is Availability.RINGING
            assert monitor.reads == reads + 1
            changed = monitor.changed
            await sim.leg(leg).answer()
            await changed.wait()
            assert await monitor.of("1001", DOMAIN) is Availability.IN_CALL
            await sim.leg(leg).hangup()
            await sim.wait_for(lambda: leg not in sim.channels)
            await monitor.changed.wait()
            assert await monitor.of("1001", DOMAIN) is Availability.AVAILABLE
            assert await after_change(lambda: sim.unregister("1001", DOMAIN)) \
                is Availability.OFFLINE
    nursery.cancel_scope.cancel()


async def test_a_switch_that_cannot_be_asked_is_unknown_never_available(nursery, autojump_clock):
    client = InboundClient("127.0.0.1", 1, "ClueCon", backoff=Backoff(base=0.5, cap=1.0),
                           connect_timeout=0.5)
    monitor = AvailabilityMonitor(client)
    nursery.start_soon(client.run)
    for attempt in range(1, 4):
        assert await monitor.of("1001", DOMAIN) is Availability.UNKNOWN
        assert monitor.failures_in_a_row == attempt
    assert not Availability.UNKNOWN.can_take_a_callback
    nursery.cancel_scope.cancel()
