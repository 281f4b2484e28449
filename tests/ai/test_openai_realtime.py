"""The Realtime GA client against ScriptedRealtime over real websockets on localhost."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import trio
from structlog.testing import capture_logs

from callcontrol.ai import tools
from callcontrol.ai.instructions import CallContext, Destination, build_instructions
from callcontrol.ai.openai_realtime import RealtimeEndpoint, open_openai_realtime
from callcontrol.ai.provider import (
    AudioDelta,
    AudioDone,
    Closed,
    ProviderError,
    ProviderEvent,
    ProviderUnavailable,
    ResponseDone,
    SessionConfig,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    TranscriptDone,
)
from callcontrol.media.codecs import PCM24K, PCMU
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
    ScriptedRealtime,
    SendError,
    encode_for,
)

API_KEY = "sk-test-not-a-real-key-123"
DESTINATIONS = [
    Destination("Suporte", "Tecnologia", "problemas com o sistema"),
    Destination("Financeiro", "Administrativo"),
]
FRAME_20MS = b"\x00\x00" * 480  # 20 ms of PCM16 at 24 kHz


def _config(**overrides: object) -> SessionConfig:
    ctx = CallContext(
        now=datetime(2025, 11, 25, 17, 0, tzinfo=UTC),
        timezone=ZoneInfo("America/Sao_Paulo"),
        destinations=DESTINATIONS,
        caller_number="+5511987654321",
    )
    fields: dict[str, object] = {"instructions": build_instructions(ctx), "tools": tools.TOOLS}
    fields.update(overrides)
    return SessionConfig(**fields)  # type: ignore[arg-type]


def _endpoint(url: str) -> RealtimeEndpoint:
    return RealtimeEndpoint(url=url, model="gpt-realtime", api_key=API_KEY)


async def _collect_until(events: object, stop: type) -> list[ProviderEvent]:
    seen: list[ProviderEvent] = []
    async for event in events:  # type: ignore[attr-defined]
        seen.append(event)
        if isinstance(event, stop):
            break
    return seen


async def test_session_update_tells_the_model_who_where_and_how() -> None:
    server = ScriptedRealtime([Hear(20), Say("Olá", ms=40)])
    async with server as url, open_openai_realtime(_endpoint(url), _config()) as ai:
        await ai.send_audio(FRAME_20MS)
        await _collect_until(ai.events(), ResponseDone)

    rec = server.last
    assert rec.types()[0] == "session.update"
    session = rec.session
    assert session["type"] == "realtime"
    assert session["model"] == "gpt-realtime"
    assert session["audio"]["output"]["voice"] == "marin"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["input"]["transcription"]["language"] == "pt"
    assert {t["name"] for t in session["tools"]} == {
        "request_handoff",
        "schedule_callback",
        "take_message",
        "end_call",
    }
    instructions = rec.instructions
    assert "português do Brasil" in instructions
    assert "Suporte (Tecnologia)" in instructions and "Financeiro" in instructions
    assert "onze, nove oito sete seis cinco, quatro três dois um" in instructions
    assert "às quatorze horas" in instructions  # 17:00 UTC is 14:00 in São Paulo
    # the client authenticates and names the model, as the real endpoint requires
    assert rec.headers["authorization"] == f"Bearer {API_KEY}"
    assert rec.path == "/v1/realtime?model=gpt-realtime"


async def test_audio_round_trip() -> None:
    server = ScriptedRealtime([Hear(100), Say("Bom dia, em que posso ajudar?", ms=500)])
    caller = bytes(range(256)) * 30  # 160 ms of (odd-looking) PCM16 at 24 kHz, sent in pieces
    async with server as url, open_openai_realtime(_endpoint(url), _config()) as ai:
        for i in range(0, len(caller), 960):
            await ai.send_audio(caller[i : i + 960])
        events = await _collect_until(ai.events(), ResponseDone)

    assert bytes(server.last.caller_audio) == caller  # every byte reached the model, in order
    deltas = [e for e in events if isinstance(e, AudioDelta)]
    heard = b"".join(d.pcm for d in deltas)
    assert heard == encode_for(PCM24K, 500, 440.0)  # exactly the audio the model produced
    assert all(PCM24K.duration_ms(len(d.pcm)) <= 100 for d in deltas)
    assert len({d.item_id for d in deltas}) == 1
    assert AudioDone(deltas[0].item_id) in events
    assert TranscriptDone("assistant", "Bom dia, em que posso ajudar?", deltas[0].item_id) in events


async def test_g711_session_passes_mulaw_through() -> None:
    server = ScriptedRealtime([Hear(40), Say("Oi", ms=200)])
    config = _config(input_format=PCMU, output_format=PCMU)
    async with server as url, open_openai_realtime(_endpoint(url), config) as ai:
        await ai.send_audio(b"\xff" * 320)  # 40 ms of μ-law silence
        events = await _collect_until(ai.events(), ResponseDone)
    assert server.last.session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    heard = b"".join(e.pcm for e in events if isinstance(e, AudioDelta))
    assert heard == encode_for(PCMU, 200, 440.0)
    assert len(heard) == 1600  # 200 ms at 8 bytes per ms


async def test_barge_in_truncates_at_what_was_played() -> None:
    script = [
        Say("Nosso horário de atendimento é das oito às dezoito horas", ms=2000),
        CallerSpeechStarted(),
        AwaitClient("conversation.item.truncate"),
        CallerSpeechStopped(),
        CallerSaid("quero falar com o suporte"),
    ]
    server = ScriptedRealtime(script)
    played_ms = 640  # what the caller actually heard before talking over it
    async with server as url, open_openai_realtime(_endpoint(url), _config()) as ai:
        playing: str | None = None
        async for event in ai.events():
            if isinstance(event, AudioDelta):
                playing = event.item_id
            if isinstance(event, SpeechStarted):
                assert playing is not None
                await ai.truncate(playing, played_ms)
            if isinstance(event, TranscriptDone) and event.role == "caller":
                assert event.text == "quero falar com o suporte"
                break
            if isinstance(event, SpeechStopped):
                assert server.last.truncates  # the truncate went out before VAD said stop
    assert server.last.truncates == [
        {"item_id": playing, "content_index": 0, "audio_end_ms": played_ms}
    ]


async def test_truncate_beyond_the_audio_is_a_recoverable_error() -> None:
    server = ScriptedRealtime([Say("Oi", ms=100), AwaitClient("conversation.item.truncate")])
    async with server as url, open_openai_realtime(_endpoint(url), _config()) as ai:
        events = await _collect_until(ai.events(), ResponseDone)
        item = next(e.item_id for e in events if isinstance(e, AudioDelta))
        await ai.truncate(item, 5000)
        error = (await _collect_until(ai.events(), ProviderError))[-1]
    assert isinstance(error, ProviderError)
    assert error.code == "invalid_value" and not error.fatal


async def test_tool_call_output_goes_back_and_the_model_continues() -> None:
    args = {"destination": "Suporte", "reason": "sistema fora do ar"}
    server = ScriptedRealtime(
        [CallTool("request_handoff", args, call_id="call_42"), AwaitToolOutput()]
    )
    async with server as url, open_openai_realtime(_endpoint(url), _config()) as ai:
        calls = [e for e in await _collect_until(ai.events(), ToolCall) if isinstance(e, ToolCall)]
        call = calls[0]
        request = tools.parse_tool_call(call.name, call.raw_arguments)
        assert request == tools.RequestHandoff("Suporte", "sistema fora do ar")
        await ai.send_tool_result(call.call_id, tools.tool_output(ok=False, status="busy"))
        await ai.close()
        await _collect_until(ai.events(), Closed)

    rec = server.last
    assert json.loads(rec.tool_outputs["call_42"]) == {"ok": False, "status": "busy"}
    create = rec.types().index("conversation.item.create")
    assert rec.types()[create + 1] == "response.create"  # asks for a new response right after


async def test_broken_tool_arguments_reach_validation_not_an_exception() -> None:
    server = ScriptedRealtime([CallTool("schedule_callback", '{"name": "Ana", "phone_')])
    async with server as url, open_openai_realtime(_endpoint(url), _config()) as ai:
        call = (await _collect_until(ai.events(), ToolCall))[-1]
    assert isinstance(call, ToolCall)
    assert call.arguments == {}
    result = tools.parse_tool_call(call.name, call.raw_arguments)
    assert isinstance(result, tools.ToolArgumentError)
    assert json.loads(result.output())["ok"] is False


async def test_say_asks_for_a_response_with_instructions() -> None:
    server = ScriptedRealtime([AwaitClient("response.create")])
    async with server as url, open_openai_realtime(_endpoint(url), _config()) as ai:
        await ai.say("Diga que o ramal está ocupado.")
        await ai.close()
        await _collect_until(ai.events(), Closed)
    assert server.last.response_creates == [{"instructions": "Diga que o ramal está ocupado."}]


@pytest.mark.parametrize(("code", "fatal"), [("invalid_value", False), ("session_expired", True)])
async def test_provider_errors_are_typed_events(code: str, fatal: bool) -> None:
    server = ScriptedRealtime([SendError(code, "scripted"), Say("ainda aqui", ms=40)])
    async with server as url, open_openai_realtime(_endpoint(url), _config()) as ai:
        events = await _collect_until(ai.events(), ResponseDone)
    assert events[0] == ProviderError(code, "scripted", fatal)
    assert isinstance(events[-1], ResponseDone)  # the session went on after the error


async def test_server_close_ends_the_stream_with_closed() -> None:
    server = ScriptedRealtime([Say("Um momento", ms=40), Close(1011, "upstream failure")])
    async with server as url, open_openai_realtime(_endpoint(url), _config()) as ai:
        events = [event async for event in ai.events()]
        await ai.send_audio(FRAME_20MS)  # after the end: dropped, not raised
        await ai.truncate("item_1", 10)
    assert events[-1] == Closed("INTERNAL_ERROR: upstream failure", 1011)
    assert sum(isinstance(e, Closed) for e in events) == 1


async def test_silent_model_sends_nothing_and_keeps_listening() -> None:
    server = ScriptedRealtime([Say("Olá", ms=40), GoSilent()])
    async with server as url, open_openai_realtime(_endpoint(url), _config()) as ai:
        await _collect_until(ai.events(), ResponseDone)
        await ai.send_audio(FRAME_20MS)
        # the session times silence with a deadline; here: nothing arrives within one
        with trio.move_on_after(0.3) as scope:
            unexpected = await ai.events().__anext__()
        assert scope.cancelled_caught, unexpected
        await ai.close()
    assert server.last.audio_ms == 20


async def test_rejected_connection_raises_provider_unavailable() -> None:
    server = ScriptedRealtime(reject_status=403)
    async with server as url:
        with pytest.raises(ProviderUnavailable):
            async with open_openai_realtime(_endpoint(url), _config()):
                pass  # pragma: no cover


async def test_nothing_listening_raises_provider_unavailable() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    endpoint = _endpoint(f"ws://127.0.0.1:{port}/v1/realtime")
    with pytest.raises(ProviderUnavailable):
        async with open_openai_realtime(endpoint, _config()):
            pass  # pragma: no cover


async def test_the_api_key_never_reaches_the_logs() -> None:
    server = ScriptedRealtime([SendError("invalid_api_key", "bad key"), Close(1008, "auth")])
    with capture_logs() as logs:
        async with server as url, open_openai_realtime(_endpoint(url), _config()) as ai:
            async for _ in ai.events():
                pass
    assert logs, "the client logs its connection and errors"
    assert API_KEY not in repr(logs)
    assert API_KEY not in repr(_endpoint("ws://x"))


def test_azure_endpoint_uses_api_key_header_and_keeps_its_url() -> None:
    ep = RealtimeEndpoint(
        url="wss://res.openai.azure.com/openai/v1/realtime?model=my-deployment",
        api_key="k",
        auth="api-key",
    )
    assert ep.headers() == [("api-key", "k")]
    assert ep.full_url() == "wss://res.openai.azure.com/openai/v1/realtime?model=my-deployment"
    assert RealtimeEndpoint(url="wss://h/v1/realtime", model="m").full_url().endswith("?model=m")


async def test_errors_in_the_session_body_come_out_unwrapped() -> None:
    # the call session catches its own errors by type; no ExceptionGroup in the way
    async with ScriptedRealtime() as url:
        with pytest.raises(KeyError):
            async with open_openai_realtime(_endpoint(url), _config()):
                raise KeyError("session bug")
