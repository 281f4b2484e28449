"""The extension's state off the way to the ring: a handoff rings on the state the previous
one read, reads it again while it rings, and still honours a DND switched on meanwhile."""

from __future__ import annotations

import re
from typing import Any

import pytest
import trio
import trio.testing

from callcontrol.testing.freeswitch import Answer, Busy, Manual
from tests.handoff.test_handoff_e2e import SUPORTE, SUPORTE_CHANNEL, add_suporte, lines, originates


class HeldReads:
    """The real database, except that a read of an extension's state waits for ``release``."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.release = trio.Event()
        self.began = trio.Event()
        self.started = 0
        self.finished = 0

    async def _held(self, read: Any, query: Any, params: Any) -> Any:
        self.started += 1
        self.began.set()
        await self.release.wait()
        rows = await read(query, params)
        self.finished += 1
        return rows

    async def fetch_one(self, query: Any, params: Any = None) -> Any:
        return await self._held(self.db.fetch_one, query, params)

    async def fetch_all(self, query: Any, params: Any = None) -> Any:  # the rechecks, gathered
        return await self._held(self.db.fetch_all, query, params)


async def warmed(pbx: Any, **destination: Any) -> HeldReads:
    """Suporte (1001) answered once, so its state is known; later reads of it are held."""
    await add_suporte(pbx, **destination)
    pbx.sim.endpoints[SUPORTE] = Answer(after=1.0)
    first = pbx.call(pbx.transfer_flow("suporte"))
    assert (await pbx.next_reply()).status == "success"
    await first.hangup()
    held = HeldReads(pbx.db)
    pbx.service.states.db = held
    return held


async def set_dnd(pbx: Any) -> None:
    await pbx.db.execute(
        "UPDATE v_extensions SET do_not_disturb = 'true' WHERE domain_uuid = %s"
        " AND extension = '1001'", (pbx.domain_uuid,)
    )  # fmt: skip


async def ringing(call: Any, count: int = 1) -> None:
    # On MockClock a handoff stuck on its read jumps straight to this deadline: a failure.
    with trio.fail_after(600):
        await call.wait_for(lambda: len(originates(call)) == count)


async def test_the_originate_does_not_wait_for_the_extension_state(pbx, autojump_clock):
    held = await warmed(pbx)
    call = pbx.call(pbx.transfer_flow("suporte"))
    await ringing(call)
    assert held.finished == 0  # it rings before the state is read again
    await held.began.wait()
    assert held.started == 1  # read again while it rings, and not back yet
    held.release.set()
    reply = await pbx.next_reply()
    assert reply.status == "success"
    assert held.finished == 1
    await call.hangup()


async def test_dnd_found_while_it_rings_kills_the_leg_and_is_reported(pbx, autojump_clock):
    held = await warmed(pbx)
    await set_dnd(pbx)
    pbx.sim.endpoints[SUPORTE] = Manual()  # a switch slower to refuse than our read
    call = pbx.call(pbx.transfer_flow("suporte"))
    await ringing(call)
    # this call's leg, by the UUID it was originated with (the warm-up call's leg is in the
    # switch's list too, and this one may not be created yet)
    [ours] = re.findall(r"origination_uuid=([0-9a-f-]{36})", originates(call)[-1].line)
    held.release.set()
    reply = await pbx.next_reply()
    assert reply.status == "dnd" and reply.cause == "DO_NOT_DISTURB"
    assert reply.message == "O ramal do Suporte está em modo não perturbe agora."
    leg = pbx.sim.leg(ours)
    await leg.wait_gone()
    assert f"api uuid_kill {ours} ORIGINATOR_CANCEL" in lines(call)
    assert not any(line.startswith("api uuid_bridge") for line in lines(call))
    assert call.playing is None  # the hold music stopped before the AI speaks


@pytest.mark.parametrize("retries", [0, 2])
async def test_busy_from_a_phone_put_in_dnd_is_dnd_and_not_rung_again(pbx, autojump_clock,
                                                                       retries):  # fmt: skip
    held = await warmed(pbx, max_retries=retries, retry_delay_seconds=5)
    await set_dnd(pbx)
    # What FusionPBX's directory makes of a DND extension: error/user_busy.
    pbx.sim.endpoints[SUPORTE] = Busy()
    call = pbx.call(pbx.transfer_flow("suporte"))
    await ringing(call)
    await trio.testing.wait_all_tasks_blocked()  # the busy is in; the read still held
    assert held.finished == 0
    held.release.set()
    reply = await pbx.next_reply()
    assert reply.status == "dnd" and reply.cause == "DO_NOT_DISTURB"
    assert len(originates(call)) == 1
    assert pbx.metrics.value(
        "voice_transfers_total", status="dnd", destination_type="extension"
    ) == 1


async def test_a_state_older_than_max_age_is_read_before_ringing(pbx, autojump_clock):
    held = await warmed(pbx)
    held.release.set()
    await set_dnd(pbx)
    autojump_clock.jump(pbx.service.states.max_age + 1)
    call = pbx.call(pbx.transfer_flow("suporte"))
    reply = await pbx.next_reply()
    assert reply.status == "dnd"
    assert originates(call) == []
    assert pbx.sim.legs(SUPORTE_CHANNEL)[1:] == []  # only the first call's leg


async def set_forward_all(pbx: Any, to: str | None) -> None:
    await pbx.db.execute(
        "UPDATE v_extensions SET forward_all_enabled = %s, forward_all_destination = %s"
        " WHERE domain_uuid = %s AND extension = '1001'",
        ("true" if to else "false", to or "", pbx.domain_uuid),
    )  # fmt: skip


def legs_of(call: Any) -> list[tuple[str, str]]:
    """(origination_uuid, endpoint) of every originate the call sent, in order."""
    return [(re.findall(r"origination_uuid=([0-9a-f-]{36})", c.line)[0],
             c.line.rsplit("}", 1)[1]) for c in originates(call)]  # fmt: skip


async def test_forward_all_switched_on_while_it_rings_rings_the_new_target(pbx, autojump_clock):
    held = await warmed(pbx)
    await pbx.extension("1002")
    await set_forward_all(pbx, "1002")
    pbx.sim.endpoints[SUPORTE] = Manual()  # the desk phone would ring on and on
    pbx.sim.endpoints["user/1002@pbx.example.com"] = Answer(after=1.0)
    call = pbx.call(pbx.transfer_flow("suporte"))
    await ringing(call)
    held.release.set()
    reply = await pbx.next_reply()
    assert reply.status == "success" and reply.destination == "Suporte"
    (desk, desk_target), (_, forwarded) = legs_of(call)
    assert (desk_target, forwarded) == (f"{SUPORTE} &park()", "user/1002@pbx.example.com &park()")
    # the desk phone's leg was killed before the forward target rang, and only that one is
    # bridged
    said = lines(call)
    kill = said.index(f"api uuid_kill {desk} ORIGINATOR_CANCEL")
    assert kill < said.index(originates(call)[1].line)
    assert [line for line in said if line.startswith("api uuid_bridge")] == [
        f"api uuid_bridge {call.uuid} {legs_of(call)[1][0]}"]  # fmt: skip
    await call.hangup()


async def test_forward_all_switched_off_while_it_rings_rings_the_desk_phone(pbx, autojump_clock):
    await pbx.extension("1002")
    await add_suporte(pbx)
    await set_forward_all(pbx, "1002")
    pbx.sim.endpoints["user/1002@pbx.example.com"] = Answer(after=1.0)
    first = pbx.call(pbx.transfer_flow("suporte"))
    assert (await pbx.next_reply()).status == "success"  # rang 1002: cached with forward-all
    await first.hangup()
    held = HeldReads(pbx.db)
    pbx.service.states.db = held
    await set_forward_all(pbx, None)
    pbx.sim.endpoints["user/1002@pbx.example.com"] = Manual()
    pbx.sim.endpoints[SUPORTE] = Answer(after=1.0)
    call = pbx.call(pbx.transfer_flow("suporte"))
    await ringing(call)
    held.release.set()
    reply = await pbx.next_reply()
    assert reply.status == "success"
    assert [target for _, target in legs_of(call)] == [
        "user/1002@pbx.example.com &park()", f"{SUPORTE} &park()"]  # fmt: skip
    await call.hangup()


async def test_the_rechecks_of_handoffs_ringing_at_once_are_one_read(pbx, autojump_clock):
    held = await warmed(pbx)
    await set_dnd(pbx)
    pbx.sim.endpoints[SUPORTE] = Manual()
    calls = [pbx.call(pbx.transfer_flow("suporte")) for _ in range(3)]
    for call in calls:
        await ringing(call)
    await held.began.wait()
    await trio.testing.wait_all_tasks_blocked()
    assert held.started == 1  # one query for the three
    held.release.set()
    replies = [await pbx.next_reply() for _ in calls]
    assert [r.status for r in replies] == ["dnd"] * 3
