"""The AI secretary end to end: what the model is told, what FreeSWITCH is asked to do, what is
written to the database — with the real client, server flow and handoff engine."""

from __future__ import annotations

import json

import pytest
import trio

from callcontrol.testing.database import EVERY_PBX
from callcontrol.testing.freeswitch import Answer, Busy
from callcontrol.testing.realtime import (
    AwaitClient,
    AwaitToolOutput,
    CallerSaid,
    CallerSpeechStarted,
    CallerSpeechStopped,
    CallTool,
    Close,
    GoSilent,
    Hear,
    Say,
)
from tests.secretary.conftest import ATENDIMENTO, SUPORTE, wait_for_command

GREETING = [AwaitClient("response.create"), Say("Clínica Exemplo, bom dia!", ms=120)]


def lines(call):
    return [c.line for c in call.commands]


@pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)
async def test_the_model_is_told_who_calls_and_where_it_can_transfer(office):
    async with office.model([*GREETING, GoSilent()], strict=False) as (server, url):
        call = office.call(office.services(url))
        with trio.fail_after(10):
            await call.wait_for(lambda: call.answer_state == "answered")
            await server.wait_for(lambda: bool(server.sessions and server.last.session_updates))
        session = server.last.session
        instructions = server.last.instructions
        assert "Suporte" in instructions and "Atendimento" in instructions
        assert "1001" not in instructions and "9000" not in instructions  # never the numbers
        assert "Clínica Exemplo" in instructions
        assert "português do Brasil" in instructions
        assert "Maria Souza" in instructions
        names = {tool["name"] for tool in session["tools"]}
        assert names == {"request_handoff", "schedule_callback", "take_message", "end_call"}
        # the SIP phone's PCMU goes to the model as it is: no resampling on the way
        assert session["audio"]["input"]["format"]["type"] == "audio/pcmu"
        assert server.last.headers["authorization"] == "Bearer sk-test-not-a-real-key"
        await call.hangup()


async def test_busy_transfer_comes_back_to_the_model_with_what_to_say(office):
    office.sim.endpoints[SUPORTE] = Busy()
    async with office.model(
        [
            *GREETING,
            CallerSpeechStarted(),
            CallerSpeechStopped(),
            CallerSaid("quero falar com o suporte"),
            Say("Um momento, vou transferir.", ms=100),
            CallTool("request_handoff", {"destination": "suporte", "reason": "dúvida"}),
            AwaitToolOutput(timeout=15),
            Say("O ramal do Suporte está ocupado agora.", ms=100),
            GoSilent(),
        ]
    ) as (server, url):
        call = office.call(office.services(url))
        with trio.fail_after(15):
            await server.wait_for(lambda: bool(server.sessions and server.last.tool_outputs))
        output = json.loads(next(iter(server.last.tool_outputs.values())))
        assert output["status"] == "busy"
        assert output["say"] == "O ramal do Suporte está ocupado agora."
        assert output["can_offer_callback"] is True
        sent = lines(call)
        moh = [
            i
            for i, c in enumerate(call.commands)
            if dict(c.headers).get("execute-app-arg") == "local_stream://moh"
        ]
        originate = next(i for i, line in enumerate(sent) if line.startswith("bgapi originate"))
        assert moh and moh[0] < originate  # hold music before ringing
        # unicast: music stopped by a re-park, then audio armed again after CHANNEL_PARK
        transfer = sent.index(f"api uuid_transfer {call.uuid} park inline")
        assert transfer > originate
        unicasts = [
            i
            for i, c in enumerate(call.commands)
            if dict(c.headers).get("call-command") == "unicast"
        ]
        assert len(unicasts) >= 2 and unicasts[-1] > transfer
        await call.hangup()


@pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)
async def test_answered_transfer_bridges_and_the_model_leaves(office):
    office.sim.endpoints[SUPORTE] = Answer(after=0.5)
    async with office.model(
        [
            *GREETING,
            CallTool("request_handoff", {"destination": "Suporte", "reason": "exame"}),
            GoSilent(),
        ],
        strict=False,
    ) as (server, url):
        call = office.call(office.services(url))
        with trio.fail_after(15):
            await call.wait_for(lambda: call.bridged_to is not None)
            await server.wait_for(lambda: server.last.close_code is not None)
        agent = office.sim.leg(call.bridged_to)
        assert agent.variables["origination_caller_id_number"] == "5511988887777"
        # the agent hangs up first: the caller is parked again and told goodbye, then hung up
        await agent.hangup()
        goodbye = await wait_for_command(call, "tone_stream://%(400,100,480,620)")
        assert goodbye is not None
        with trio.fail_after(10):
            await call.wait_gone()
        rows = await office.db.fetch_all("SELECT outcome, handoff_status FROM callcontrol_calls")
        assert rows == [{"outcome": "bridged", "handoff_status": "success"}]


async def test_callback_request_is_saved_before_the_model_confirms_it(office):
    async with office.model(
        [
            *GREETING,
            CallTool(
                "schedule_callback",
                {
                    "name": "Maria",
                    "phone_number": "(11) 98888-7777",
                    "preferred_time": "hoje à tarde",
                    "reason": "exame",
                },
            ),
            AwaitToolOutput(),
            Say("Anotado!", ms=100),
            CallTool("end_call", {"reason": "pronto"}),
            AwaitToolOutput(),
            Say("Tchau!", ms=100),
            GoSilent(),
        ]
    ) as (server, url):
        call = office.call(office.services(url))
        with trio.fail_after(15):
            await call.wait_gone()
        rows = await office.db.fetch_all(
            "SELECT kind, phone_number, caller_name, preferred_time, status, call_uuid::text"
            " FROM callcontrol_callback_requests"
        )
        assert rows == [
            {
                "kind": "callback",
                "phone_number": "+5511988887777",
                "caller_name": "Maria",
                "preferred_time": "hoje à tarde",
                "status": "pending",
                "call_uuid": call.uuid,
            }
        ]
        output = json.loads(server.last.tool_outputs[next(iter(server.last.tool_outputs))])
        assert output["ok"] is True and output["request_id"]
        hangups = [c for c in call.commands if dict(c.headers).get("call-command") == "hangup"]
        assert len(hangups) == 1


async def test_a_call_we_hang_up_stores_the_cause_we_sent(office):
    # The model ends the call: we send ``hangup NORMAL_CLEARING`` and the record is written
    # before the CHANNEL_HANGUP it causes comes back; the row must still say why it ended.
    async with office.model(
        [
            *GREETING,
            CallTool("end_call", {"reason": "pronto"}),
            AwaitToolOutput(),
            Say("Tchau!", ms=100),
            GoSilent(),
        ]
    ) as (_server, url):
        call = office.call(office.services(url))
        with trio.fail_after(15):
            await call.wait_gone()
            await call.wait_closed()
    hangups = [dict(c.headers) for c in call.commands
               if dict(c.headers).get("call-command") == "hangup"]  # fmt: skip
    assert [h.get("hangup-cause") for h in hangups] == ["NORMAL_CLEARING"]
    rows = await office.db.fetch_all(
        "SELECT outcome, hangup_cause FROM callcontrol_calls WHERE call_uuid = %(u)s",
        {"u": call.uuid})  # fmt: skip
    assert rows == [{"outcome": "ended", "hangup_cause": "NORMAL_CLEARING"}]


async def test_a_nonsense_phone_number_is_asked_again_not_saved(office):
    async with office.model(
        [
            *GREETING,
            CallTool(
                "take_message",
                {"name": "João", "phone_number": "banana", "message": "ligar de volta"},
            ),
            AwaitToolOutput(),
            GoSilent(),
        ],
        strict=False,
    ) as (server, url):
        call = office.call(office.services(url))
        with trio.fail_after(10):
            await server.wait_for(lambda: bool(server.sessions and server.last.tool_outputs))
        output = json.loads(next(iter(server.last.tool_outputs.values())))
        assert output["ok"] is False and output["error"] == "invalid_arguments"
        assert await office.db.fetch_all("SELECT 1 FROM callcontrol_callback_requests") == []
        await call.hangup()


@pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)
async def test_model_unreachable_falls_back_to_the_default_destination(office):
    office.sim.endpoints[ATENDIMENTO] = Answer(after=0.2)
    async with office.model([], reject_status=403) as (_server, url):
        call = office.call(office.services(url))
        answered = await wait_for_command(call, "answer")
        prompt = await wait_for_command(call, "tone_stream://%(300,200,440);loops=2")
        assert prompt.at - answered.at < 2.0  # never dead air
        with trio.fail_after(10):
            await call.wait_for(lambda: call.bridged_to is not None)
        assert office.metrics.value("voice_ai_failures_total", kind="provider_unavailable") == 1
        await call.hangup()


async def test_model_closing_mid_call_is_never_dead_air(office):
    office.sim.endpoints[ATENDIMENTO] = Answer(after=0.2)
    async with office.model([*GREETING, Close(1011, "internal error")], strict=False) as (
        _server,
        url,
    ):
        call = office.call(office.services(url))
        prompt = await wait_for_command(call, "tone_stream://%(300,200,440);loops=2")
        assert prompt is not None
        with trio.fail_after(10):
            await call.wait_for(lambda: call.bridged_to is not None)
        await call.hangup()


async def test_silent_model_is_detected_within_two_seconds(office):
    office.sim.endpoints[ATENDIMENTO] = Answer(after=0.2)
    async with office.model([AwaitClient("response.create"), GoSilent()], strict=False) as (
        server,
        url,
    ):
        call = office.call(office.services(url))
        with trio.fail_after(10):
            await server.wait_for(lambda: bool(server.sessions and server.last.response_creates))
        asked = trio.current_time()
        prompt = await wait_for_command(call, "tone_stream://%(300,200,440);loops=2")
        waited = trio.current_time() - asked
        assert 1.5 < waited < 3.0
        assert prompt is not None
        await call.hangup()


async def test_barge_in_stops_playback_and_truncates_at_what_was_heard(office):
    async with office.model(
        [
            AwaitClient("response.create"),
            Say("Uma resposta longa que o chamador interrompe.", ms=2000, chunk_ms=100),
            Hear(ms=0),
            CallerSpeechStarted(),
            AwaitClient("conversation.item.truncate"),
            GoSilent(),
        ]
    ) as (server, url):
        call = office.call(office.services(url))
        await server.wait_for(lambda: bool(server.sessions and server.last.truncates))
        truncate = server.last.truncates[0]
        played = truncate["audio_end_ms"]
        # everything was sent at once, but only what was paced out was heard
        assert 0 <= played < 2000
        assert truncate["content_index"] == 0
        await call.hangup()


async def test_a_silent_caller_is_asked_then_said_goodbye_to(office):
    async with office.model(
        [
            *GREETING,
            AwaitClient("response.create"),  # "ainda está aí?"
            Say("Você ainda está na linha?", ms=100),
            AwaitClient("response.create"),  # goodbye
            Say("Até logo!", ms=100),
            GoSilent(),
        ]
    ) as (server, url):
        services = office.services(url, caller_silence_seconds=0.5)
        call = office.call(services)
        with trio.fail_after(10):
            await call.wait_gone()
        asks = [r.get("instructions", "") for r in server.last.response_creates]
        assert len(asks) == 3
        assert "ainda está na linha" in asks[1]
        assert "Despeça-se" in asks[2]
        hangups = [c for c in call.commands if dict(c.headers).get("call-command") == "hangup"]
        assert len(hangups) == 1


async def test_the_longest_call_is_closed_politely(office):
    async with office.model(
        [
            *GREETING,
            AwaitClient("response.create"),
            Say("Nosso tempo acabou, até logo!", ms=100),
            GoSilent(),
        ]
    ) as (server, url):
        services = office.services(url, max_call_seconds=0.5)
        call = office.call(services)
        with trio.fail_after(10):
            await call.wait_gone()
        assert "Despeça-se" in server.last.response_creates[-1]["instructions"]


def _busy_script(after: list) -> list:
    return [
        *GREETING,
        CallTool("request_handoff", {"destination": "suporte", "reason": "dúvida"}),
        AwaitToolOutput(timeout=15),
        Say("O ramal do Suporte está ocupado agora.", ms=100),
        *after,
    ]


async def _set_fallback(office, action):
    await office.db.execute(
        "UPDATE v_voice_transfer_destinations SET fallback_action = %s WHERE name = 'Suporte'",
        (action,),
    )


@pytest.mark.parametrize("fusionpbx_schema", EVERY_PBX, ids=str)
async def test_voicemail_fallback_sends_the_caller_to_the_extensions_mailbox(office):
    await _set_fallback(office, "voicemail")
    office.sim.endpoints[SUPORTE] = Busy()
    async with office.model(_busy_script([GoSilent()])) as (server, url):
        call = office.call(office.services(url))
        transfer = await wait_for_command(call, f"api uuid_transfer {call.uuid} *991001 XML")
        assert transfer.line.endswith("XML pbx.example.com")
        output = json.loads(next(iter(server.last.tool_outputs.values())))
        assert output["fallback"] == "voicemail" and "voicemail" in output["next"]
        with trio.fail_after(10):
            await call.wait_closed()  # the caller left our socket for the dialplan
    rows = await office.db.fetch_all("SELECT outcome FROM callcontrol_calls")
    assert rows == [{"outcome": "voicemail"}]


async def test_hangup_fallback_ends_the_call_after_the_sentence(office):
    await _set_fallback(office, "hangup")
    office.sim.endpoints[SUPORTE] = Busy()
    async with office.model(_busy_script([GoSilent()])) as (_server, url):
        call = office.call(office.services(url))
        with trio.fail_after(10):
            await call.wait_gone()
        hangups = [c for c in call.commands if dict(c.headers).get("call-command") == "hangup"]
        assert len(hangups) == 1


async def test_transfer_default_fallback_rings_the_default_destination(office):
    await _set_fallback(office, "transfer_default")
    office.sim.endpoints[SUPORTE] = Busy()
    office.sim.endpoints[ATENDIMENTO] = Answer(after=0.2)
    async with office.model(_busy_script([GoSilent()]), strict=False) as (_server, url):
        call = office.call(office.services(url))
        with trio.fail_after(15):
            await call.wait_for(lambda: call.bridged_to is not None)
        originates = [c.line for c in call.commands if c.line.startswith("bgapi originate")]
        assert originates[0].endswith("user/1001@pbx.example.com &park()")
        assert originates[1].endswith("loopback/9000/pbx.example.com &park()")
        await call.hangup()


async def test_the_agent_hears_a_whisper_before_the_bridge(office):
    office.sim.endpoints[SUPORTE] = Answer(after=0.3)
    async with office.model(
        [
            *GREETING,
            CallTool("request_handoff", {"destination": "Suporte", "reason": "resultado de exame"}),
            GoSilent(),
        ],
        strict=False,
    ) as (_server, url):
        call = office.call(office.services(url, whisper_tts="flite|kal"))
        with trio.fail_after(15):
            await call.wait_for(lambda: call.bridged_to is not None)
        sent = lines(call)
        whisper = next(line for line in sent if line.startswith("api uuid_broadcast"))
        agent = call.bridged_to
        assert whisper == (
            f"api uuid_broadcast {agent} speak::flite|kal|Ligação de Maria Souza, número "
            "um um, nove oito oito oito oito, sete sete sete sete, sobre resultado de exame. aleg"
        )
        assert sent.index(whisper) < sent.index(f"api uuid_bridge {call.uuid} {agent}")
        await call.hangup()


async def test_agent_hanging_up_first_can_hand_the_caller_back_to_the_ai(office):
    office.sim.endpoints[SUPORTE] = Answer(after=0.3)
    async with office.model(
        [
            *GREETING,
            CallTool("request_handoff", {"destination": "Suporte", "reason": "dúvida"}),
            GoSilent(),
        ],
        strict=False,
    ) as (server, url):
        call = office.call(office.services(url, after_agent_hangup="ai"))
        with trio.fail_after(15):
            await call.wait_for(lambda: call.bridged_to is not None)
        await office.sim.leg(call.bridged_to).hangup()
        # a second model session starts, told that the agent left
        await server.wait_for(
            lambda: len(server.sessions) == 2 and bool(server.sessions[1].response_creates)
        )
        assert "atendente desligou" in server.sessions[1].response_creates[0]["instructions"]
        # audio is armed again in the new park (park_after_bridge), then the caller leaves
        unicasts = [c for c in call.commands if dict(c.headers).get("call-command") == "unicast"]
        assert len(unicasts) >= 2
        await call.hangup()


async def test_ai_down_and_nobody_free_offers_a_callback_by_dtmf(office):
    office.sim.endpoints[ATENDIMENTO] = Busy()
    async with office.model([], reject_status=503) as (_server, url):
        services = office.services(url, callback_dtmf_prompt="/sounds/pt-BR/digite-1-retorno.wav")
        call = office.call(services)
        call.press("1")
        offer = await wait_for_command(call, "play_and_get_digits")
        assert dict(offer.headers)["execute-app-arg"] == (
            "1 1 2 5000 # /sounds/pt-BR/digite-1-retorno.wav silence_stream://250 "
            "callcontrol_callback_digit [12]"
        )
        with trio.fail_after(10):
            await call.wait_gone()
    rows = await office.db.fetch_all(
        "SELECT kind, phone_number, destination_name FROM callcontrol_callback_requests"
    )
    assert rows == [
        {"kind": "callback", "phone_number": "+5511988887777", "destination_name": "Atendimento"}
    ]
    calls = await office.db.fetch_all("SELECT outcome FROM callcontrol_calls")
    assert calls == [{"outcome": "callback_requested"}]


async def test_another_digit_means_no_callback_and_a_goodbye(office):
    office.sim.endpoints[ATENDIMENTO] = Busy()
    async with office.model([], reject_status=503) as (_server, url):
        services = office.services(url, callback_dtmf_prompt="/sounds/digite-1.wav")
        call = office.call(services)
        call.press("2")
        with trio.fail_after(10):
            await call.wait_gone()
        assert await wait_for_command(call, "play_and_get_digits")
    assert await office.db.fetch_all("SELECT 1 FROM callcontrol_callback_requests") == []
