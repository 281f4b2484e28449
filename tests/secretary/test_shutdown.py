"""SIGTERM for each state a call can be in (issue 12 items 2-4), through the real ``serve``:
what FreeSWITCH is told, where the caller ends up, what is stored, and that nothing is left
ringing. The simulated switch runs the shipped dialplan's fallback after ``socket``
(``transfer 9000 XML default``) once our socket is gone, as the real one does."""

from __future__ import annotations

import structlog
import trio

from callcontrol.config import HostPort
from callcontrol.secretary import secretary_flow
from callcontrol.server import App, serve
from callcontrol.testing.freeswitch import Answer, Busy, Manual
from callcontrol.testing.realtime import (
    AwaitClient,
    AwaitToolOutput,
    CallTool,
    Close,
    GoSilent,
    Say,
)
from tests.secretary.conftest import ATENDIMENTO, SUPORTE

GREETING = [AwaitClient("response.create"), Say("Clínica Exemplo, bom dia!", ms=60)]
HANDOFF = [*GREETING, CallTool("request_handoff", {"destination": "suporte", "reason": "x"})]
NOT_PLANNED = ("call.crashed", "call.flow_failed", "call.cleanup_failed", "call.cleanup_timeout",
               "handoff.socket_gone_during_wind_down")


class Server:
    """``serve`` on a TCP port with the secretary flow; ``stop()`` is SIGTERM."""

    def __init__(self, office, services, grace: float) -> None:
        self.office = office
        self.app = App(settings=services.settings, flow=secretary_flow, services=services,
                       shutdown_grace=grace)
        self.stopped = trio.Event()
        self.port = 0

    async def start(self) -> None:
        async def run(task_status=trio.TASK_STATUS_IGNORED) -> None:
            await serve(self.app, HostPort("127.0.0.1", 0), task_status=task_status)
            self.stopped.set()

        listeners = await self.office.nursery.start(run)
        self.port = listeners[0].socket.getsockname()[1]

    async def call(self):
        return await self.office.sim.place_call(
            "127.0.0.1", self.port, caller_number="5511988887777", caller_name="Maria Souza",
            variables={"domain_uuid": str(self.office.domain_uuid),
                       "domain_name": "pbx.example.com",
                       "voice_secretary_uuid": "00000000-0000-0000-0000-000000000000"})

    async def stop(self) -> None:
        self.app.shutting_down.set()
        with trio.fail_after(20):
            await self.stopped.wait()


async def _serve(office, url, grace=0.5):
    server = Server(office, office.services(url), grace)
    await server.start()
    return server


def lines(call):
    return [c.line for c in call.commands]


async def _row(office, call):
    return await office.db.fetch_one(
        "SELECT outcome, handoff_status FROM callcontrol_calls WHERE call_uuid = %(u)s",
        {"u": call.uuid})


def _unplanned(logs):
    return [e["event"] for e in logs if e["event"] in NOT_PLANNED]


async def test_talking_to_the_ai_the_call_goes_to_the_dialplan_fallback(office):
    async with office.model([*GREETING, GoSilent()], strict=False) as (server_ai, url):
        server = await _serve(office, url)
        call = await server.call()
        with trio.fail_after(10):
            await server_ai.wait_for(lambda: bool(server_ai.sessions))
        with structlog.testing.capture_logs() as logs:
            await server.stop()
    sent = lines(call)
    assert sent[-3:] == [f"api uuid_break {call.uuid} all", "resume", "exit"]
    with trio.fail_after(5):
        await call.wait_for(lambda: call.reached is not None)
    assert call.reached == "9000 XML default" and call.alive and call.playing is None
    assert await _row(office, call) == {"outcome": "handed_back", "handoff_status": None}
    assert not _unplanned(logs)


async def _stop_while_a_leg_rings_on_hold(office, script, dial_prefix):
    """SIGTERM while the caller hears hold music and a leg dialled as ``dial_prefix`` rings;
    checks what every such stop must do: that leg killed once before ``resume`` + ``exit``,
    nothing left ringing, the music off and the dialplan's fallback reached, no traceback."""
    async with office.model(script, strict=False) as (_ai, url):
        server = await _serve(office, url)
        call = await server.call()
        with trio.fail_after(10):
            leg = await office.sim.wait_for_leg(dial_prefix)
            await leg.wait_for(lambda: leg.ringing)
            await call.wait_for(lambda: call.playing == "local_stream://moh")
        with structlog.testing.capture_logs() as logs:
            await server.stop()
    sent = lines(call)
    kill = f"api uuid_kill {leg.uuid} ORIGINATOR_CANCEL"
    assert sent.count(kill) == 1
    assert sent.index(kill) < sent.index("resume") < sent.index("exit")
    assert not leg.alive  # nothing left ringing once serve has returned
    with trio.fail_after(5):
        await call.wait_for(lambda: call.reached is not None)
    assert call.playing is None  # the dialplan really ran: no endless music in its way
    assert call.reached == "9000 XML default"
    assert not _unplanned(logs)
    return call, url


async def test_on_hold_while_an_agent_rings_the_leg_dies_and_the_music_stops(office):
    office.sim.endpoints[SUPORTE] = Manual()
    call, _url = await _stop_while_a_leg_rings_on_hold(office, [*HANDOFF, GoSilent()],
                                                       "sofia/internal/1001@")  # fmt: skip
    assert await _row(office, call) == {"outcome": "handed_back", "handoff_status": "cancelled"}


async def test_a_conversation_with_an_agent_is_left_alone(office):
    office.sim.endpoints[SUPORTE] = Answer(after=0.2)
    async with office.model([*HANDOFF, GoSilent()], strict=False) as (_ai, url):
        server = await _serve(office, url, grace=60)  # not waited for: it needs no socket
        call = await server.call()
        with trio.fail_after(10):
            await call.wait_for(lambda: call.bridged_to is not None)
        agent = office.sim.leg(call.bridged_to)
        with structlog.testing.capture_logs() as logs:
            await server.stop()
    sent = lines(call)
    assert "resume" not in sent and sent[-1] == "exit"
    assert f"api uuid_setvar {call.uuid} hangup_after_bridge true" in sent
    assert call.bridged_to == agent.uuid and agent.alive  # still talking after serve exits
    assert await _row(office, call) == {"outcome": "bridged", "handoff_status": "success"}
    assert not _unplanned(logs)
    # when the agent hangs up, the caller's leg ends too: not parked in silence, not rung again
    await agent.hangup()
    with trio.fail_after(5):
        await call.wait_gone()
    assert call.reached is None


async def test_an_agent_answering_during_the_drain_is_bridged_then_left_alone(office):
    office.sim.endpoints[SUPORTE] = Manual()
    async with office.model([*HANDOFF, GoSilent()], strict=False) as (_ai, url):
        server = await _serve(office, url, grace=60)
        call = await server.call()
        with trio.fail_after(10):
            leg = await office.sim.wait_for_leg("sofia/internal/1001@")
            await leg.wait_for(lambda: leg.ringing)
        server.app.shutting_down.set()
        await leg.answer()
        await server.stop()
    assert call.bridged_to == leg.uuid and leg.alive
    assert "resume" not in lines(call)


async def test_a_second_signal_hands_back_at_once(office):
    async with office.model([*GREETING, GoSilent()], strict=False) as (server_ai, url):
        server = await _serve(office, url, grace=3600)
        call = await server.call()
        with trio.fail_after(10):
            await server_ai.wait_for(lambda: bool(server_ai.sessions))
        server.app.shutting_down.set()
        server.app.stop_now.set()
        await server.stop()  # fails after 20 s: the hour of grace was not waited for
    assert lines(call)[-2:] == ["resume", "exit"]


async def test_after_a_reparking_hold_the_call_is_sent_to_the_default_destination(office):
    # unicast takes the caller off hold with `uuid_transfer <a> park inline`: the extension
    # with the dialplan's fallback is gone, so `resume` would lead nowhere
    office.sim.endpoints[SUPORTE] = Busy()
    script = [*HANDOFF, AwaitToolOutput(timeout=15), Say("Ocupado.", ms=60), GoSilent()]
    async with office.model(script, strict=False) as (server_ai, url):
        server = await _serve(office, url)
        call = await server.call()
        with trio.fail_after(15):
            await server_ai.wait_for(lambda: bool(server_ai.sessions
                                                  and server_ai.last.tool_outputs))
        await server.stop()
    sent = lines(call)
    assert "resume" not in sent
    assert f"api uuid_transfer {call.uuid} 9000 XML pbx.example.com" in sent
    with trio.fail_after(5):
        await call.wait_for(lambda: call.reached is not None)
    assert call.reached == "9000 XML pbx.example.com" and call.alive


async def test_in_the_ai_failure_path_the_default_leg_dies_and_the_dialplan_takes_over(office):
    # the AI went away, the fallback prompt played and the default destination rings on hold
    # music: SIGTERM kills that leg once, stops the music and resumes the dialplan's fallback
    office.sim.endpoints[ATENDIMENTO] = Manual()
    call, url = await _stop_while_a_leg_rings_on_hold(
        office, [*GREETING, Close(1011, "internal error")], "loopback/")
    prompt = office.services(url).settings.fallback_prompt
    assert any(v == prompt for c in call.commands for _, v in c.headers)  # it was played
    assert (await _row(office, call))["outcome"] == "handed_back"
