"""An answered call never just dies (issue 11): a bug or a failing query inside a call takes
the no-AI path (a prompt at once, the default destination on hold music); when even that
fails, the call is handed back to the dialplan — hold music stopped, then ``resume`` — so its
fallback runs. What is stored says what happened."""

from __future__ import annotations

import structlog
import trio

import callcontrol.secretary as secretary
from callcontrol.handoff.runner import HandoffRunner
from callcontrol.testing.freeswitch import Answer, Manual
from callcontrol.testing.realtime import AwaitClient, CallTool, GoSilent, Say
from tests.secretary.conftest import ATENDIMENTO, SUPORTE, wait_for_command

FALLBACK_PROMPT = "tone_stream://%(300,200,440);loops=2"
HANDOFF = [
    AwaitClient("response.create"),
    Say("Clínica Exemplo, bom dia!", ms=60),
    CallTool("request_handoff", {"destination": "suporte", "reason": "exame"}),
    GoSilent(),
]


def lines(call):
    return [c.line for c in call.commands]


async def _row(office, call):
    return await office.db.fetch_one(
        "SELECT outcome, handoff_status, handoff_destination FROM callcontrol_calls"
        " WHERE call_uuid = %(u)s", {"u": call.uuid})


async def test_a_bug_before_the_ai_speaks_takes_the_no_ai_path(office, monkeypatch):
    async def broken(*_args, **_kwargs):
        raise RuntimeError("a bug in session_config")

    monkeypatch.setattr(secretary, "session_config", broken)
    office.sim.endpoints[ATENDIMENTO] = Answer(after=0.2)
    async with office.model([GoSilent()], strict=False) as (_server, url):
        call = office.call(office.services(url))
        with structlog.testing.capture_logs() as logs:
            answered = await wait_for_command(call, "answer")
            prompt = await wait_for_command(call, FALLBACK_PROMPT)
            with trio.fail_after(10):
                await call.wait_for(lambda: call.bridged_to is not None)
        assert prompt.at - answered.at < 2.0  # never dead air
        await call.hangup()
        with trio.fail_after(10):
            await call.wait_closed()
    errors = [e for e in logs if e["event"] == "call.error"]
    assert len(errors) == 1 and errors[0]["log_level"] == "error"
    assert await _row(office, call) == {"outcome": "bridged", "handoff_status": "success",
                                        "handoff_destination": "Atendimento"}
    assert office.metrics.value("voice_ai_failures_total", kind="error") == 1


async def test_a_bug_while_an_agent_rings_kills_that_leg_then_rings_the_default(office,
                                                                             monkeypatch):
    office.sim.endpoints[SUPORTE] = Manual()
    office.sim.endpoints[ATENDIMENTO] = Answer(after=0.2)
    original = HandoffRunner._step
    failed = []

    async def step_that_fails_once(self):
        if not failed:
            failed.append(True)
            raise RuntimeError("a bug while ringing")
        await original(self)

    monkeypatch.setattr(HandoffRunner, "_step", step_that_fails_once)
    async with office.model(HANDOFF, strict=False) as (_server, url):
        call = office.call(office.services(url))
        with trio.fail_after(10):
            leg = await office.sim.wait_for_leg("sofia/internal/1001@")
            await call.wait_for(lambda: call.bridged_to is not None)
        assert not leg.alive and leg.hangup_cause == "ORIGINATOR_CANCEL"
        sent = lines(call)
        kill = f"api uuid_kill {leg.uuid} ORIGINATOR_CANCEL"
        break_all = f"api uuid_break {call.uuid} all"
        assert sent.count(kill) == 1
        assert sent.index(kill) < sent.index(break_all)  # nobody rung beside the default
        after = call.commands[sent.index(break_all):]
        assert any(FALLBACK_PROMPT in dict(c.headers).values() for c in after)
        assert office.sim.leg(call.bridged_to).channel.name.startswith("loopback/9000")
        await call.hangup()
        with trio.fail_after(10):
            await call.wait_closed()
    assert await _row(office, call) == {"outcome": "bridged", "handoff_status": "success",
                                        "handoff_destination": "Atendimento"}


async def test_when_even_the_no_ai_path_fails_the_dialplan_takes_the_call(office):
    # the directory's table is gone: the AI's handoff fails, and so does the fallback's
    await office.db.execute("DROP TABLE v_voice_transfer_destinations CASCADE")
    async with office.model(HANDOFF, strict=False) as (_server, url):
        call = office.call(office.services(url))
        with structlog.testing.capture_logs() as logs:
            with trio.fail_after(15):
                await call.wait_closed()
                await call.wait_for(lambda: call.reached is not None)
    sent = lines(call)
    assert sent[-3:] == [f"api uuid_break {call.uuid} all", "resume", "exit"]
    assert call.reached == "9000 XML default" and call.alive
    assert call.playing is None
    events = [e["event"] for e in logs]
    assert "call.error" in events and "call.flow_failed" in events
    assert "call.crashed" not in events
    assert (await _row(office, call))["outcome"] == "handed_back"
