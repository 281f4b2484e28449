"""The attended transfer end to end: the real server handler and handoff engine against the
simulated FreeSWITCH (real ESL bytes) and a real PostgreSQL, on MockClock."""

from __future__ import annotations

import trio
import trio.testing

from callcontrol.testing.database import add_destination, add_voicemail
from callcontrol.testing.freeswitch import (
    Answer,
    Busy,
    Manual,
    NoAnswer,
    Reject,
    Unregistered,
    Voicemail,
)
from tests.handoff.conftest import MOH

SUPORTE = "user/1001@pbx.example.com"
SUPORTE_CHANNEL = "sofia/internal/1001@"


def lines(call) -> list[str]:
    return [c.line for c in call.commands]


def header(command, name):
    return dict(command.headers).get(name)


def originates(call):
    return [c for c in call.commands if c.line.startswith("bgapi originate")]


async def add_suporte(pbx, **columns):
    await pbx.extension("1001")
    await add_voicemail(pbx.db, pbx.domain_uuid, "1001")
    return await add_destination(
        pbx.db, pbx.domain_uuid, "Suporte", "extension", "1001",
        secretary_uuid=pbx.secretary_uuid, aliases=["suporte técnico"], department="TI",
        **columns,
    )


async def wait_reply(pbx):
    return await pbx.next_reply()


async def test_answered_agent_is_bridged_and_the_ai_leaves(pbx, autojump_clock):
    await add_suporte(pbx, ring_timeout_seconds=25)
    pbx.sim.endpoints[SUPORTE] = Answer(after=3.0)
    call = pbx.call(pbx.transfer_flow("quero falar com o suporte"))
    started = trio.current_time()
    reply = await wait_reply(pbx)
    assert reply.status == "success"
    assert reply.message == "Transferindo você para o Suporte."
    assert 3.0 <= trio.current_time() - started < 4.0

    sent = lines(call)
    originate = originates(call)[0]
    b_uuid = originate.line.split("origination_uuid=")[1].split(",")[0]
    # the agent leg is watched before it is originated, on the call's own socket
    assert sent.index(f"filter Unique-ID {b_uuid}") < sent.index(originate.line)
    assert "myevents" not in " ".join(sent)
    assert "originate_timeout=25" in originate.line
    assert "origination_caller_id_number=5511988887777" in originate.line
    assert "origination_caller_id_name='Maria Souza'" in originate.line
    assert "ignore_early_media=true" in originate.line
    assert f"callcontrol_call_uuid={call.uuid}" in originate.line
    assert originate.line.endswith("}user/1001@pbx.example.com &park()")
    assert header(originate, "Job-UUID")
    # hold music during the ring, stopped before the bridge
    moh = [c for c in call.commands if header(c, "execute-app-arg") == MOH]
    assert len(moh) == 1
    assert sent.index(f"api uuid_break {call.uuid} all") < sent.index(
        f"api uuid_bridge {call.uuid} {b_uuid}"
    )
    assert f"api uuid_setvar {call.uuid} park_after_bridge true" in sent
    assert call.bridged_to == b_uuid
    assert pbx.metrics.value(
        "voice_transfers_total", status="success", destination_type="extension"
    ) == 1
    await call.hangup()


async def test_busy_fails_fast_and_stops_hold_music(pbx, autojump_clock):
    await add_suporte(pbx, ring_timeout_seconds=30)
    pbx.sim.endpoints[SUPORTE] = Busy()
    call = pbx.call(pbx.transfer_flow("suporte"))
    started = trio.current_time()
    reply = await wait_reply(pbx)
    assert reply.status == "busy"
    assert reply.cause == "USER_BUSY"
    assert reply.message == "O ramal do Suporte está ocupado agora."
    assert reply.can_offer_callback
    # no waiting for the ring timeout, nor for the end of music that a break flushed unplayed
    # (the busy comes back before the playback left the queue: mod_audio_stream, real switch)
    assert trio.current_time() - started < 1.0
    break_all = f"api uuid_break {call.uuid} all"
    assert break_all in lines(call)
    moh_started = next(t for t, data in call.sent if b"Event-Name: CHANNEL_EXECUTE\n" in data
                       and f"Application-Data: {MOH}".encode() in data.replace(b"%3A", b":")
                       .replace(b"%2F", b"/"))  # fmt: skip
    break_sent = next(c.at for c in call.commands if c.line == break_all)
    assert moh_started <= break_sent  # the break found the music playing, not still queued
    assert call.playing is None
    assert "uuid_bridge" not in " ".join(lines(call))


async def test_no_answer_ends_exactly_at_the_ring_timeout(pbx, autojump_clock):
    await add_suporte(pbx, ring_timeout_seconds=12)
    pbx.sim.endpoints[SUPORTE] = NoAnswer()
    call = pbx.call(pbx.transfer_flow("suporte"))
    await call.wait_for(lambda: bool(originates(call)))
    sent_at = originates(call)[0].at
    reply = await wait_reply(pbx)
    assert reply.status == "no_answer"
    assert reply.message == "O ramal do Suporte não atendeu."
    assert 12.0 <= trio.current_time() - sent_at < 12.5
    leg = pbx.sim.legs(SUPORTE_CHANNEL)[0]
    assert not leg.alive


async def test_offline_extension(pbx, autojump_clock):
    await add_suporte(pbx)
    pbx.sim.endpoints[SUPORTE] = Unregistered()
    pbx.call(pbx.transfer_flow("suporte"))
    reply = await wait_reply(pbx)
    assert reply.status == "offline"
    assert reply.cause == "USER_NOT_REGISTERED"
    assert reply.message == "O ramal do Suporte está desconectado agora."


async def test_dnd_extension_is_reported_without_ringing(pbx, autojump_clock):
    await pbx.extension("1001", do_not_disturb=True)
    await add_destination(pbx.db, pbx.domain_uuid, "Suporte", "extension", "1001",
                          secretary_uuid=pbx.secretary_uuid)
    call = pbx.call(pbx.transfer_flow("suporte"))
    reply = await wait_reply(pbx)
    assert reply.status == "dnd"
    assert reply.message == "O ramal do Suporte está em modo não perturbe agora."
    assert originates(call) == []
    assert pbx.sim.legs(SUPORTE_CHANNEL) == []


async def test_rejected_by_the_agent(pbx, autojump_clock):
    await add_suporte(pbx)
    pbx.sim.endpoints[SUPORTE] = Reject(after=2.0)
    pbx.call(pbx.transfer_flow("suporte"))
    reply = await wait_reply(pbx)
    assert reply.status == "rejected"
    assert reply.cause == "CALL_REJECTED"


async def test_caller_hangs_up_on_hold_kills_the_ringing_leg(pbx, autojump_clock):
    await add_suporte(pbx)
    pbx.sim.endpoints[SUPORTE] = NoAnswer()
    call = pbx.call(pbx.transfer_flow("suporte"))
    leg = await pbx.sim.wait_for_leg(SUPORTE_CHANNEL)
    await leg.wait_for(lambda: leg.ringing)
    await call.hangup()
    await leg.wait_gone()
    assert leg.hangup_cause == "ORIGINATOR_CANCEL"
    kill = f"api uuid_kill {leg.uuid} ORIGINATOR_CANCEL"
    await call.wait_closed()
    assert lines(call).count(kill) == 1  # one kill per leg, however many hangup events
    after_hangup = lines(call)[lines(call).index(kill) :]
    assert not any("uuid_bridge" in line or "originate" in line for line in after_hangup)
    assert pbx.replies == []  # the flow was cancelled: no reply, so no callback is offered
    # ...but the transfer is counted for what it was
    assert pbx.metrics.value(
        "voice_transfers_total", status="cancelled", destination_type="extension"
    ) == 1


async def test_agent_answering_after_the_caller_left_is_hung_up(pbx, autojump_clock):
    await add_suporte(pbx)
    pbx.sim.endpoints[SUPORTE] = Manual()
    call = pbx.call(pbx.transfer_flow("suporte"))
    leg = await pbx.sim.wait_for_leg(SUPORTE_CHANNEL)
    async with trio.open_nursery() as both:
        both.start_soon(call.hangup)
        both.start_soon(leg.answer)
    await leg.wait_gone()
    assert call.bridged_to is None
    assert not any(line.startswith("api uuid_bridge") for line in lines(call))


async def test_retries_then_success(pbx, autojump_clock):
    await add_suporte(pbx, max_retries=2, retry_delay_seconds=5)
    pbx.sim.endpoints[SUPORTE] = Busy()
    call = pbx.call(pbx.transfer_flow("suporte"))
    await call.wait_for(lambda: len(originates(call)) == 1)
    first = originates(call)[0].at
    await call.wait_for(lambda: len(originates(call)) == 2)
    assert 5.0 <= originates(call)[1].at - first < 5.5
    pbx.sim.endpoints[SUPORTE] = Answer(after=1.0)
    reply = await wait_reply(pbx)
    assert reply.status == "success"
    assert reply.attempts == 3 or reply.attempts == 2
    assert len({c.line for c in originates(call)}) == len(originates(call))  # new leg each time
    moh = [c for c in call.commands if dict(c.headers).get("execute-app-arg") == MOH]
    assert len(moh) == 1  # the caller stays on hold between attempts


async def test_retries_exhausted_reports_the_last_outcome(pbx, autojump_clock):
    await add_suporte(pbx, max_retries=1, retry_delay_seconds=3)
    pbx.sim.endpoints[SUPORTE] = Busy()
    call = pbx.call(pbx.transfer_flow("suporte"))
    reply = await wait_reply(pbx)
    assert reply.status == "busy"
    assert reply.attempts == 2
    assert len(originates(call)) == 2


async def test_voicemail_answering_is_not_an_agent(pbx, autojump_clock):
    await add_destination(pbx.db, pbx.domain_uuid, "Vendas", "ring_group", "9000",
                          secretary_uuid=pbx.secretary_uuid, ring_timeout_seconds=30)
    pbx.sim.endpoints["loopback/9000/pbx.example.com"] = Voicemail(after=8.0)
    call = pbx.call(pbx.transfer_flow("vendas"))
    reply = await wait_reply(pbx)
    assert reply.status == "no_answer"
    assert call.bridged_to is None
    leg = pbx.sim.legs("loopback/9000-a")[0]
    await leg.wait_gone()


async def test_outside_working_hours_says_when_it_opens(pbx, autojump_clock):
    hours = {"timezone": "America/Sao_Paulo",
             "schedule": {"mon": [["08:00", "12:00"], ["13:00", "18:00"]],
                        "tue": [["08:00", "12:00"], ["13:00", "18:00"]],
                        "wed": [["08:00", "12:00"], ["13:00", "18:00"]],
                        "thu": [["08:00", "12:00"], ["13:00", "18:00"]],
                        "fri": [["08:00", "12:00"], ["13:00", "18:00"]]}}
    await add_suporte(pbx, working_hours=hours)
    pbx.now = pbx.now.replace(hour=12, minute=30)  # lunch break
    call = pbx.call(pbx.transfer_flow("suporte"))
    reply = await wait_reply(pbx)
    assert reply.status == "closed"
    assert "13" in reply.message
    assert reply.next_opening is not None and "T13:00:00" in reply.next_opening
    assert originates(call) == []


async def test_ambiguous_destination_returns_the_candidates(pbx, autojump_clock):
    for name in ("Suporte técnico", "Suporte comercial"):
        await add_destination(pbx.db, pbx.domain_uuid, name, "queue", "5001",
                              secretary_uuid=pbx.secretary_uuid)
    call = pbx.call(pbx.transfer_flow("suporte"))
    reply = await wait_reply(pbx)
    assert reply.status == "ambiguous"
    assert set(reply.candidates) == {"Suporte técnico", "Suporte comercial"}
    assert reply.message.endswith("?")
    assert originates(call) == []


async def test_hostile_destination_row_is_refused_not_sent(pbx, autojump_clock):
    await add_destination(pbx.db, pbx.domain_uuid, "Suporte", "extension",
                          "1001,sofia/gateway/evil/99", secretary_uuid=pbx.secretary_uuid)
    call = pbx.call(pbx.transfer_flow("suporte"))
    reply = await wait_reply(pbx)
    assert reply.status == "failed"
    assert originates(call) == []


def direct_flow(pbx, said, results):
    from callcontrol.handoff.direct import direct_handoff
    from callcontrol.handoff.hold import BreakHold

    async def flow(ctx):
        await ctx.call.answer()
        results.append(await direct_handoff(ctx, pbx.service, said, BreakHold(ctx.call, MOH),
                                            goodbye_prompt="tone_stream://%(100,0,400)"))

    return flow


async def test_direct_handoff_voicemail_fallback(pbx, autojump_clock):
    await add_suporte(pbx, fallback_action="voicemail")
    pbx.sim.endpoints[SUPORTE] = Busy()
    results = []
    call = pbx.call(direct_flow(pbx, "suporte", results))
    with trio.fail_after(60):
        await call.wait_for_command(lambda c: c.line.startswith(f"api uuid_transfer {call.uuid}"))
    assert f"api uuid_transfer {call.uuid} *991001 XML pbx.example.com" in lines(call)
    await call.wait_closed()
    assert results[0].final == "voicemail"


async def test_direct_handoff_tries_the_default_then_says_goodbye(pbx, autojump_clock):
    await add_suporte(pbx)
    await add_destination(pbx.db, pbx.domain_uuid, "Atendimento", "ring_group", "9000",
                          secretary_uuid=pbx.secretary_uuid, is_default=True)
    pbx.sim.endpoints[SUPORTE] = Busy()
    pbx.sim.endpoints["loopback/9000/pbx.example.com"] = Busy()
    results = []
    call = pbx.call(direct_flow(pbx, "suporte", results))
    with trio.fail_after(60):
        await call.wait_gone()
    assert [c.line.rsplit("}", 1)[1] for c in originates(call)] == [
        "user/1001@pbx.example.com &park()", "loopback/9000/pbx.example.com &park()"]
    assert results[0].final == "goodbye"
    assert [r.status for r in results[0].replies] == ["busy", "busy"]
    goodbye = [c for c in call.commands
               if dict(c.headers).get("execute-app-arg") == "tone_stream://%(100,0,400)"]
    assert len(goodbye) == 1


async def test_nothing_to_transfer_to_is_said_plainly(pbx, autojump_clock):
    call = pbx.call(pbx.transfer_flow("suporte"))  # the secretary has no destinations
    reply = await wait_reply(pbx)
    assert reply.status == "no_destination"
    assert reply.message == "Não há ninguém disponível para transferência agora."
    assert reply.can_offer_callback
    assert originates(call) == []


async def test_a_call_without_its_domain_cannot_be_transferred(pbx, autojump_clock):
    await add_suporte(pbx)
    ours, theirs = trio.testing.memory_stream_pair()
    from callcontrol.server import App, handle_call

    pbx.nursery.start_soon(handle_call, ours,
                           App(settings=pbx.service.settings, flow=pbx.transfer_flow("suporte")))
    call = pbx.sim.attach_outbound(theirs, variables={"domain_uuid": "", "domain_name": ""})
    reply = await wait_reply(pbx)
    assert reply.status == "failed" and reply.cause == "NO_DOMAIN"
    assert originates(call) == []


class HeldReplies(trio.abc.Stream):
    """The server's end of the socket: once it has sent the hold music, nothing the switch
    says reaches it until it has also sent ``bgapi originate``."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.holding = False
        self.released = trio.Event()
        self.order: list[str] = []

    async def send_all(self, data) -> None:
        if b"execute-app-name: playback" in data:
            self.order.append("playback")
            self.holding = True
        if b"bgapi originate" in data:
            self.order.append("originate")
            self.released.set()
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes=None):
        data = await self.inner.receive_some(max_bytes)
        if self.holding:
            await self.released.wait()
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_originate_is_sent_without_waiting_for_the_hold_music_reply(pbx, autojump_clock):
    # The playback's reply only says "queued"; the switch runs the socket's commands in order,
    # so the music is on before the ring without that round trip on the way to the originate.
    await add_suporte(pbx, ring_timeout_seconds=25)
    pbx.sim.endpoints[SUPORTE] = Answer(after=3.0)
    held: list[HeldReplies] = []

    def wrap(stream: trio.abc.Stream) -> trio.abc.Stream:
        held.append(HeldReplies(stream))
        return held[0]

    call = pbx.call(pbx.transfer_flow("suporte"), wrap=wrap)
    reply = await wait_reply(pbx)
    assert reply.status == "success"
    assert held[0].order == ["playback", "originate"]
    sent = lines(call)
    moh = next(c for c in call.commands if header(c, "execute-app-arg") == MOH)
    assert call.commands.index(moh) < sent.index(originates(call)[0].line)
    assert call.bridged_to is not None
    await call.hangup()
