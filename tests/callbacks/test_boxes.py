"""Several FreeSWITCH boxes in ESL_HOST (issue 8): each box's snapshot, one merged answer per
extension from the box its registration is on, and what a box that is down makes UNKNOWN —
sans-IO on rows, then over two simulated switches on two ports."""

from __future__ import annotations

import trio
from hypothesis import given
from hypothesis import strategies as st

from callcontrol.callbacks.availability import Availability, Boxes, Snapshot, availability, merge
from callcontrol.config import load_settings
from callcontrol.testing.freeswitch import esl_hosts, open_freeswitch_sims

A, B = "a.example.com", "b.example.com"


def _box(registered=(), in_call=(), ringing=()) -> Snapshot:
    return Snapshot.from_rows(
        [{"reg_user": u, "realm": d} for u, d in registered],
        [{"presence_id": f"{u}@{d}", "callstate": "ACTIVE"} for u, d in in_call]
        + [{"presence_id": f"{u}@{d}", "callstate": "RINGING"} for u, d in ringing],
    )


def test_each_domain_is_answered_from_the_box_its_registrations_are_on():
    box1 = _box(registered=[("1001", A), ("1002", A)], in_call=[("1002", A)])
    box2 = _box(registered=[("1001", B)])
    merged = merge([("fs1:8021", box1), ("fs2:8021", box2)], {})
    assert availability(merged, "1001", A) is Availability.AVAILABLE
    assert availability(merged, "1002", A) is Availability.IN_CALL
    assert availability(merged, "1001", B) is Availability.AVAILABLE
    assert availability(merged, "1003", B) is Availability.OFFLINE  # every box answered
    assert merged.box_of("1001", A) == "fs1:8021" and merged.box_of("1001", B) == "fs2:8021"
    assert merged.box_of("1003", B) is None


def test_channels_of_every_box_count_and_the_first_box_of_two_registrations_is_its_box():
    # 1001 has a phone on each box; a call of 1001@A goes through box 2
    box1 = _box(registered=[("1001", A), ("1002", A)])
    box2 = _box(registered=[("1001", A)], in_call=[("1002", A)], ringing=[("1003", A)])
    merged = merge([("fs1:8021", box1), ("fs2:8021", box2)], {})
    assert availability(merged, "1002", A) is Availability.IN_CALL
    assert availability(merged, "1003", A) is Availability.RINGING
    assert merged.box_of("1001", A) == "fs1:8021"
    reversed_order = merge([("fs2:8021", box2), ("fs1:8021", box1)], {})
    assert reversed_order.box_of("1001", A) == "fs2:8021"


def test_a_box_down_makes_unknown_only_what_could_be_on_it():
    box1 = _box(registered=[("1001", A)])
    # box 2 held domain B when it was last read, and is down now
    merged = merge([("fs1:8021", box1), ("fs2:8021", None)], {"fs2:8021": frozenset({B})})
    assert availability(merged, "1001", A) is Availability.AVAILABLE  # on the live box
    assert availability(merged, "1002", A) is Availability.OFFLINE  # A is on box 1 only
    assert availability(merged, "1001", B) is Availability.UNKNOWN  # B's phones are on box 2
    assert availability(merged, "1001", "c.example.com") is Availability.UNKNOWN  # nowhere seen
    assert merged.down == frozenset({"fs2:8021"})
    # a box never read could hold any domain
    never = merge([("fs1:8021", box1), ("fs2:8021", None)], {})
    assert availability(never, "1001", A) is Availability.AVAILABLE
    assert availability(never, "1002", A) is Availability.UNKNOWN
    # a domain on both boxes: its phones not on the live box may be on the other
    both = merge([("fs1:8021", box1), ("fs2:8021", None)], {"fs2:8021": frozenset({A})})
    assert availability(both, "1002", A) is Availability.UNKNOWN
    assert merge([("fs1:8021", None), ("fs2:8021", None)], {"fs1:8021": frozenset()}) is None


users = st.tuples(st.sampled_from(["100", "1001", "1002"]), st.sampled_from([A, B]))
rows = st.lists(users, max_size=4)


@given(
    boxes=st.lists(st.tuples(rows, rows, st.booleans(), st.none() | st.sets(
        st.sampled_from([A, B]))), min_size=1, max_size=3),
    asked=users,
)
def test_never_available_unless_registered_on_a_live_box(boxes, asked):
    read, last = [], {}
    for n, (registered, busy, up, seen) in enumerate(boxes):
        name = f"fs{n}:8021"
        read.append((name, _box(registered=registered, in_call=busy) if up else None))
        if seen is not None:
            last[name] = frozenset(seen)
    merged = merge(read, last)
    result = availability(merged, *asked)
    live = [s for _, s in read if s is not None]
    if result is Availability.AVAILABLE:
        assert any(asked in s.registered for s in live)
        assert not any(asked in s.answered for s in live)
        assert merged is not None and merged.box_of(*asked) is not None
    if result is Availability.OFFLINE:  # only when no box that is down could have it
        for name, snapshot in read:
            if snapshot is None:
                assert name in last and asked[1] not in last[name]


async def test_two_switches_each_answers_for_its_domain_and_a_box_down_is_unknown(nursery):
    async with open_freeswitch_sims(2) as (fs1, fs2):
        settings = load_settings({"ESL_HOST": esl_hosts([fs1, fs2])})
        boxes = Boxes.connect(settings)
        assert boxes.names == tuple(f"127.0.0.1:{s.inbound_ports[0]}" for s in (fs1, fs2))
        nursery.start_soon(boxes.run_clients)
        nursery.start_soon(boxes.run_monitors)
        fs1.register("1001", A)
        fs2.register("1001", B)
        with trio.fail_after(10):
            for client in boxes.clients.values():
                await client.connection()
            snapshot = await boxes.snapshot()
            assert await boxes.snapshot() is snapshot  # nothing changed: not read nor merged
            assert availability(snapshot, "1001", A) is Availability.AVAILABLE
            assert availability(snapshot, "1001", B) is Availability.AVAILABLE
            assert availability(snapshot, "1002", B) is Availability.OFFLINE
            assert snapshot.box_of("1001", B) == boxes.names[1]
            # each box was asked for its own listing, once
            for sim in (fs1, fs2):
                assert sim.inbound_commands("api show registrations") == [
                    "api show registrations as json"]
            changed = boxes.changed
            fs2.register("1002", B)  # an event on box 2 makes the merged answer stale
            await changed.wait()
            assert await boxes.of("1002", B) is Availability.AVAILABLE
            fs2.stop_inbound()  # box 2 goes down
            while boxes.clients[boxes.names[1]].connected:
                await boxes.clients[boxes.names[1]].wait_changed()
            snapshot = await boxes.snapshot()
            assert snapshot is not None and snapshot.down == frozenset({boxes.names[1]})
            assert availability(snapshot, "1001", A) is Availability.AVAILABLE  # box 1's
            assert availability(snapshot, "1001", B) is Availability.UNKNOWN  # box 2's
            assert availability(snapshot, "1002", B) is Availability.UNKNOWN
            assert availability(snapshot, "1002", A) is Availability.OFFLINE
    nursery.cancel_scope.cancel()
