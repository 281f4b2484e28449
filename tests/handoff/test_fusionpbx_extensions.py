"""What the domain's own FusionPBX rows decide about a handoff, on 5.5 (boolean flags) and 5.4
(text flags): disabled extensions, voicemail boxes, forward-all, follow-me, and whom to ring when
no destination is configured at all."""

from __future__ import annotations

import pytest
import trio

from callcontrol.destinations.fusionpbx import extension_state, extension_states
from callcontrol.testing.database import (
    EVERY_PBX,
    StockPBX,
    add_destination,
    add_domain,
    add_extension,
    add_ring_group,
    add_voicemail,
)
from callcontrol.testing.freeswitch import Answer, Busy
from tests.handoff.test_handoff_e2e import direct_flow, lines, originates

BOTH = [StockPBX("5.5.7"), StockPBX("5.4.4")]
SUPORTE = "user/1001@pbx.example.com"


def targets(call) -> list[str]:
    return [c.line.rsplit("}", 1)[1] for c in originates(call)]


async def suporte(pbx, **extension):
    await add_extension(pbx.db, pbx.domain_uuid, "1001", **extension)
    await add_destination(pbx.db, pbx.domain_uuid, "Suporte", "extension", "1001",
                          fallback_action="voicemail")  # fmt: skip


@pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)
async def test_ai_down_voicemail_fallback_goes_to_an_enabled_box(pbx, autojump_clock):
    await suporte(pbx)
    await add_voicemail(pbx.db, pbx.domain_uuid, "1001")
    pbx.sim.endpoints[SUPORTE] = Busy()
    results = []
    call = pbx.call(direct_flow(pbx, "suporte", results))
    with trio.fail_after(60):
        await call.wait_closed()
    assert f"api uuid_transfer {call.uuid} *991001 XML pbx.example.com" in lines(call)
    assert results[0].final == "voicemail"


@pytest.mark.parametrize("fusionpbx_schema", BOTH, ids=str)
@pytest.mark.parametrize("box", ["missing", "disabled"])
async def test_no_enabled_box_means_no_star99_but_a_goodbye(pbx, autojump_clock, box):
    await suporte(pbx)
    if box == "disabled":
        await add_voicemail(pbx.db, pbx.domain_uuid, "1001", enabled=False)
    pbx.sim.endpoints[SUPORTE] = Busy()
    results = []
    call = pbx.call(direct_flow(pbx, "suporte", results))
    with trio.fail_after(60):
        await call.wait_gone()
    assert not any("*99" in line for line in lines(call))
    assert results[0].final == "goodbye"


@pytest.mark.parametrize("fusionpbx_schema", BOTH, ids=str)
async def test_a_disabled_extension_is_never_rung(pbx, autojump_clock):
    await suporte(pbx, enabled=False)
    call = pbx.call(pbx.transfer_flow("suporte"))
    reply = await pbx.next_reply()
    assert (reply.status, reply.cause) == ("unavailable", "EXTENSION_DISABLED")
    assert originates(call) == []


@pytest.mark.parametrize("fusionpbx_schema", BOTH, ids=str)
async def test_forward_all_to_another_extension_rings_that_one(pbx, autojump_clock):
    await suporte(pbx, forward_all="1002")
    await add_extension(pbx.db, pbx.domain_uuid, "1002")
    pbx.sim.endpoints["user/1002@pbx.example.com"] = Answer(after=1.0)
    call = pbx.call(pbx.transfer_flow("suporte"))
    reply = await pbx.next_reply()
    assert reply.status == "success" and reply.destination == "Suporte"
    assert targets(call) == ["user/1002@pbx.example.com &park()"]


async def test_forward_all_elsewhere_goes_through_the_domains_dialplan(pbx, autojump_clock):
    await suporte(pbx, forward_all="011988887777")
    pbx.sim.endpoints["loopback/011988887777/pbx.example.com"] = Answer(after=1.0)
    call = pbx.call(pbx.transfer_flow("suporte"))
    assert (await pbx.next_reply()).status == "success"
    assert targets(call) == ["loopback/011988887777/pbx.example.com &park()"]


async def test_follow_me_is_not_applied_the_desk_phone_rings(pbx, autojump_clock):
    await suporte(pbx, follow_me=True)
    pbx.sim.endpoints[SUPORTE] = Answer(after=1.0)
    call = pbx.call(pbx.transfer_flow("suporte"))
    assert (await pbx.next_reply()).status == "success"
    assert targets(call) == [f"{SUPORTE} &park()"]


@pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)
async def test_ai_down_with_no_destination_configured_rings_the_domains_ring_group(
    pbx, autojump_clock
):
    await add_extension(pbx.db, pbx.domain_uuid, "1000", name="Recepção")
    await add_ring_group(pbx.db, pbx.domain_uuid, "9001", "Vendas")
    await add_ring_group(pbx.db, pbx.domain_uuid, "9000", "Atendimento")
    await add_ring_group(pbx.db, pbx.domain_uuid, "8000", "Desligado", enabled=False)
    pbx.sim.endpoints["loopback/9000/pbx.example.com"] = Answer(after=1.0)
    results = []
    call = pbx.call(direct_flow(pbx, "", results))
    with trio.fail_after(60):
        await call.wait_for(lambda: call.bridged_to is not None)
    assert targets(call) == ["loopback/9000/pbx.example.com &park()"]
    await call.hangup()


async def test_with_only_extensions_the_first_one_not_in_dnd_is_rung(pbx, autojump_clock):
    await add_extension(pbx.db, pbx.domain_uuid, "1000", do_not_disturb=True)
    await add_extension(pbx.db, pbx.domain_uuid, "1001", enabled=False)
    await add_extension(pbx.db, pbx.domain_uuid, "1002", name="Ana")
    pbx.sim.endpoints["user/1002@pbx.example.com"] = Answer(after=1.0)
    call = pbx.call(pbx.transfer_flow("atendimento"))
    reply = await pbx.next_reply()
    assert (reply.status, reply.destination) == ("success", "Ana")
    assert targets(call) == ["user/1002@pbx.example.com &park()"]


async def test_a_configured_domain_never_falls_back_to_its_ring_groups(pbx, autojump_clock):
    await add_ring_group(pbx.db, pbx.domain_uuid, "9000", "Atendimento")
    await suporte(pbx)  # a destination exists, but no default
    call = pbx.call(pbx.transfer_flow("financeiro"))
    reply = await pbx.next_reply()
    assert reply.status == "no_destination"
    assert originates(call) == []


@pytest.mark.parametrize("fusionpbx_schema", BOTH, ids=str)
async def test_extension_states_read_together_are_each_what_it_reads_alone(pbx):
    domain = pbx.domain_uuid
    await add_extension(pbx.db, domain, "1001", do_not_disturb=True)
    await add_extension(pbx.db, domain, "1002", forward_all="1001", follow_me=True)
    await add_extension(pbx.db, domain, "1003", enabled=False)
    await add_extension(pbx.db, domain, "1004", dial_string="error/user_busy")
    other = await add_domain(pbx.db, "other.example.com")
    await add_extension(pbx.db, other, "1001")
    keys = [(domain, n) for n in ("1001", "1002", "1003", "1004", "1999")] + [(other, "1001")]
    together = await extension_states(pbx.db, keys)
    alone = {key: await extension_state(pbx.db, *key) for key in keys}
    assert together == alone
    assert together[(domain, "1001")].dnd and not together[(other, "1001")].dnd
    assert not together[(domain, "1999")].exists
