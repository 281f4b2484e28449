"""A restarted ``serve`` kills the agent legs a killed run of the same instance left behind,
and nothing else (issue 12: "a restarted serve cleans up legs tagged with its instance")."""

from __future__ import annotations

import structlog
import trio
import trio.testing

from callcontrol.config import load_settings
from callcontrol.orphans import kill_orphaned_legs
from callcontrol.testing.freeswitch import Answer, Manual, open_freeswitch_sim

DOMAIN = "pbx.example.com"


def _originate(sim, leg, dial, *, instance="callcontrol", caller="a0000000-0000-4000-8000-0000000"
                                                                  "00000"):
    sim.bgapi(f"originate {{origination_uuid={leg},callcontrol_instance={instance},"
              f"callcontrol_call_uuid={caller}}}{dial} &park()", sim.new_uuid())


def _settings(port, **extra):
    return load_settings({"ESL_HOST": "127.0.0.1", "ESL_PORT": str(port), **extra})


async def test_a_restart_kills_only_the_legs_nobody_talks_on(autojump_clock):
    async with open_freeswitch_sim(domain=DOMAIN) as sim:
        sim.endpoints[f"user/1003@{DOMAIN}"] = Manual()  # rings until told
        sim.endpoints[f"user/1001@{DOMAIN}"] = Answer()
        listeners = await sim.serve_inbound()
        port = listeners[0].socket.getsockname()[1]
        ringing = "11111111-0000-4000-8000-000000000001"
        answered_parked = "11111111-0000-4000-8000-000000000002"
        other_instance = "11111111-0000-4000-8000-000000000003"
        _originate(sim, ringing, f"user/1003@{DOMAIN}")
        _originate(sim, answered_parked, f"user/1001@{DOMAIN}")
        _originate(sim, other_instance, f"user/1003@{DOMAIN}", instance="cc-box2")
        # a conversation our killed run had bridged: FreeSWITCH's own, never touched
        ours, theirs = trio.testing.memory_stream_pair()
        caller = sim.attach_outbound(ours)
        bridged_agent = "11111111-0000-4000-8000-000000000004"
        _originate(sim, bridged_agent, f"user/1001@{DOMAIN}")
        await sim.wait_for(lambda: all(
            u in sim.channels for u in (ringing, answered_parked, other_instance, bridged_agent)))
        await sim.wait_for(lambda: sim.leg(bridged_agent).parked)
        await sim.api(f"uuid_bridge {caller.uuid} {bridged_agent}")
        await sim.wait_for(lambda: caller.bridged_to == bridged_agent)
        await sim.wait_for(lambda: sim.leg(answered_parked).parked)

        with structlog.testing.capture_logs() as logs:
            killed = await kill_orphaned_legs(_settings(port))

        assert killed == 2
        await sim.leg(ringing).wait_gone()
        await sim.leg(answered_parked).wait_gone()
        assert sim.leg(ringing).hangup_cause == "ORIGINATOR_CANCEL"
        assert sim.leg(other_instance).alive  # another instance's call
        assert sim.leg(bridged_agent).alive and caller.bridged_to == bridged_agent
        names = [e["event"] for e in logs]
        assert names.count("server.orphan_leg_killed") == 2
        await theirs.aclose()


async def test_a_leg_whose_caller_is_under_a_socket_is_kept(autojump_clock):
    # same CALLCONTROL_INSTANCE_ID on two processes: the other one is ringing for a live caller
    async with open_freeswitch_sim(domain=DOMAIN) as sim:
        sim.endpoints[f"user/1003@{DOMAIN}"] = Manual()
        listeners = await sim.serve_inbound()
        port = listeners[0].socket.getsockname()[1]
        ours, theirs = trio.testing.memory_stream_pair()
        caller = sim.attach_outbound(ours)
        leg = "22222222-0000-4000-8000-000000000001"
        _originate(sim, leg, f"user/1003@{DOMAIN}", caller=caller.uuid)
        await sim.wait_for(lambda: leg in sim.channels)
        assert await kill_orphaned_legs(_settings(port)) == 0
        assert sim.leg(leg).alive
        await theirs.aclose()


async def test_without_an_event_socket_the_start_goes_on_with_a_warning(autojump_clock):
    with structlog.testing.capture_logs() as logs:
        assert await kill_orphaned_legs(_settings(1)) == 0
    warning = next(e for e in logs if e["event"] == "server.orphans_not_checked")
    assert "originate_timeout" in warning["effect"]


async def test_a_wrong_password_is_a_warning_not_a_failed_start(autojump_clock):
    async with open_freeswitch_sim(domain=DOMAIN) as sim:
        listeners = await sim.serve_inbound(password="secret")
        port = listeners[0].socket.getsockname()[1]
        with structlog.testing.capture_logs() as logs:
            assert await kill_orphaned_legs(_settings(port, ESL_PASSWORD="wrong")) == 0
        assert any(e["event"] == "server.orphans_not_checked" for e in logs)


async def test_every_box_of_esl_host_is_cleaned_and_one_down_is_named(autojump_clock):
    from callcontrol.testing.freeswitch import esl_hosts, open_freeswitch_sims

    async with open_freeswitch_sims(2, domain=DOMAIN) as sims:
        legs = ["33333333-0000-4000-8000-000000000001", "33333333-0000-4000-8000-000000000002"]
        for sim, leg in zip(sims, legs, strict=True):
            sim.endpoints[f"user/1003@{DOMAIN}"] = Manual()
            _originate(sim, leg, f"user/1003@{DOMAIN}")
            await sim.wait_for(lambda sim=sim, leg=leg: leg in sim.channels)
        hosts = f"{esl_hosts(sims)},127.0.0.1:1"  # a third box that is not there
        with structlog.testing.capture_logs() as logs:
            assert await kill_orphaned_legs(load_settings({"ESL_HOST": hosts})) == 2
        for sim, leg in zip(sims, legs, strict=True):
            await sim.leg(leg).wait_gone()
            assert sim.inbound_commands("api uuid_kill") == [f"api uuid_kill {leg} "
                                                             "ORIGINATOR_CANCEL"]
    [down] = [e for e in logs if e["event"] == "server.orphans_not_checked"]
    assert down["esl"] == "127.0.0.1:1"
    checked = sorted(e["esl"] for e in logs if e["event"] == "server.orphans_checked")
    assert checked == sorted(f"127.0.0.1:{s.inbound_ports[0]}" for s in sims)
